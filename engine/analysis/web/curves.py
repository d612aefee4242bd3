"""A run's curve as the chart draws it, kept up to date by reading only what was recorded since the last look.

A chart 1100 pixels wide cannot show 100,000 candidates, and sending them all would make every page slow. So the
curve keeps every point where a best changes (the run's, or an island's: the seed counts on every island) and an
even sample of the rest, every `stride`-th candidate evaluated, with the stride doubling as the run grows so that
at most MAX_SAMPLE sampled points are kept. Each point carries the running bests at that moment, so the lines are
exact and the score points a fair picture.

The report and the live run page build it the same way (the report from scratch), so they show the same curve.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evoforge.db import RunInfo, Store
from evoforge.engine.analysis import queries as analysis

MAX_SAMPLE = 2000


@dataclass(frozen=True)
class Point:
    """One candidate drawn on the chart, with the running bests once it was evaluated."""

    n: int  # candidates evaluated so far, this one included
    seq: int
    program_id: int
    seconds: float
    score: float | None
    valid: bool
    rejected: bool
    seed: bool
    island: int
    best: float | None
    best_program_id: int  # -1 before the first valid program
    island_best: tuple[float | None, ...]
    change: bool  # a best changed here: kept whatever the stride


def _number(value: float | None) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    return None if value is None or not math.isfinite(value) else float(value)


def stride_for(total: int) -> int:
    """The smallest power of two that samples `total` candidates into at most MAX_SAMPLE points."""
    stride = 1
    while total > MAX_SAMPLE * stride:
        stride *= 2
    return stride


class LiveCurve:
    """A run's curve, extended at each refresh by the programs recorded since the previous one.

    A rejection changes the running best of everything after the program, so the curve is rebuilt when the run's
    rejected programs change; a held-out score is looked up when the curve is sent, so a late one changes no point.
    `version` names what a page holds: the points it was sent are still right while it stays the same.
    """

    def __init__(self, run: RunInfo) -> None:
        self.run = run
        self.maximize = analysis.maximize(run)
        self.num_islands = analysis.num_islands(run)
        self._name = secrets.token_hex(4)  # a page kept open across a restart of the server gets a fresh curve
        self._generation = 0
        self._rejected: frozenset[int] | None = None
        self._held: dict[int, float] = {}
        self._reset()

    def _reset(self) -> None:
        self._after_seq = -1
        self.total = 0
        self.stride = 1
        self._best: tuple[float, int] | None = None  # score, seq
        self._island_best: list[tuple[float, int] | None] = [None] * self.num_islands
        self.points: list[Point] = []
        self._last: Point | None = None  # the latest candidate, sent as a point though not kept as one

    @property
    def version(self) -> str:
        return f"{self._name}.{self._generation}.{self.stride}"

    def refresh(self, store: Store) -> None:
        """Read what was recorded since the last refresh (everything, when a rejection changed earlier points)."""
        rejected, held = store.program_marks(self.run.id)
        if self._rejected is not None and rejected != self._rejected:
            self._reset()
            self._generation += 1
        self._rejected = rejected
        changed = {pid for pid in held.keys() | self._held.keys() if held.get(pid) != self._held.get(pid)}
        if changed & {p.best_program_id for p in self.points}:
            self._generation += 1  # a page holds a point whose held-out score is now different
        self._held = held
        rows = store.curve_rows(self.run.id, after_seq=self._after_seq)
        if not rows:
            return
        stride = stride_for(self.total + len(rows))
        if stride != self.stride:
            self.stride = stride
            self.points = [p for p in self.points if p.change or p.n % stride == 0]
        kept = self._walk(rows)
        self._after_seq = rows[-1][0]
        details = {row[0]: row for row in store.curve_points(self.run.id, [k[1] for k in kept])}
        start = self.run.created_at
        made = []
        for n, seq, seed, best, best_seq, islands, change in kept:
            _, pid, score, status, is_rejected, created, island = details[seq]
            made.append(Point(n=n, seq=seq, program_id=pid, seconds=(created - start).total_seconds(), score=score,
                              valid=status == "ok" and score is not None, rejected=is_rejected, seed=seed,
                              island=island, best=best, best_program_id=-1 if best_seq is None else best_seq,
                              island_best=islands, change=change))
        ids = {p.seq: p.program_id for p in self.points + made}
        made = [_with_best_id(p, ids) for p in made]
        if made and not made[-1].change and made[-1].n % self.stride != 0:
            self._last = made.pop()
        else:
            self._last = None
        self.points.extend(made)

    def _walk(self, rows: Sequence[tuple[int, float | None, int]]) -> list[tuple[Any, ...]]:
        """The running bests through the new rows (island -1: a seed); the rows to draw, each with the bests after
        it. The one loop over every row of a long run: kept to plain comparisons."""
        up, stride = self.maximize, self.stride
        best, islands = self._best, self._island_best
        everywhere = range(self.num_islands)
        kept: list[tuple[Any, ...]] = []
        n = self.total
        last = len(rows) - 1
        for i, (seq, counted, island) in enumerate(rows):
            n += 1
            change = False
            if counted is not None:
                if best is None or (counted > best[0] if up else counted < best[0]):
                    best, change = (counted, seq), True
                for k in everywhere if island < 0 else (island,):
                    here = islands[k]
                    if here is None or (counted > here[0] if up else counted < here[0]):
                        islands[k], change = (counted, seq), True
            if change or n % stride == 0 or i == last:
                kept.append((n, seq, island < 0, None if best is None else best[0],
                             None if best is None else best[1], tuple(None if b is None else b[0] for b in islands),
                             change))
        self.total, self._best = n, best
        return kept

    def payload(self, *, since: int = 0, version: str | None = None) -> dict[str, Any]:
        """The points after `since` candidates evaluated, as JSON-ready columns; all of them (`reset`) when the
        page holds another version's points."""
        reset = version != self.version
        since = 0 if reset else max(0, since)
        points = [p for p in self.points if p.n > since]
        if self._last is not None and self._last.n > since:
            points.append(self._last)
        held = self._held
        return {"run": self.run.name, "status": self.run.status, "maximize": self.maximize,
                "num_islands": self.num_islands, "total": self.total, "version": self.version, "reset": reset,
                "stride": self.stride,
                "evaluated": [p.n for p in points], "seconds": [p.seconds for p in points],
                "score": [_number(p.score) for p in points], "valid": [p.valid for p in points],
                "rejected": [p.rejected for p in points], "seed": [p.seed for p in points],
                "island": [p.island for p in points], "program_id": [p.program_id for p in points],
                "best": [_number(p.best) for p in points], "best_program_id": [p.best_program_id for p in points],
                "best_held_out": [_number(held.get(p.best_program_id)) for p in points],
                "island_best": [[_number(p.island_best[k]) for p in points] for k in range(self.num_islands)]}


def _with_best_id(p: Point, ids: dict[int, int]) -> Point:
    """The point with its best program named by id (the walk knows the best by seq)."""
    if p.best_program_id < 0:
        return p
    return Point(**{**p.__dict__, "best_program_id": ids[p.best_program_id]})


def curve_payload(store: Store, run: RunInfo) -> dict[str, Any]:
    """The run's whole curve, read afresh (the report; the server keeps a LiveCurve per run)."""
    live = LiveCurve(run)
    live.refresh(store)
    return live.payload()
