"""evoforge's engine: the search loop and the public API that problem files import.

Problem files run inside every sandbox, so importing `engine` must stay cheap: only the problem-file API is
imported here; the loop, proposers and CLI are imported from their own modules when used.
"""

from evaluators.problem import Settings, Stage, evolve

__all__ = ["Settings", "Stage", "evolve"]
