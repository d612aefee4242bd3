"""The FunSearch island model over program ids: signature clusters, temperature-controlled parent sampling, resets.

Pure in-memory logic (numpy only, no database, no clock). Randomness comes from the `numpy.random.Generator`
passed in; resets are planned and applied in two steps so a resumed run can replay them exactly.

`IslandConfig` is imported at once (the command line reads its defaults); the numpy-backed model on first use, so
commands that only read a database never load numpy.
"""

from typing import Any

from evoforge.islands.config import IslandConfig, IslandConfigError

_LAZY = {"EmptyIslandError": "model", "IslandModel": "model", "ResetPlan": "reset", "sample_distinct": "softmax",
         "softmax": "softmax"}

__all__ = [
    "EmptyIslandError",
    "IslandConfig",
    "IslandConfigError",
    "IslandModel",
    "ResetPlan",
    "sample_distinct",
    "softmax",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        # All at once, after every submodule is imported: importing `islands.softmax` binds the module to the
        # name `softmax` here, which the function must then replace.
        globals().update({lazy: getattr(import_module(f"evoforge.islands.{module}"), lazy)
                          for lazy, module in _LAZY.items()})
        return globals()[name]
    raise AttributeError(f"module 'evoforge.islands' has no attribute {name!r}")
