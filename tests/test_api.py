"""The Python API on real searches: a bundled problem, the offline proposer, real sandboxes and SQLite files."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

import evoforge
from evoforge.db import Store
from evoforge.engine.cli.main import main
from evoforge.engine.run.config import ConfigError
from evoforge.evaluators import ProblemError

SMALL = {"num_items": 300, "num_instances": 2, "held_out_instances": 1}


def programs_of(db: str, name: str) -> list[tuple[str, str, float | None]]:
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None
        ids = [item.id for item in store.history(run.id) if item.kind == "program"]
        return [(p.code_hash, p.status, p.score) for p in store.get_programs(ids)]


def test_three_lines_search_inspect_report_and_resume(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = evoforge.run("bin_packing", budget=30, db=db, seed=2, islands=2, overrides=SMALL, name="bp")
    assert run.name == "bp" and run.status == "finished" and run.result is not None
    assert run.config.budget == 30 and run.config.problem.endswith("bin_packing.py")

    best = run.best(5)
    scores = [p.score for p in best]
    valid = [r for r in run.programs() if r["status"] == "ok"]  # duplicates are parents, not ranked programs
    assert len(best) == min(5, len(valid)) >= 2 and scores == sorted(scores)  # lower is better: best first
    assert best[0].score == run.result.best_score and "def priority" in best[0].code

    rows = run.programs()
    assert len(rows) == 31 and rows[0]["origin"] == "seed"  # one per candidate, plus the seed
    assert {"id", "status", "score", "held_out_score", "island", "parent_ids"} <= set(rows[0])
    curve = run.curve()
    evaluated = [r for r in rows if r["status"] != "duplicate"]
    assert len(curve.evaluated) == len(evaluated)
    assert curve.best[-1] == best[0].score and np.all(np.diff(curve.best[~np.isnan(curve.best)]) <= 0)

    chain = run.lineage(best[0].id)
    assert chain[0].origin == "seed" and chain[-1].id == best[0].id
    assert all(child.parent_ids[-1] == parent.id for parent, child in zip(chain, chain[1:]))
    assert run.program(best[0].id).code == best[0].code

    page = run.report(tmp_path / "bp.html", top=2)
    text = page.read_text()
    assert "evoforge run bp" in text and f"program {best[0].id}" in text

    again = evoforge.load_run("bp", db=db)
    assert again.best(1)[0].id == best[0].id
    assert again.resume(budget=45) is again and again.result is not None and again.result.status == "finished"
    assert len(again.programs()) == 46


def test_the_api_and_the_cli_build_the_same_search(tmp_path: Path) -> None:
    """The same options through `evoforge run` and evoforge.run() give the same config and the same programs."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    assert main(["run", "bin_packing", "--budget", "12", "--seed", "5", "--islands", "3", "--parents", "1",
                 "--reset-period", "7", "--db", db, "--name", "cli", "--quiet", *sets]) == 0
    api = evoforge.run("bin_packing", budget=12, seed=5, islands=3, parents=1, reset_period=7, db=db, name="api",
                       overrides=SMALL)
    cli = evoforge.load_run("cli", db=db)
    assert {**cli.config.to_dict(), "name": "api"} == api.config.to_dict()
    assert programs_of(db, "cli") == programs_of(db, "api")


def test_evoforge_db_sets_the_default_database_of_the_api_and_the_cli(tmp_path: Path, monkeypatch,
                                                                      capsys) -> None:
    db = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("EVOFORGE_DB", db)
    monkeypatch.chdir(tmp_path)
    run = evoforge.run("bin_packing", budget=2, overrides=SMALL, name="from-env")
    assert run.db == db and evoforge.load_run("from-env").status == "finished"
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    assert '"from-env"' in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()  # nothing went to the built-in default


def test_mistakes_are_refused_with_the_fix(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with pytest.raises(ConfigError, match="unknown option 'budgt'; did you mean 'budget'"):
        evoforge.run("bin_packing", budgt=3, db=db)
    with pytest.raises(ProblemError, match="bundled problems: bin_packing, cap_set"):
        evoforge.run("bin_pakcing", budget=3, db=db)
    with pytest.raises(ConfigError, match=re.escape("budget (--budget) -1")):
        evoforge.run("bin_packing", budget=-1, db=db)
    # an island setting is named as the caller gave it (the keyword, and the flag), not as IslandConfig's field
    with pytest.raises(ConfigError, match=re.escape("islands (--islands) must be >= 1, got 0")):
        evoforge.run("bin_packing", budget=3, islands=0, db=db)
    with pytest.raises(ConfigError, match=re.escape("elite_share (--elite-share) must be a number in [0, 1.0]")):
        evoforge.run("bin_packing", budget=3, elite_share=2.0, db=db)
    evoforge.run("bin_packing", budget=1, db=db, overrides=SMALL, name="one")
    with pytest.raises(ProblemError, match=r"no run named 'two'.*runs there: one"):
        evoforge.load_run("two", db=db)
    with pytest.raises(ProblemError, match="belongs to another run"):
        evoforge.run("cap_set", budget=1, db=db, overrides={"n": 4}, name="cap").lineage(1)


def test_library_messages_go_to_the_evoforge_logger(tmp_path: Path, caplog, capsys) -> None:
    problem = tmp_path / "misspelt.py"
    problem.write_text('"""Maximise f."""\nfrom evoforge import evolve\n\nPARAM = {"n": 3}\n\n@evolve\n'
                       "def f(x):\n    return x\n\ndef solve(x):\n    return f(x)\n\n"
                       "def score(x, out):\n    return float(out)\n\ndef inputs(params):\n    return [1, 2]\n")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with caplog.at_level(logging.WARNING, logger="evoforge"):
        evoforge.run(str(problem), budget=1, db=db, name="api")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and all(r.name.startswith("evoforge.") for r in warned)
    assert "'PARAM' is not read by evoforge" in warned[0].getMessage()
    capsys.readouterr()
    assert main(["run", str(problem), "--budget", "1", "--db", db, "--name", "cli", "--quiet"]) == 0
    err = capsys.readouterr().err  # the CLI shows the same message on stderr
    assert f"evoforge: warning: {problem}: 'PARAM' is not read by evoforge" in err


def test_version_is_the_package_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"evoforge {evoforge.__version__}"


def test_resuming_with_a_budget_already_spent_says_so_and_keeps_the_runs_budget(tmp_path: Path, caplog) -> None:
    """`resume --budget 20` on a run of 61 candidates ended at once with nothing said, and stored 20 as its
    budget (so `show` said budget=20 beside 61 candidates)."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = evoforge.run("bin_packing", budget=3, db=db, overrides=SMALL, name="spent")
    with caplog.at_level(logging.WARNING, logger="evoforge"):
        run.resume(budget=2)
    assert ("run spent has already proposed 3 candidates, so a budget of 2 (the new total, not more) leaves nothing to "
            "do; give a larger total, e.g. --budget 5") in caplog.text
    assert evoforge.load_run("spent", db=db).config.budget == 3
