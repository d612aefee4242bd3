"""Evaluation: load problems, run candidates in sandboxes, score their outputs on the trusted side.

Problem files import `evoforge`, which imports `evaluators.problem_api`, inside every sandbox; so the sandbox
machinery (`SandboxPool`, `Evaluation`, ...) is imported lazily, on first use of those names.
"""

from typing import Any

from evoforge.evaluators.loader import ProblemError, load_problem, parse_overrides
from evoforge.evaluators.problem import Problem
from evoforge.evaluators.problem_api import InvalidOutput, Settings, Stage, evolve
from evoforge.evaluators.statuses import STATUSES

_LAZY = {"Evaluation", "SandboxError", "SandboxPool"}

__all__ = ["STATUSES", "Evaluation", "InvalidOutput", "Problem", "ProblemError", "SandboxError", "SandboxPool", "Stage",
           "Settings", "evolve", "load_problem", "parse_overrides"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from evoforge.evaluators import sandbox

        return getattr(sandbox, name)
    raise AttributeError(f"module 'evaluators' has no attribute {name!r}")
