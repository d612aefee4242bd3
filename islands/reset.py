"""Island resets as data: which islands restart and from which founder.

A reset is planned (random) and applied (deterministic) in two steps so the caller can store the plan in its database
and, on resume, apply the very same plan instead of drawing a new one: replaying the recorded `register` and
`apply_reset` calls in order rebuilds the island state exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_KEYS = ("islands", "founders", "source_islands")


@dataclass(frozen=True)
class ResetPlan:
    """Islands to clear and, for each, the founder program that restarts it and the island it was taken from."""

    islands: tuple[int, ...]
    """Islands to clear, ascending."""

    founders: tuple[int, ...]
    """founders[i] is the program registered alone in islands[i] after it is cleared."""

    source_islands: tuple[int, ...]
    """source_islands[i] is the surviving island whose best program founders[i] was (kept for the record)."""

    def __post_init__(self) -> None:
        if not (len(self.islands) == len(self.founders) == len(self.source_islands)):
            raise ValueError(
                f"ResetPlan: islands, founders and source_islands must have equal lengths, got "
                f"{len(self.islands)}, {len(self.founders)}, {len(self.source_islands)}"
            )
        for name in _KEYS:
            for v in getattr(self, name):
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError(f"ResetPlan.{name} must hold ints, got {type(v).__name__} {v!r}")
        if len(set(self.islands)) != len(self.islands):
            raise ValueError(f"ResetPlan.islands must not repeat an island, got {self.islands}")
        overlap = set(self.islands) & set(self.source_islands)
        if overlap:
            raise ValueError(f"ResetPlan: islands {sorted(overlap)} are both reset and used as a source of founders")

    def to_dict(self) -> dict[str, list[int]]:
        """Return the plan as plain JSON-able data."""
        return {name: list(getattr(self, name)) for name in _KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResetPlan:
        """Rebuild a plan from `to_dict()` output; a missing or unknown key is an error, not a default."""
        keys = set(data)
        if keys != set(_KEYS):
            raise ValueError(
                f"ResetPlan.from_dict: expected keys {sorted(_KEYS)}, missing {sorted(set(_KEYS) - keys)}, "
                f"unknown {sorted(keys - set(_KEYS))}"
            )
        return cls(**{name: tuple(_as_int_list(name, data[name])) for name in _KEYS})


def plan_reset(best_goodness: Sequence[float], best_ids: Sequence[int | None], rng: np.random.Generator) -> ResetPlan:
    """Plan to reset the worst half of the islands (by best score), each from the best of a random survivor.

    best_goodness[i] is island i's best score oriented so higher is better (-inf for an empty island); best_ids[i]
    its best program id (None when empty). Equal best scores are ordered by a random key from rng rather than by
    adding noise to the scores, so ties break fairly whatever the scale of the scores.
    """
    n = len(best_goodness)
    order = np.lexsort((rng.random(n), np.asarray(best_goodness, dtype=np.float64)))  # worst first
    reset = sorted(int(i) for i in order[: n // 2])
    survivors: list[tuple[int, int]] = []  # (island, its best program), ascending island
    for i in sorted(int(i) for i in order[n // 2 :]):
        pid = best_ids[i]
        if pid is not None:  # an empty survivor (few programs yet) has nothing to give
            survivors.append((i, int(pid)))
    if reset and not survivors:
        raise ValueError("plan_reset: no surviving island has a program to found the reset islands; register first")
    picks = [survivors[int(rng.integers(len(survivors)))] for _ in reset]
    return ResetPlan(tuple(reset), tuple(p for _, p in picks), tuple(s for s, _ in picks))


def _as_int_list(name: str, value: Any) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"ResetPlan.from_dict: {name!r} must be a list of ints, got {type(value).__name__}")
    return list(value)
