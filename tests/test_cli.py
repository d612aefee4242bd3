"""The command line's answers to mistakes: the subcommand's own usage with the option meant, database paths that
cannot be right, and run options that must apply or be refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoforge.db import Store
from evoforge.engine.cli.main import main
from evoforge.engine.run.config import ConfigError, ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.options import SearchOptions, run_config

REPO = Path(__file__).resolve().parent.parent
BIN_PACKING = str(REPO / "problems" / "bin_packing.py")


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What the CLI says on stderr when it refuses `args` with exit status 2."""
    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as exit_:  # argparse's own refusals
        rc = exit_.code
    assert rc == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("args", "usage", "meant"), [
    (["run", "bin_packing", "--budjet", "3"], "usage: evoforge run", "--budget"),
    (["show", "some-run", "--jsn"], "usage: evoforge show", "--json"),
    (["resume", "some-run", "--budget=5", "--db-patients", "3"], "usage: evoforge resume", "--db-patience"),
])
def test_a_misspelt_option_shows_the_subcommands_usage_and_the_option_meant(capsys, args, usage, meant) -> None:
    err = refused(capsys, *args)
    assert usage in err and f"did you mean {meant}?" in err
    assert "{run,resume" not in err  # not the top-level usage


def test_three_slashes_get_the_four_slash_hint_and_run_creates_no_folder(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///nowhere/x.db"  # meant /nowhere/x.db; as written ./nowhere/x.db
    err = refused(capsys, "show", "r", "--db", url)
    assert "an absolute path needs four: sqlite:////nowhere/x.db" in err
    err = refused(capsys, "run", BIN_PACKING, "--budget", "1", "--db", url)
    assert "does not exist" in err and "an absolute path needs four: sqlite:////nowhere/x.db" in err
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(("flag", "value"), [("--max-total-tokens", "0"), ("--max-time", "-1.5"),
                                             ("--max-calls", "0"), ("--max-cost", "0.0")])
def test_a_spending_limit_error_names_its_own_flag(capsys, tmp_path: Path, flag: str, value: str) -> None:
    err = refused(capsys, "run", BIN_PACKING, "--db", f"sqlite:///{tmp_path / 'r.db'}", flag, value)
    assert f"({flag}) {value}: must be > 0" in err


def _models(tmp_path: Path, entries: list[dict]) -> str:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_call_options_apply_to_models_file_entries_or_are_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    file = _models(tmp_path, [{"name": "openai/a"}, {"name": "openai/b", "tier": "strong", "max_tokens": 50}])
    config = run_config(BIN_PACKING, SearchOptions(models=file, api_base="http://127.0.0.1:9/v1", temperature=0.1,
                                                   llm_timeout=7.0, strong_prob=0.5), db)
    a, b = config.models.models
    assert (a.api_base, a.temperature, a.timeout_s) == ("http://127.0.0.1:9/v1", 0.1, 7.0)
    assert (b.api_base, b.temperature, b.timeout_s, b.max_tokens) == ("http://127.0.0.1:9/v1", 0.1, 7.0, 50)
    with pytest.raises(ConfigError,
                       match=r"max_tokens \(--max-tokens\) 80 disagrees with model openai/b's max_tokens 50"):
        run_config(BIN_PACKING, SearchOptions(models=file, max_tokens=80), db)


def test_a_replay_takes_the_runs_models_with_the_call_options_and_strong_prob_given(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    models = ModelConfig(models=(ModelEntry(name="openai/a", api_base="http://old/v1"),
                                 ModelEntry(name="openai/b", tier="strong", api_base="http://old/v1")),
                         strong_prob=0.3)
    stored = RunConfig(problem=BIN_PACKING, name="old", models=models)
    with Store(db) as store:
        store.create_run(name="old", problem_name="bin_packing", problem_path=BIN_PACKING, problem_source="",
                         problem_hash="h", config={"run": stored.to_dict()}, seed=0)
    kept = run_config(BIN_PACKING, SearchOptions(replay="old"), db).models
    assert kept.strong_prob == 0.3 and {m.api_base for m in kept.models} == {"http://old/v1"}
    moved = run_config(BIN_PACKING, SearchOptions(replay="old", api_base="http://new/v1", temperature=0.0,
                                                  strong_prob=0.0), db).models
    assert moved.strong_prob == 0.0
    assert {(m.api_base, m.temperature) for m in moved.models} == {("http://new/v1", 0.0)}
