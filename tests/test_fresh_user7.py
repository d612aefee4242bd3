"""Three problem files a new user wrote from the README alone, and the mistakes made with them.

The files (tests/fixtures/): a greedy knapsack with per-item scalar arguments and held-out data, a greedy tour
whose loop is a compiled harness of the user's own, and points on a sphere returned as coordinates with two
exposed helpers and a dict of metrics. Each must search, export and score as the README says; each mistake must
end in a message that says what to do, never a traceback of evoforge's own code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import evoforge
from evoforge.engine.cli.main import main
from evoforge.engine.run.config import ConfigError
from evoforge.evaluators import ProblemError, SandboxError, SandboxPool
from evoforge.evaluators.loader import load_problem

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
KNAPSACK = FIXTURES / "knapsack_heldout_problem.py"
TOUR = FIXTURES / "greedy_tour_harness_problem.py"
SPHERE = FIXTURES / "sphere_points_problem.py"

# nopython mode cannot type a dict whose keys are an int and then a str: numba refuses it, at the first call
DICT_OF_MIXED_KEYS = "    d = {}\n    d[1] = 'a'\n    d['b'] = 2\n"


@pytest.mark.parametrize("problem, overrides", [(KNAPSACK, {"n": "40"}), (TOUR, {"n": "60"}), (SPHERE, {})])
def test_each_problem_searches_and_its_export_scores_the_best(tmp_path, problem, overrides):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = evoforge.run(str(problem), budget=6, db=db, seed=1, overrides=overrides, name="r")
    assert run.status == "finished"
    best, seed = run.best(1)[0], [p for p in run.programs() if p["origin"] == "seed"][0]
    maximize = load_problem(problem, overrides).settings.maximize
    assert (best.score >= seed["score"]) if maximize else (best.score <= seed["score"])
    out = tmp_path / "best.py"
    assert main(["export", "r", "--db", db, "-o", str(out)]) == 0
    printed = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, check=True).stdout
    assert f"training score {best.score:g} " in printed, printed


def test_the_metrics_legend_says_the_primary_metric_and_its_direction(tmp_path, capsys):
    """It printed a bare 'primary score' under the metrics table when no metric declared a direction."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    evoforge.run(str(SPHERE), budget=2, db=db, seed=1, name="s")
    capsys.readouterr()
    assert main(["best", "s", "--db", db, "--by", "mean_nn"]) == 0
    assert "primary metric score (higher is better)" in capsys.readouterr().out


