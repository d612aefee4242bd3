"""Three problem files a new user wrote from the README alone, one of each kind, run the way the README says.

A construction (a Golomb ruler grown as a list), a heuristic inside a harness loop with held-out instances (a
greedy TSP tour) and a compiled numba harness with two metrics, feedback and a bound (online makespan). Each runs a
few candidates through the real CLI or API, real SQLite and the real sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import evoforge

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "evoforge", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_construction_grown_as_a_list_gets_a_program_from_every_offline_proposal(tmp_path: Path) -> None:
    """`build(n: int) -> list` is a construction, but it builds no numpy array, so the offline proposer's walk has
    no points to move; its proposals must mutate the code instead of failing (they once failed 25 times in 30)."""
    run = evoforge.run(str(FIXTURES / "golomb_problem.py"), budget=12, db=f"sqlite:///{tmp_path / 'runs.db'}",
                       seed=1, name="golomb", overrides={"sizes": [5, 6]})
    programs = run.programs()
    assert run.status == "finished"
    assert len(programs) == 13  # the seed and one program per proposal: none came back without a program
    assert all(p["proposal_id"] is not None for p in programs if p["origin"] != "seed")


def test_a_harness_loop_heuristic_runs_is_resumed_and_scored_held_out(tmp_path: Path) -> None:
    problem, db = str(FIXTURES / "tsp_problem.py"), f"sqlite:///{tmp_path / 'runs.db'}"
    first = _cli("run", problem, "--budget", "6", "--seed", "1", "--db", db, "--name", "tsp", "--quiet",
                 "--set", "cities=12", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    more = _cli("resume", "tsp", "--budget", "10", "--db", db, "--quiet", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    runs = json.loads(_cli("runs", "--db", db, "--json", cwd=tmp_path).stdout)
    assert [(r["name"], r["status"], r["candidates"]) for r in runs] == [("tsp", "finished", 11)]
    best = evoforge.load_run("tsp", db=db).best(1)[0]
    assert best.score >= 1.0 and best.held_out_score is not None and best.held_out_score >= 1.0  # over the bound


def test_a_compiled_harness_with_two_metrics_feedback_and_a_bound_evaluates(tmp_path: Path) -> None:
    done = _cli("eval", str(FIXTURES / "makespan_numba_problem.py"), "--json", "--set", "jobs=40", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seed = json.loads(done.stdout)
    assert seed["status"] == "ok" and seed["held_out_status"] == "ok" and not seed["warnings"]
    assert set(seed["metrics"]) == {"ratio", "spread"} and seed["score"] == seed["metrics"]["ratio"] > 1.0
    assert "makespan" in seed["feedback"]


def test_show_prints_a_metric_direction_that_is_false(tmp_path: Path) -> None:
    """`show` dropped metrics_maximize={"spread": False} whole, as if it were an unset flag."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    done = _cli("run", str(FIXTURES / "makespan_numba_problem.py"), "--budget", "1", "--db", db, "--name", "ms",
                "--quiet", "--set", "jobs=40", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = " ".join(_cli("show", "ms", "--db", db, cwd=tmp_path).stdout.split())
    assert 'bound=1.0, primary_metric="ratio", metrics_maximize={"spread": false}' in shown
    # an offline run called no model: how models would be called (client, retries, cache) is not shown as if one
    # had been, nor map_bins without map_elites, nor the summary of improvements that only a model's prompt shows
    assert 'proposer="offline"' in shown and "models." not in shown and "map_bins" not in shown, shown
    assert "meta_summary" not in shown and "crossover=0.0" in shown, shown
