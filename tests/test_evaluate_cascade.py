"""Cascade evaluation: stages run first, a stage below its threshold stops the candidate early ('culled')."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.evaluators import SandboxPool, load_problem

CASCADE = Path(__file__).parent / "fixtures" / "cascade_problem.py"
# On the costly input (x = 100) these candidates spin: a cascade that works never waits for it.
SLOW_ON_COSTLY = ("def f(x):\n    if x == 100:\n        print('costly input started')\n"
                  "        while True:\n            pass\n    return {}\n")


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(load_problem(CASCADE), 1) as pool:
        yield pool


def test_passing_every_stage_scores_all_inputs_in_the_problem_order(pool):
    ev = pool.evaluate(pool.problem.seed_code)
    assert ev.status == "ok" and ev.stage is None and ev.error is None
    assert list(ev.scores) == ["costly", "cheap", "mid"]  # the problem's order, whatever order they ran in
    assert ev.scores == {"costly": 200.0, "cheap": 2.0, "mid": 4.0}
    assert ev.score == pytest.approx(206 / 3)


@pytest.mark.parametrize(("body", "stage", "scored"), [
    ("x * 1.5", 1, ["cheap"]),  # f(1) = 1.5 < 2
    ("x * 2 if x < 2 else x * 1.5", 2, ["cheap", "mid"]),  # passes stage 1, f(2) = 3 < 4
])
def test_a_stage_below_its_threshold_culls_before_the_costly_input(pool, body, stage, scored):
    ev = pool.evaluate(SLOW_ON_COSTLY.replace("{}", body))
    assert "costly input started" not in ev.stdout, "the costly input ran although an earlier stage culled it"
    assert ev.status == "culled" and ev.stage == stage and ev.score is None
    assert list(ev.scores) == scored
    assert f"stage {stage}" in ev.error and "below the threshold" in ev.error


def test_cascade_off_held_out_and_named_inputs_run_everything(pool):
    code = "def f(x):\n    return x * 1.5\n"
    assert pool.evaluate(code).status == "culled"
    full = pool.evaluate(code, cascade=False)
    assert full.status == "ok" and full.stage is None and len(full.scores) == 3
    assert pool.evaluate(code, ["cheap"]).status == "ok"


def test_an_invalid_output_stops_the_candidate_at_once(pool):
    ev = pool.evaluate(SLOW_ON_COSTLY.replace("{}", "float('nan') if x == 1 else x * 2"))
    assert ev.status == "invalid" and "'cheap'" in ev.error and ev.stage is None
    assert "costly input started" not in ev.stdout  # stopped at the invalid output, before the costly input
    assert pool.evaluate(pool.problem.seed_code).status == "ok"  # the stopped server serves the next one


def test_minimised_problems_cull_above_the_threshold(tmp_path):
    source = CASCADE.read_text().replace('"memory_limit_mb": 1024', '"memory_limit_mb": 1024, "maximize": False')
    path = tmp_path / "min_cascade.py"
    path.write_text(source)
    with SandboxPool(load_problem(path), 1) as pool:
        ev = pool.evaluate("def f(x):\n    return x * 3\n")  # f(1) = 3 > 2: worse when lower is better
        assert ev.status == "culled" and ev.stage == 1 and "above the threshold" in ev.error
        assert pool.evaluate("def f(x):\n    return x\n").status == "ok"
