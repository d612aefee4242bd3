"""The walk's follow-ups (`engine/propose/offline/follow.py`): a move read from two programs' offsets and made
again, an accepted move repeated twice as long from the child, a refused one mirrored from its point, once, and a
proposer that makes them in place of a fresh draw."""

from __future__ import annotations

import ast

import numpy as np

from evoforge.engine.program.patching import apply_response
from evoforge.engine.propose.offline import AstMutator, follow
from evoforge.engine.propose.offline.literals import OFFSETS, key_of, offset_lines, offsets_of
from evoforge.engine.propose.offline.walk import AGAIN, CHILD_SCORE, MOVE, WALKED, Walk

GRID = '''def points(n: int, dim: int) -> np.ndarray:
    grid = np.array([(i, j) for i in range(4) for j in range(4)], dtype=float)
    return grid
'''


def _with_offsets(values: list[float]) -> str:
    lines = GRID.rstrip("\n").split("\n")
    return "\n".join([*lines[:2], *offset_lines("    ", "grid", values), lines[2]]) + "\n"


def _offsets(code: str) -> list[float]:
    func = ast.parse(code).body[0]
    assert isinstance(func, ast.FunctionDef)
    found = [offsets_of(s) for s in func.body if offsets_of(s) is not None]
    assert found and found[0] is not None
    return found[0][1]


def _made(code: str, move: str) -> str:
    func = ast.parse(code).body[0]
    assert isinstance(func, ast.FunctionDef)
    lines = code.split("\n")
    edit = follow.made(func, lines, move)
    assert edit is not None
    return "\n".join(lines[:edit.start] + edit.new + lines[edit.end:])


def test_a_move_is_read_from_two_programs_and_made_again_scaled_or_mirrored() -> None:
    before = [0.0] * OFFSETS
    before[3] = 0.5
    after = list(before)
    after[3], after[5] = 0.75, -0.125
    move = follow.between(_with_offsets(before), _with_offsets(after), "points")
    assert move == "points 3:0.25 5:-0.125" and follow.function_of(move) == "points"
    assert _offsets(_made(_with_offsets(before), move)) == after
    assert _offsets(_made(_with_offsets(after), follow.scaled(move, 2.0)))[3:6] == [1.25, 0.0, -0.375]
    assert _offsets(_made(_with_offsets(before), follow.scaled(move, -1.0)))[3:6] == [0.25, 0.0, 0.125]
    assert follow.between(_with_offsets(after), _with_offsets(after), "points") is None  # nothing moved
    assert follow.between(GRID, _with_offsets(after), "points") == "points 3:0.75 5:-0.125"  # offsets from zeros
    grid = ast.parse(GRID).body[0]
    assert isinstance(grid, ast.FunctionDef) and follow.made(grid, GRID.split("\n"), move) is None  # no offsets


def test_the_walk_repeats_an_accepted_move_doubled_and_mirrors_a_refused_one_once() -> None:
    walk = Walk(maximize=False)
    walk.follow("step", "P", "C", "points 3:0.25", taken=True, again=False)
    assert walk.next_move("P") is None and walk.next_move("C") == ("step", "points 3:0.5")
    assert walk.next_move("C") is None  # taken once
    walk.follow("step", "C", "D", "points 3:0.5", taken=False, again=True)  # a refused follow-up: nothing next
    assert walk.next_move("C") is None and walk.next_move("D") is None
    walk.follow("shift", "C", "E", "points 1:0.1 2:-0.2", taken=False, again=False)
    assert walk.next_move("C") == ("shift", "points 1:-0.1 2:0.2")
    walk.follow("relocate", "C", "F", None, taken=False, again=False)  # the last walked move counts
    assert walk.next_move("C") is None


def test_the_proposer_follows_an_accepted_move_from_the_child_and_mirrors_a_refused_one() -> None:
    mutator = AstMutator(maximize=False)
    rng = np.random.default_rng(3)
    first = next(p for p in iter(lambda: mutator.propose_detailed([GRID], ["points"], rng, level=18.0), None)
                 if p.kind == "step")
    assert isinstance(first.details[MOVE], str) and first.details[WALKED] == 1
    mutator.observe({"kind": "step", **first.details, CHILD_SCORE: 18.0}, False)  # a tie: it is the point
    repeat = mutator.propose_detailed([GRID], ["points"], np.random.default_rng(0), level=18.0)
    assert repeat.details[AGAIN] == 1 and repeat.details["parent"] == key_of(first.code)
    assert apply_response(repeat.response, GRID, ["points"]) == repeat.code  # written against the parent
    resumed = AstMutator(maximize=False)  # a resumed run replays the outcome, with the child's code
    resumed.observe({"kind": "step", **first.details, CHILD_SCORE: 18.0}, False, code=first.code)
    assert resumed.propose_detailed([GRID], ["points"], np.random.default_rng(0), level=18.0) == repeat
    base, once, twice = 0.0, _offsets(first.code), _offsets(repeat.code)
    moved = [i for i, v in enumerate(once) if v != base]
    assert len(moved) == 1 and twice[moved[0]] == float(f"{3 * once[moved[0]]:.6g}")  # on by twice the move

    mutator.observe({"kind": "step", **repeat.details, CHILD_SCORE: 19.0}, False)  # refused, and a follow-up
    fresh = mutator.propose_detailed([GRID], ["points"], np.random.default_rng(0), level=18.0)
    assert AGAIN not in fresh.details  # a refused follow-up is not mirrored
    assert isinstance(fresh.details.get(MOVE), str)  # a fresh move of the offsets (this seed draws one)
    mutator.observe({"kind": fresh.kind, **fresh.details, CHILD_SCORE: 25.0}, False)  # refused: mirrored next
    mirror = mutator.propose_detailed([GRID], ["points"], np.random.default_rng(0), level=18.0)
    assert mirror.details[AGAIN] == 1 and mirror.details[MOVE] == follow.scaled(str(fresh.details[MOVE]), -1)
    assert mirror.details["parent"] == key_of(first.code)


def test_follow_ups_are_the_same_under_a_seed() -> None:
    def made(seed: int) -> list[str]:
        mutator, rng = AstMutator(maximize=False), np.random.default_rng(seed)
        out = []
        for i in range(40):
            p = mutator.propose_detailed([GRID], ["points"], rng, level=18.0)
            mutator.observe({"kind": p.kind, **p.details, CHILD_SCORE: 18.0 + (i % 3 == 0)}, False)
            out.append(p.response)
        return out

    assert made(5) == made(5)
    assert made(5) != made(6)
