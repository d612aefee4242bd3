"""The offline proposer's own walk over a construction: a (1+1) evolution strategy that accepts equal scores.

Why: a construction at a first-order local optimum (the 4 x 4 grid of the distance ratio, where many minimum pairs
and both diagonals tie) is left only by a run of moves that each keep the score; no single move improves it, and
a hand-run search needed a few hundred single-coordinate moves to get off it. The islands cannot make such a run:
a tie joins its parent's cluster, the cluster prefers its shortest code and the elite is the earliest best, so the
seed keeps coming back and a quarter to a half of the parents are picked from lower clusters.

So the walk keeps its own current point beside the islands' choice: the latest child it heard of that scored at
least as well as the point before it (equal counts). A proposal that walks mutates the current point instead of
the islands' parent and is written as the edit that turns the parent into the result, so the engine records,
judges and selects it as any child of that parent. A parent that scores better than the point (or the first
parent) becomes the point. Only the children's trusted scores (the controller's
`child_score` detail), the goal's direction and the proposer's own proposals are used.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from evoforge.engine.propose.offline import follow

CHILD_SCORE = "child_score"  # the detail the controller adds: the valid child's trusted score
LEVEL = "level"  # the detail naming the score a proposal's changed code had (the walk's point, or the parent)
WALKED = "walked"  # the detail marking a proposal that mutated the walk's point
MOVE = "move"  # the detail holding a walked move of numbers (`follow`), so it can be followed up
AGAIN = "again"  # the detail marking a walked move that followed up an earlier one (`follow`)
WAITING = 256  # children remembered until their outcome is heard; the oldest are forgotten first
STALL = 20  # walked moves in a row refused after which the walk may be stuck (`stuck`)
POINT_MOVES = ("shift", "step")  # the walk's moves of one point (or one coordinate)


class Walk:
    """The current point of the walk (score and code), moved by the trusted outcomes of the children."""

    def __init__(self, maximize: bool) -> None:
        self.maximize = maximize
        self.point: tuple[float, str] | None = None
        self._since_moved = 0  # walked moves heard of since the point last changed
        self._ties = 0  # walked moves that tied the point they were made from
        self._point_gains = 0  # walked moves of single points (`POINT_MOVES`) that beat the point
        self._waiting: OrderedDict[str, str] = OrderedDict()  # child key -> code, until `observe` hears of it
        self._moves: dict[str, list[int]] = {}  # per kind of move made from the point: [accepted, tried]
        self._next: tuple[str, str, str] | None = None  # the follow-up: (from which code's key, kind, move)

    def weights(self, kinds: list[str]) -> np.ndarray:
        """How often to try each kind of move on the walk: its acceptance rate so far, from a prior of one in
        five (what suits one construction, single coordinates on a grid or a linear map of a polygon, does
        nothing for another)."""
        return np.array([(a + 1) / (n + 5) for a, n in (self._moves.get(k, [0, 0]) for k in kinds)])

    def at_least(self, a: float, b: float) -> bool:
        """Whether score `a` is as good as `b` or better."""
        return a >= b if self.maximize else a <= b

    def start(self, parent_score: float | None, parent: str) -> tuple[float, str] | None:
        """The point a walking proposal would mutate, given the islands' parent: the walk's, unless the parent is
        better (or there is none yet), when the walk goes on from the parent; None where the parent has no score."""
        if parent_score is None or not math.isfinite(parent_score):
            return None
        if self.point is not None and self.at_least(self.point[0], parent_score):
            return self.point
        return parent_score, parent

    def adopt(self, point: tuple[float, str]) -> None:
        """Go on from `point` (a parent better than the walk's point)."""
        if point != self.point:
            self.point, self._since_moved = point, 0

    @property
    def stuck(self) -> bool:
        """Whether the walk sits in a local optimum that moving one point a long way may leave
        (`literals.relocate`): its last STALL moves were all refused, and moves of single points have beaten the
        point more often than any move tied it. Where ties are as common (a plateau, crossed by a run of neutral
        moves that a jump breaks) or single points never gain (a symmetric set that only a map of all points
        improves), a jump wastes moves, and measured it cost the distance ratio and Heilbronn rows."""
        return self._since_moved >= STALL and self._point_gains > self._ties

    def adopts(self, details: Mapping[str, object]) -> bool:
        """Whether a recorded proposal walked from its parent rather than the point (`start`): replaying it, the
        parent becomes the point."""
        level = details.get(LEVEL)
        return bool(details.get(WALKED)) and isinstance(level, (int, float)) and (
            self.point is None or self.point[0] != level)

    def made(self, child: str, code: str) -> None:
        """A proposed child (its `literals.key_of`), remembered until its outcome is observed."""
        self._waiting[child] = code
        while len(self._waiting) > WAITING:
            self._waiting.popitem(last=False)

    def observe(self, level: float, child: str, score: float | None, numeric: bool, code: str | None = None,
                walked: str | None = None) -> bool:
        """A child's outcome: made from code scoring `level`, it scored `score` (None: no valid score). A move of
        the construction's numbers (`numeric`) that is as good as both becomes the point; a code edit never does
        (its ties mostly add code that changes nothing, and the walk's moves need the numbers they made).
        `code`: the child's code when a resumed run replays children this proposer never made (otherwise the
        remembered code is used). `walked`: the kind of move, when the child was made from the walk's point.
        Returns whether the child became the point."""
        waiting = self._waiting.pop(child, None)
        code = code if code is not None else waiting
        good = score is not None and math.isfinite(score) and self.at_least(score, level)
        if walked is not None:
            counts = self._moves.setdefault(walked, [0, 0])
            counts[0] += good
            counts[1] += 1
            self._since_moved += 1
            if score is not None and score == level:
                self._ties += 1
            elif good and walked in POINT_MOVES:
                self._point_gains += 1
        if not numeric or code is None or score is None or not math.isfinite(score):
            return False
        if self.at_least(score, level) and (self.point is None or self.at_least(score, self.point[0])):
            self.point, self._since_moved = (score, code), 0
            return True
        return False

    def follow(self, kind: str, source: str, child: str, move: str | None, taken: bool, again: bool) -> None:
        """A walked move's outcome sets the next one (`follow`): made again from the child, `follow.GROW` times
        as long, where the child became the point; mirrored from `source` (the key of the code it was made from)
        where it was refused, unless it was itself a follow-up. Only the last walked move counts, so a resumed
        run, which replays outcomes and never proposals, ends with the follow-up an uninterrupted one had."""
        self._next = None
        if move is not None and taken:
            self._next = child, kind, follow.scaled(move, follow.GROW)
        elif move is not None and not again:
            self._next = source, kind, follow.scaled(move, -1.0)

    def next_move(self, point: str) -> tuple[str, str] | None:
        """The follow-up (kind, move) to make from the code whose key is `point`, if the last walked move left
        one for it; taken once, so proposals made before the next outcome is heard (several in flight, several
        answers to one prompt) draw fresh moves instead of making it again."""
        if self._next is None or self._next[0] != point:
            return None
        planned, self._next = self._next, None
        return planned[1], planned[2]
