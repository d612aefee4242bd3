"""What a new user met searching with a model beside the default offline share (freshuser9).

The problem files (tests/fixtures/), written from the README alone: a line-breaking penalty that a dynamic program
in `solve` minimises, with held-out paragraphs and a cascade (justify_cost_problem.py); a dispatching rule for one
machine with release dates, scored by Scored metrics and feedback (release_tardiness_problem.py). The model is a
real local OpenAI-compatible server (tests/openai_server.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from openai_server import Fault, OpenAIServer, sequence

from evoforge.db import Store
from evoforge.engine.cli.main import _after_limit, main
from evoforge.engine.propose.llm import LLMEnsemble
from evoforge.engine.run.config import ModelEntry
from evoforge.engine.run.options import SearchOptions

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
JUSTIFY = FIXTURES / "justify_cost_problem.py"
TARDINESS = FIXTURES / "release_tardiness_problem.py"
MESSAGES = [{"role": "user", "content": "Improve break_cost()"}]
REWRITE = ("```python\ndef break_cost(slack: int, is_last: bool) -> float:\n    if is_last:\n        return 0.0\n"
           "    return float(slack) ** 2\n```")
PRIORITY = "```python\ndef priority(proc: float, weight: float, due: float, now: float) -> float:\n" \
           "    return weight / proc - 0.01 * due\n```"


def _call_twice(ensemble: LLMEnsemble) -> list[bool]:
    async def both() -> list[bool]:
        spec = ensemble.models[0]
        return [(await ensemble.call(spec, MESSAGES)).ok for _ in range(2)]
    return asyncio.run(both())


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("evoforge")]


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "litellm"])
def test_a_model_at_a_wrong_api_base_is_warned_about_once_naming_the_api_base(
        direct: bool, caplog: pytest.LogCaptureFixture) -> None:
    # A wrong --api-base failed every call in silence: the run 'finished', half its prompts answered offline; and
    # through litellm the refused connection read 'HTTP 500 InternalServerError', as if a server had answered
    with OpenAIServer("unused") as server:
        dead = server.base_url
    ensemble = LLMEnsemble([ModelEntry("openai/m", api_base=dead, api_key="k")], max_retries=0, direct=direct)
    with caplog.at_level(logging.WARNING, logger="evoforge"):
        assert _call_twice(ensemble) == [False, False]
    [warning] = _warnings(caplog)
    assert warning.startswith(f"model 'openai/m' at {dead}: connection failed: ") and "HTTP 500" not in warning
    assert "has not answered yet: check --api-base and that the server is running" in warning


def test_a_model_that_answered_before_is_warned_about_once_without_blaming_the_api_base(
        caplog: pytest.LogCaptureFixture) -> None:
    with OpenAIServer(sequence("fine", Fault.http(500))) as server:
        ensemble = LLMEnsemble([ModelEntry("openai/m", api_base=server.base_url, api_key="k")], max_retries=0,
                               direct=True)
        with caplog.at_level(logging.WARNING, logger="evoforge"):
            asyncio.run(ensemble.propose(MESSAGES, np.random.default_rng(0)))
            assert _call_twice(ensemble) == [False, False]
    [warning] = _warnings(caplog)
    assert "HTTP 500" in warning and "--api-base" not in warning and "later failures" in warning


def _final_line(out: str, name: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith(f"run {name}: ")]
    return line


def _proposal_models(db: str, name: str) -> list[str]:
    with Store(db) as store:
        info = store.get_run(name)
        assert info is not None
        return [p.model for p in store.proposals(info.id)]


def test_the_progress_line_counts_failed_calls_and_offline_proposals_across_a_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # "(16 calls)" after 30 candidates read as if every proposal were a call; a failed call did not show at all
    monkeypatch.setenv("OPENAI_API_KEY", "none")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(sequence(Fault.http(500), REWRITE)) as server:
        common = ["--db", db, "--model", "openai/m", "--api-base", server.base_url, "--llm-retries", "0",
                  "--concurrency", "1", "--seed", "1"]
        assert main(["run", str(JUSTIFY), "--budget", "8", "--name", "jc", *common]) == 0
        first = capsys.readouterr()
        models = _proposal_models(db, "jc")
        calls, offline = sum(m != "offline" for m in models), models.count("offline")
        assert len(models) == 8 and calls and offline  # the default share answered some of them offline
        assert _final_line(first.out, "jc").endswith(f"({calls} calls, 1 failed, {offline} offline)")
        assert first.err.count("has not answered yet") == 1

        assert main(["resume", "jc", "--db", db, "--budget", "14"]) == 0
    models = _proposal_models(db, "jc")
    calls, offline = sum(m != "offline" for m in models), models.count("offline")
    assert len(models) == 14
    assert _final_line(capsys.readouterr().out, "jc").endswith(f"({calls} calls, {offline} offline)")


def test_a_run_with_no_model_shows_no_offline_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["run", str(TARDINESS), "--db", db, "--budget", "4", "--name", "rt"]) == 0
    assert _final_line(capsys.readouterr().out, "rt").endswith("cand/s | $0.0000")


def test_a_run_stopped_by_max_calls_says_that_resume_keeps_the_limit_and_its_advice_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # `resume` of such a run printed the limit again and nothing else; --max-calls is refused by resume
    monkeypatch.setenv("OPENAI_API_KEY", "none")
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(PRIORITY) as server:
        assert main(["run", str(TARDINESS), "--db", db, "--model", "openai/m", "--api-base", server.base_url,
                     "--budget", "40", "--max-calls", "2", "--concurrency", "1", "--name", "rt"]) == 0
        ran = capsys.readouterr().out
        assert main(["resume", "rt", "--db", db, "--budget", "60"]) == 0
        resumed = capsys.readouterr().out
    assert "stopped early: calls limit reached" in ran
    advice = [line for line in resumed.splitlines() if line.startswith("a resume keeps the run's --max-calls")]
    assert advice and advice == [line for line in ran.splitlines() if line.startswith("a resume keeps")]
    assert _proposal_models(db, "rt").count("openai/m") == 2  # the resume made no call
    export = re.search(r"evoforge (export .*?), then evoforge run (\S+) --max-calls N", advice[0])
    assert export is not None
    assert main(shlex.split(export.group(1))) == 0
    assert (tmp_path / export.group(2)).read_text().count("def priority(") == 1


def test_after_a_wall_time_limit_the_advice_is_to_resume() -> None:
    # --max-time counts per process, so a resume searches that long again (unlike calls, tokens and cost)
    assert _after_limit("wall time limit reached", "r 1", "sqlite:///x.db").startswith(
        "continue it: evoforge resume 'r 1' --db sqlite:///x.db   (it searches for --max-time again")
    assert "--max-cost N" in _after_limit("cost limit reached", "r", "sqlite:///x.db")


def test_every_option_of_the_python_api_is_named_in_the_readme() -> None:
    # offline_share (and ten more) worked from Python but were missing from the README's list
    readme = (REPO / "README.md").read_text()
    start = readme.index("`evoforge.run(problem, *, budget")
    section = readme[start:readme.index("```", start)]
    missing = [name for name in SearchOptions.__dataclass_fields__ if f"`{name}`" not in section
               and name not in ("budget", "seed", "workers", "model", "overrides")]
    assert missing == []


def test_a_replay_that_misses_says_so_once_and_what_an_answer_needs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Replaying a run made at the default concurrency, or with another seed or --set, left most proposals as
    # 'replay of run ... has no answer to this request' in `show`, and nothing at all on the terminal
    monkeypatch.setenv("OPENAI_API_KEY", "none")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(REWRITE) as server:
        assert main(["run", str(JUSTIFY), "--db", db, "--model", "openai/m", "--api-base", server.base_url,
                     "--budget", "4", "--concurrency", "1", "--offline-share", "0", "--name", "made"]) == 0
    capsys.readouterr()
    replay = ["run", str(JUSTIFY), "--db", db, "--replay", "made", "--budget", "4", "--concurrency", "1"]
    assert main([*replay, "--name", "same"]) == 0
    assert "has no answer" not in capsys.readouterr().err
    assert main([*replay, "--name", "other", "--set", "seed=4"]) == 0  # other inputs: other prompts
    err = capsys.readouterr().err
    assert err.count("replay of run 'made' has no answer to a request") == 1 and "--concurrency 1" in err
    assert _proposal_models(db, "other") == ["openai/m"] * 4
