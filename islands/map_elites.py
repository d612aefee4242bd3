"""A MAP-Elites archive beside the islands: programs binned by behaviour descriptors, each cell keeps its best.

Pure in-memory state over program ids (no database, no clock; randomness from the Generator passed in), like
`IslandModel`. Every member is kept, so a cell's elite is a function of the member set alone: a resumed run
rebuilds the same grid by registering its recorded programs again, and withdrawing an elite hands its cell to the
next best member (or empties it).

Bins are equal-width over the range of values seen so far, per descriptor (`bins` of them; all values equal: one
bin). The grid therefore sharpens as the search spreads out, and stays deterministic: no edge depends on order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line validates settings with this module without loading numpy
    import numpy as np

CODE_LENGTH = "code_length"
"""The descriptor evoforge derives itself: the program's length in characters."""

Cell = tuple[int, ...]


class MapElitesError(ValueError):
    """A descriptor or a bin count is unusable; the message names it and the fix.

    `flag` is the command-line flag that gave the value and `problem` the rest of the message, so a caller can name
    the setting as its user knows it (the Python API's keyword) without rewriting the text."""

    def __init__(self, flag: str, problem: str) -> None:
        super().__init__(f"{flag} {problem}")
        self.flag = flag
        self.problem = problem


@dataclass(frozen=True)
class _Member:
    program_id: int
    score: float
    values: tuple[float, ...]


class MapElitesArchive:
    """Programs in a grid of `bins` per descriptor; each occupied cell's elite is its best member (earlier id on a
    tie); parents are drawn uniformly over occupied cells."""

    def __init__(self, descriptors: Sequence[str], bins: int, maximize: bool) -> None:
        validate(descriptors, bins)
        self.descriptors = tuple(descriptors)
        self.bins = bins
        self.maximize = maximize
        self._members: dict[int, _Member] = {}
        self._cells: dict[Cell, int] | None = None  # cell -> elite id, recomputed after a change

    def descriptor_values(self, code_length: int, metrics: Mapping[str, float]) -> tuple[float, ...] | None:
        """The program's descriptor values, or None when one is missing or not finite (it stays out)."""
        values = []
        for name in self.descriptors:
            value = code_length if name == CODE_LENGTH else metrics.get(name)
            if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
                return None
            values.append(float(value))
        return tuple(values)

    def register(self, program_id: int, score: float, code_length: int, metrics: Mapping[str, float]) -> bool:
        """Add a valid, selectable program; False when it lacks a descriptor value. Each id is registered once."""
        if program_id in self._members:
            raise ValueError(f"MapElitesArchive.register: program {program_id} is already registered")
        values = self.descriptor_values(code_length, metrics)
        if values is None or not math.isfinite(score):
            return False
        self._members[program_id] = _Member(program_id, float(score), values)
        self._cells = None
        return True

    def withdraw(self, program_id: int) -> None:
        """Take a program out (a person rejected it): its cell goes to the next best member, or empties."""
        if self._members.pop(program_id, None) is not None:
            self._cells = None

    def cells(self) -> dict[Cell, int]:
        """Each occupied cell and its elite's id, cells in sorted order."""
        if self._cells is None:
            self._cells = self._build()
        return self._cells

    def cell_of(self, program_id: int) -> Cell:
        """The cell a registered program falls in under the current bins."""
        return self._cell(self._members[program_id].values, self._ranges())

    def select(self, k: int, rng: np.random.Generator) -> list[int]:
        """Up to k elites of distinct cells drawn uniformly; the first drawn (the one to improve) comes last, the
        others before it worst to best, as the islands order parents. Empty when no program is registered."""
        cells = self.cells()
        if not cells:
            return []
        elites = list(cells.values())
        drawn = [elites[int(i)] for i in rng.choice(len(elites), size=min(k, len(elites)), replace=False)]
        sign = 1.0 if self.maximize else -1.0
        others = sorted(drawn[1:], key=lambda pid: (sign * self._members[pid].score, -pid))
        return [*others, drawn[0]]

    def __len__(self) -> int:
        return len(self._members)

    def _ranges(self) -> list[tuple[float, float]]:
        columns = zip(*(m.values for m in self._members.values()))
        return [(min(c), max(c)) for c in columns]

    def _cell(self, values: tuple[float, ...], ranges: list[tuple[float, float]]) -> Cell:
        cell = []
        for v, (lo, hi) in zip(values, ranges):
            cell.append(0 if hi <= lo else min(self.bins - 1, int((v - lo) / (hi - lo) * self.bins)))
        return tuple(cell)

    def _build(self) -> dict[Cell, int]:
        if not self._members:
            return {}
        ranges = self._ranges()
        sign = 1.0 if self.maximize else -1.0
        best: dict[Cell, _Member] = {}
        for m in self._members.values():
            cell = self._cell(m.values, ranges)
            held = best.get(cell)
            if held is None or sign * m.score > sign * held.score or (
                    m.score == held.score and m.program_id < held.program_id):
                best[cell] = m
        return {cell: best[cell].program_id for cell in sorted(best)}


def validate(descriptors: Sequence[str], bins: int) -> None:
    """Refuse an empty or repeated descriptor list, or a bin count below 2 (one bin is no grid)."""
    if isinstance(descriptors, str) or not descriptors:
        raise MapElitesError("--map-elites", f"{descriptors!r}: give one or more descriptors, e.g. "
                             f"'{CODE_LENGTH}' or the name of a metric the problem's score returns")
    if any(not isinstance(d, str) or not d.strip() for d in descriptors) or len(set(descriptors)) != len(descriptors):
        raise MapElitesError("--map-elites", f"{','.join(map(str, descriptors))}: descriptors must be distinct, "
                             "non-empty names")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise MapElitesError("--map-bins", f"{bins!r}: must be a whole number >= 2")