def test_adding_to_a_finished_run_says_the_resume_that_raises_its_budget(tmp_path, capsys):
    """A plain `evoforge resume` of a run whose budget is spent ends at once: the printed command must go on."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    evoforge.run(str(SPHERE), budget=2, db=db, seed=1, name="s")
    mine = tmp_path / "mine.py"
    mine.write_text("def points(n: int) -> np.ndarray:\n    return jitter(spiral(n), 0.01731)\n")
    capsys.readouterr()
    assert main(["add", "s", str(mine), "--db", db]) == 0
    (command,) = re.findall(r"evoforge (resume s --budget \d+) --db", capsys.readouterr().out)
    assert main([*command.split(), "--db", db, "--quiet"]) == 0
    assert len(evoforge.load_run("s", db=db).programs()) > 4  # seed, two candidates, the human one, and more


def test_a_run_whose_seed_numba_refuses_says_so(tmp_path, caplog):
    """numba=True with a seed that ran as Python made every candidate slow, and only `eval` said why."""
    path = _edited(tmp_path, TOUR, "    return d\n", "    return d + len(str(step))\n")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with caplog.at_level("WARNING", logger="evoforge"):
        evoforge.run(str(path), budget=1, db=db, seed=1, overrides={"n": "20"}, name="slow")
    (said,) = [r.getMessage() for r in caplog.records if "seed program ran as Python" in r.getMessage()]
    assert "`str` is not compiled" in said and str(path) in said
    caplog.clear()
    with caplog.at_level("WARNING", logger="evoforge"):
        evoforge.run(str(TOUR), budget=1, db=db, seed=1, overrides={"n": "20"}, name="fast")
    assert not [r for r in caplog.records if "ran as Python" in r.getMessage()]


def test_the_held_out_inputs_are_scored_for_the_seed(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = evoforge.run(str(KNAPSACK), budget=1, db=db, seed=1, overrides={"n": "30"})
    (seed,) = [p for p in run.programs() if p["origin"] == "seed"]
    assert seed["held_out_score"] is not None and seed["held_out_score"] > 0


def _edited(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text
    path = tmp_path / source.name
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_refused_compilation_is_the_reason_alone_not_evoforges_traceback():
    """numba_fallback='refuse', on a problem without a harness (the function compiles at its first call)."""
    problem = load_problem(KNAPSACK, {"n": "20", "numba": "True", "numba_fallback": "refuse"})
    candidate = problem.seed_code.replace("    return value / weight", DICT_OF_MIXED_KEYS + "    return value / weight")
    with SandboxPool(problem, 1) as pool:
        refused = pool.evaluate(candidate)
        text = pool.evaluate(problem.seed_code.replace("value / weight", "value / weight + len(str(room))"))
    for result in (refused, text):
        assert result.status == "error" and "numba_fallback='refuse'" in (result.error or ""), result
        assert "Traceback" not in (result.error or "") and "evoforge/" not in (result.error or ""), result.error


@pytest.mark.parametrize("numba", ["auto", "False"])
def test_refusing_what_numba_cannot_compile_needs_numba_on_for_every_candidate(numba):
    """Under "auto" the same uncompilable program ran as Python (ok) when its calls were quick and was refused
    when they were slow; under False nothing compiles, so the setting did nothing."""
    with pytest.raises(ProblemError, match=r"numba_fallback='refuse'\) needs numba=True"):
        load_problem(KNAPSACK, {"numba": numba, "numba_fallback": "refuse"})


def test_a_refused_compilation_under_a_compiled_harness_is_the_reason_alone():
    problem = load_problem(TOUR, {"n": "20", "numba_fallback": "refuse"})
    candidate = problem.seed_code.replace("    return d\n", DICT_OF_MIXED_KEYS + "    return d\n")
    with SandboxPool(problem, 1) as pool:
        refused = pool.evaluate(candidate)
    assert refused.status == "error" and "numba_fallback='refuse'" in (refused.error or ""), refused
    assert "Traceback" not in (refused.error or ""), refused.error


def test_a_harness_called_with_other_types_shows_solves_line_not_evoforges_frames(tmp_path):
    path = _edited(tmp_path, TOUR, "np.ascontiguousarray(np.asarray(xy, dtype=np.float64))",
                   "np.asarray(xy, dtype=np.float32)")
    problem = load_problem(path, {"n": "20"})
    with SandboxPool(problem, 1) as pool:
        called = pool.evaluate(problem.seed_code)
    error = called.error or ""
    assert called.status == "error" and "HarnessCallError: solve called the compiled harness tour" in error, called
    assert f'File "{path}", line' in error and "in solve" in error, error
    assert not re.search(r'File "[^"]*/evaluators/', error), error


def test_a_harness_numba_refuses_is_named_with_its_line(tmp_path):
    path = _edited(tmp_path, TOUR, "    order[0] = 0\n", DICT_OF_MIXED_KEYS + "    order[0] = len(d) - 2\n")
    line = path.read_text().splitlines().index("    d['b'] = 2") + 1
    problem = load_problem(path, {"n": "20"})
    with pytest.raises(SandboxError, match=f"harness tour does not compile with numba at {path}:{line}:"), \
            SandboxPool(problem, 1) as pool:
        pool.evaluate(problem.seed_code)


def test_a_database_in_a_missing_folder_is_refused_from_python_as_from_the_command_line(tmp_path, capsys):
    """`evoforge run` refused it; `evoforge.run` made the folder, so a mistyped path became a new database."""
    db = f"sqlite:///{tmp_path / 'no_such_folder' / 'runs.db'}"
    with pytest.raises(ConfigError, match="no_such_folder of database .* does not exist; create it first"):
        evoforge.run(str(SPHERE), budget=1, db=db)
    assert main(["run", str(SPHERE), "--budget", "1", "--db", db]) != 0
    assert "create it first" in capsys.readouterr().err
    assert not (tmp_path / "no_such_folder").exists()


def test_the_expose_fix_keeps_the_names_already_exposed(tmp_path):
    path = _edited(tmp_path, SPHERE, 'EXPOSE = ["spiral", "jitter"]', 'EXPOSE = ["spiral"]')
    with pytest.raises(ProblemError, match=r"fix: add it to EXPOSE: EXPOSE = \['spiral', 'jitter'\]"):
        load_problem(path)


def test_a_misspelt_problem_file_is_answered_with_the_file_beside_it(tmp_path):
    (tmp_path / "knapsack.py").write_text(KNAPSACK.read_text())
    with pytest.raises(ProblemError, match=f"is it {tmp_path / 'knapsack.py'}\\?"):
        load_problem(tmp_path / "knapsak.py")
    with pytest.raises(ProblemError) as nothing_near:
        load_problem(tmp_path / "tour.py")
    assert "is it" not in str(nothing_near.value)


def test_every_make_target_the_readme_names_exists():
    """The README's commands use .venv/bin/evoforge, which only `make setup` (or search/test) creates."""
    readme = (REPO / "README.md").read_text()
    targets = set(re.findall(r"^([a-z]+):", (REPO / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"`make ([a-z]+)", readme)) | set(re.findall(r"^make ([a-z]+)", readme, flags=re.M))
    assert "setup" in named and named <= targets, named - targets


@pytest.mark.parametrize("typed, meant", [("shw", "show"), ("rnus", "runs"), ("exprot", "export")])
def test_a_misspelt_command_is_answered_with_the_closest(capsys, typed, meant):
    with pytest.raises(SystemExit):
        main([typed, "x"])
    assert f"did you mean {meant}?" in capsys.readouterr().err
