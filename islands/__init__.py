"""The FunSearch island model over program ids: signature clusters, temperature-controlled parent sampling, resets.

Pure in-memory logic (numpy only, no database, no clock). Randomness comes from the `numpy.random.Generator`
passed in; resets are planned and applied in two steps so a resumed run can replay them exactly.
"""

from evoforge.islands.config import IslandConfig, IslandConfigError
from evoforge.islands.model import EmptyIslandError, IslandModel
from evoforge.islands.reset import ResetPlan
from evoforge.islands.softmax import sample_distinct, softmax

__all__ = [
    "EmptyIslandError",
    "IslandConfig",
    "IslandConfigError",
    "IslandModel",
    "ResetPlan",
    "sample_distinct",
    "softmax",
]
