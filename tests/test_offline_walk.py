"""The offline proposer's walk over a construction: its point accepts equal scores of moves of numbers, a walking
proposal mutates the point and is written against the islands' parent, single-coordinate steps, the kind mix that
follows acceptance, relocations once the walk is stuck, and a real search that records child scores, walks, and
resumes exactly."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from evoforge.db import Store
from evoforge.engine.program.patching import apply_response
from evoforge.engine.propose.offline import AstMutator
from evoforge.engine.propose.offline.literals import OFFSETS, StepSizes, key_of, offsets_of, relocate, walk_step
from evoforge.engine.propose.offline.walk import CHILD_SCORE, LEVEL, STALL, WALKED, Walk
from evoforge.engine.run.config import RunConfig
from evoforge.engine.run.search import resume_search, run_search

REPO = Path(__file__).resolve().parent.parent
GRID = '''def points(n: int, dim: int) -> np.ndarray:
    grid = np.array([(i, j) for i in range(4) for j in range(4)], dtype=float)
    return grid
'''


def _statement(code: str) -> ast.FunctionDef:
    func = ast.parse(code).body[0]
    assert isinstance(func, ast.FunctionDef)
    return func


def test_the_point_takes_moves_of_numbers_that_are_as_good_never_worse_and_never_code_edits() -> None:
    walk = Walk(maximize=False)  # the distance ratio: lower is better
    walk.made("a", "A")
    walk.observe(18.0, "a", 18.0, numeric=True)
    assert walk.point == (18.0, "A")  # a neutral move is accepted
    walk.made("b", "B")
    walk.observe(18.0, "b", 18.5, numeric=True)
    assert walk.point == (18.0, "A")  # a worse one is not
    walk.made("c", "C")
    walk.observe(18.0, "c", 18.0, numeric=False)
    assert walk.point == (18.0, "A")  # a code edit that ties is not either
    walk.observe(18.0, "d", 17.5, numeric=True, code="D")  # a replayed child: its code comes with it
    assert walk.point == (17.5, "D")
    walk.made("e", "E")
    walk.observe(19.0, "e", 18.0, numeric=True)  # better than its parent, but worse than the point
    assert walk.point == (17.5, "D")
    walk.observe(17.5, "f", None, numeric=True, code="F")  # no valid score
    assert walk.point == (17.5, "D")


def test_the_point_replaces_parents_it_is_at_least_as_good_as_and_a_better_parent_replaces_it() -> None:
    walk = Walk(maximize=True)
    assert walk.start(1.0, "P") == (1.0, "P")  # no point yet: the walk starts from the parent
    walk.observe(2.0, "a", 2.0, numeric=True, code="A")
    assert walk.start(2.0, "P") == (2.0, "A") and walk.start(1.5, "P") == (2.0, "A")
    assert walk.start(2.5, "P") == (2.5, "P")  # a better parent: the walk goes on from it
    assert walk.start(None, "P") is None and walk.start(float("nan"), "P") is None
    assert not walk.adopts({"walked": 1, "level": 2.0}) and walk.adopts({"walked": 1, "level": 2.5})
    assert not walk.adopts({"level": 2.5})  # it did not walk


def test_the_walk_tries_each_kind_of_move_as_often_as_it_was_accepted() -> None:
    walk = Walk(maximize=True)
    assert np.allclose(walk.weights(["step", "shift"]), [0.2, 0.2])  # the prior: one in five
    for i in range(20):
        walk.observe(1.0, f"s{i}", 1.0 if i % 2 else 0.5, numeric=True, code="S", walked="step")
        walk.observe(1.0, f"t{i}", 0.5, numeric=True, code="T", walked="shift")
    step, shift = walk.weights(["step", "shift"])
    assert step == (10 + 1) / (20 + 5) and shift == 1 / (20 + 5)


def test_step_sizes_accept_a_tie_at_the_same_step_and_settle_at_their_rate() -> None:
    steps = StepSizes(0.1, 0.001, 1.0, rate=0.1)
    steps.observe("p", "tie", 0.1, improved=False, tied=True)
    assert steps.step("tie") == 0.1  # the tied child walks on, with the step that made it
    for i in range(50):  # a plateau: ties alone neither grow nor shrink the step
        steps.observe("tie", f"tie{i}", steps.step("tie"), improved=False, tied=True)
    assert steps.step("tie49") == 0.1
    steps.observe("tie49", "better", 0.1, improved=True)
    assert steps.step("better") == 0.1 * 1.5
    steps.observe("better", "worse", 0.15, improved=False)
    assert np.isclose(steps.step("better"), 0.15 * 1.5 ** (-0.1 / 0.9))  # nine failures undo one success


def test_a_step_moves_exactly_one_offset() -> None:
    rng = np.random.default_rng(3)
    code = GRID
    for _ in range(5):
        lines = code.split("\n")
        func = _statement(code)
        edit = walk_step(func, lines, rng, 0.3)
        assert edit is not None
        new = "\n".join(lines[:edit.start] + edit.new + lines[edit.end:])
        before = [s for s in func.body if offsets_of(s)]
        after = [s for s in _statement(new).body if offsets_of(s)]
        old_values = offsets_of(before[0])[1] if before else [0.0] * OFFSETS  # type: ignore[index]
        new_values = offsets_of(after[0])[1]  # type: ignore[index]
        assert sum(a != b for a, b in zip(old_values, new_values)) == 1
        code = new


def _walked(mutator: AstMutator, parent: str, level: float, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [mutator.propose_detailed([parent], ["points"], rng, level=level) for _ in range(30)]


def test_a_walking_proposal_mutates_the_point_and_is_written_against_the_parent() -> None:
    first = AstMutator(maximize=False)
    rng = np.random.default_rng(0)
    moved = next(p for p in iter(lambda: first.propose_detailed([GRID], ["points"], rng, level=18.0), None)
                 if p.kind == "shift")
    assert moved.details[LEVEL] == 18.0
    first.observe({"kind": "shift", **moved.details, CHILD_SCORE: 18.0}, False)  # a neutral move: the point
    assert first.walk.point == (18.0, moved.code)

    made = _walked(first, GRID, 18.0, seed=1)
    walking = [p for p in made if p.details.get(WALKED)]
    assert len(walking) > 20  # nine in ten, once there is a point
    assert {p.kind for p in walking} <= {"shift", "transform", "step"}
    for p in walking:
        assert apply_response(p.response, GRID, ["points"]) == p.code  # an edit of the parent the engine holds
        assert p.details[LEVEL] == 18.0 and p.details["parent"] == key_of(moved.code)
    assert any(offsets_of(s) for s in _statement(walking[0].code).body)  # made from the point's offsets

    again = AstMutator(maximize=False)
    again.observe({"kind": "shift", **moved.details, CHILD_SCORE: 18.0}, False, code=moved.code)
    assert [p.response for p in _walked(again, GRID, 18.0, seed=1)] == [p.response for p in made]

    better = [p for p in _walked(first, GRID, 17.0, seed=1) if p.details.get(WALKED)]
    assert better and all(p.details[LEVEL] == 17.0 for p in better)  # a better parent: the walk goes on from it
    assert first.walk.point == (17.0, GRID)


def test_a_real_search_records_child_scores_walks_off_the_grid_and_resumes_the_same(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    problem = str(REPO / "problems" / "min_max_distance.py")
    run_search(RunConfig(problem=problem, name="whole", budget=60, seed=0), db, progress=False)
    with Store(db) as store:
        run = store.get_run("whole")
        assert run is not None
        proposals = {p.id: p for p in store.proposals(run.id)}
        ids = [item.id for item in store.history(run.id) if item.kind == "program"]
        programs = store.get_programs(ids)
    scored = [p for p in programs if p.proposal_id is not None and p.status == "ok"]
    assert scored and all(proposals[p.proposal_id].details[CHILD_SCORE] == p.score for p in scored)
    assert sum(1 for p in proposals.values() if p.details.get(WALKED)) > 10

    run_search(RunConfig(problem=problem, name="part", budget=25, seed=0), db, progress=False)
    resume_search("part", db, budget=60, progress=False)
    with Store(db) as store:
        whole, part = store.get_run("whole"), store.get_run("part")
        assert whole is not None and part is not None
        assert [(p.response, p.details) for p in store.proposals(part.id)] == \
            [(p.response, p.details) for p in store.proposals(whole.id)]


def _stick(walk: Walk, ties: int = 0) -> None:
    """A walk that climbed by single-point moves (and tied `ties` times), then had STALL moves refused."""
    walk.observe(1.0, "up", 2.0, numeric=True, code="U", walked="step")
    for i in range(ties):
        walk.observe(2.0, f"tie{i}", 2.0, numeric=True, code="T", walked="shift")
    for i in range(STALL):
        walk.observe(2.0, f"no{i}", 1.5, numeric=True, code="N", walked="shift")


def test_the_walk_is_stuck_after_refused_moves_only_where_single_points_gained_and_ties_are_rare() -> None:
    walk = Walk(maximize=True)
    walk.observe(1.0, "up", 2.0, numeric=True, code="U", walked="step")
    for i in range(STALL - 1):
        walk.observe(2.0, f"no{i}", 1.5, numeric=True, code="N", walked="shift")
    assert not walk.stuck  # one refusal short
    walk.observe(2.0, "last", 1.5, numeric=True, code="N", walked="transform")
    assert walk.stuck
    walk.observe(2.0, "better", 2.5, numeric=True, code="B", walked="transform")
    assert not walk.stuck  # an accepted move starts the count again

    plateau = Walk(maximize=True)
    _stick(plateau, ties=1)  # as many ties as single-point gains: a plateau's walk, never stuck
    assert not plateau.stuck
    mapped = Walk(maximize=True)
    mapped.observe(1.0, "map", 2.0, numeric=True, code="M", walked="transform")  # only a map of all points gained
    for i in range(STALL):
        mapped.observe(2.0, f"no{i}", 1.5, numeric=True, code="N", walked="step")
    assert not mapped.stuck


def test_relocate_puts_one_point_before_the_offsets_inside_the_widened_box() -> None:
    rng = np.random.default_rng(4)
    assert relocate(_statement(GRID), GRID.split("\n"), rng) is None  # no offsets yet: nothing to fine-tune it
    lines = GRID.split("\n")
    edit = walk_step(_statement(GRID), lines, rng, 0.1)
    assert edit is not None
    code = "\n".join(lines[:edit.start] + edit.new + lines[edit.end:])
    for _ in range(20):
        lines = code.split("\n")
        moved = relocate(_statement(code), lines, rng)
        assert moved is not None
        new = "\n".join(lines[:moved.start] + moved.new + lines[moved.end:])
        body = _statement(new).body
        assert len(body) == len(_statement(code).body) + 1
        placed = [i for i, s in enumerate(body)
                  if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Subscript)]
        assert offsets_of(body[placed[-1] + 1]) is not None  # each goes right before the offsets
        before, after = _run(code), _run(new)
        changed = np.flatnonzero(np.any(before != after, axis=1))
        assert len(changed) <= 1  # one point moved (or none, where the box put it back)
        where = [n.value for n in ast.walk(body[placed[-1]]) if isinstance(n, ast.Constant)
                 and isinstance(n.value, float)]  # the point's place, in units of the box (|u| for a negative u)
        assert len(where) == 2 and all(u <= 1.2 for u in where)
        code = new


def _run(code: str) -> np.ndarray:
    namespace = {"np": np}
    exec(compile(code, "<candidate>", "exec"), namespace)
    return np.asarray(namespace["points"](16, 2))


def test_the_proposer_relocates_only_when_its_walk_is_stuck() -> None:
    fresh = AstMutator(maximize=True)
    assert all(p.kind != "relocate" for p in _walked(fresh, GRID, 1.0, seed=2))
    stuck = AstMutator(maximize=True)
    rng = np.random.default_rng(0)
    moved = next(p for p in iter(lambda: stuck.propose_detailed([GRID], ["points"], rng, level=1.0), None)
                 if p.kind == "step")
    stuck.observe({"kind": "step", **moved.details, CHILD_SCORE: 2.0}, True)  # a single-point gain: the point
    _stick(stuck.walk)
    stuck.walk.point = (2.0, moved.code)
    made = _walked(stuck, GRID, 1.0, seed=2)
    relocations = [p for p in made if p.kind == "relocate"]
    assert relocations and all(p.details.get(WALKED) for p in relocations)
    for p in relocations:
        assert apply_response(p.response, GRID, ["points"]) == p.code
