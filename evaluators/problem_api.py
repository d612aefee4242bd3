"""The problem-file API: what a problem file imports (`from evoforge import evolve, Settings, Stage`), and
`InvalidOutput`, what a rejected output raises.

Problem files are loaded inside every sandbox, so this module imports nothing beyond the standard library's
dataclasses and math: importing it must stay cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EVOLVE_MARK = "__evoforge_evolve__"


def evolve(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a function as the one evolution rewrites; its body in the problem file is the seed program."""
    setattr(fn, EVOLVE_MARK, True)
    return fn


@dataclass(frozen=True)
class Stage:
    """A cascade stage: evaluate these inputs first, and go on only if their aggregate score reaches threshold.

    Cheap inputs in an early stage let a weak candidate be culled before the expensive inputs run. Inputs named in
    no stage form the last stage, which has no threshold.
    """

    inputs: tuple[str, ...]
    threshold: float


@dataclass(frozen=True)
class Settings:
    """Per-problem evaluation settings; every field can be overridden with `--set field=value`."""

    maximize: bool = True  # higher score is better; False for costs such as excess bins
    time_limit_s: float = 30.0  # wall-clock limit for solve() on one input
    memory_limit_mb: int = 2048  # address-space limit of the sandboxed process
    # Compile the evolved functions with numba.njit (falling back to Python if it cannot): True compiles at the
    # first call; "auto" runs them as Python until they have used about what a compilation costs, then compiles,
    # so that only candidates evaluated over large inputs pay for numba; False never compiles.
    numba: bool | str = False

    def __post_init__(self) -> None:
        if not isinstance(self.maximize, bool):
            raise ValueError(f"Settings(maximize={self.maximize!r}): use True or False (not a string)")
        for name in ("time_limit_s", "memory_limit_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"Settings({name}={value!r}): use a positive number")
        if self.numba not in (True, False, "auto"):
            raise ValueError(f"Settings(numba={self.numba!r}): use True, False or 'auto'")


class InvalidOutput(Exception):
    """The trusted score rejected a candidate's output (or returned something that is not a finite number)."""
