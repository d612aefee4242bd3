"""End-to-end searches: real SQLite files, real sandboxes, the offline proposer and a real OpenAI-speaking server."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.errors import RunFailed
from evoforge.engine.run.search import resume_search, run_search
from evoforge.islands import IslandConfig

REPO = Path(__file__).resolve().parent.parent
BIN_PACKING = str(REPO / "problems" / "bin_packing.py")
SMALL = {"num_items": "300", "num_instances": "3", "held_out_instances": "2"}


def small_config(name: str, budget: int, **kwargs) -> RunConfig:
    return RunConfig(offline_share=0.0, problem=BIN_PACKING, name=name, budget=budget, overrides=dict(SMALL),
                     islands=IslandConfig(num_islands=2, reset_period=15), **kwargs)


def programs_of(db_url: str, name: str) -> list[tuple[str, str, float | None]]:
    with Store(db_url) as store:
        run = store.get_run(name)
        assert run is not None
        history = [item for item in store.history(run.id) if item.kind == "program"]
        programs = store.get_programs([item.id for item in history])
    return [(p.code_hash, p.status, p.score) for p in programs]


def test_offline_search_records_every_candidate_and_improves(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    result = run_search(small_config("improve", 120), db, progress=False)
    assert result.status == "finished"
    with Store(db) as store:
        run = store.get_run("improve")
        assert run is not None and run.status == "finished"
        assert store.attempts(run.id) == 121  # the budget's proposals plus the seed
        proposals = store.proposals(run.id)
        assert len(proposals) == 120 and all(p.model == "offline" for p in proposals)
        seed = store.best_programs(run.id, 10_000, maximize=False)[-1]
        statuses = store.status_counts(run.id)
        best = store.best_programs(run.id, 1, maximize=False)[0]
        events = [item for item in store.history(run.id) if item.kind == "reset"]
    assert sum(statuses.values()) + sum(not p.applied for p in proposals) == 121
    # Most candidates behave validly: evaluated ("ok") or, by default, stopped after the first input as the
    # behavioural twin of an earlier program ("duplicate", kept as a parent).
    assert statuses["ok"] + statuses.get("duplicate", 0) > 60 and statuses["ok"] > 5
    assert best.score is not None and seed.score is not None
    assert best.score < seed.score  # strictly better than best fit, the seed
    assert result.best_score == best.score
    assert best.held_out_score is not None  # a new best gets its held-out evaluation
    assert events, "reset_period 15 must have reset the worst island at least once"


def test_same_seed_same_run_and_resume_continues_exactly(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    whole = run_search(small_config("a", 40, seed=7), db, progress=False)
    run_search(small_config("b", 40, seed=7), db, progress=False)
    assert programs_of(db, "a") == programs_of(db, "b")

    run_search(small_config("c", 15, seed=7), db, progress=False)
    resumed = resume_search("c", db, budget=40, progress=False)
    assert resumed.status == "finished"
    assert programs_of(db, "c") == programs_of(db, "a")
    # The progress bar's totals continue too: the resumed run reports what the uninterrupted one did.
    assert (resumed.stats.evaluated, resumed.stats.valid) == (whole.stats.evaluated, whole.stats.valid)
    # Its throughput is this process's own work (25 candidates), not the whole run's over this process's time.
    assert resumed.stats.done - resumed.stats.done_before == 25
    assert resumed.stats.throughput * resumed.stats.elapsed == pytest.approx(25, rel=0.05)
    # One valid rate: the progress bar's is what `runs` and `show` say.
    from evoforge.engine.analysis import queries as analysis

    with Store(db) as store:
        for name, result in (("a", whole), ("c", resumed)):
            summary = analysis.summarize(store, analysis.open_run(store, name))
            assert (summary.evaluated, summary.valid_rate) == (result.stats.evaluated, result.stats.valid_rate)

    run_search(small_config("d", 40, seed=8), db, progress=False)
    assert programs_of(db, "d") != programs_of(db, "a")


def test_llm_search_against_a_real_openai_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    answers = iter(range(10_000))

    def responder(request: dict) -> str:
        i = next(answers)
        if i % 4 == 3:
            return "I would rather not write code today."  # no usable block: a failed proposal
        return (f"Try this:\n```\n<<<<<<< SEARCH\n    return -(bins - item)\n=======\n"
                f"    return -(bins - item) + {0.001 * (i + 1):.3f} * (bins - item) ** 2\n>>>>>>> REPLACE\n```\n")

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with OpenAIServer(responder) as server:
        models = ModelConfig(models=(ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10),
                                     ModelEntry("openai/strong", tier="strong", api_base=server.base_url,
                                                timeout_s=10)), strong_prob=0.5)
        config = small_config("llm", 8, models=models, same_behaviour="keep")
        result = run_search(config, db, progress=False)
        requests = server.completion_requests
    assert result.status == "finished"
    assert len(requests) == 8
    with Store(db) as store:
        run = store.get_run("llm")
        assert run is not None
        proposals = store.proposals(run.id)
        programs = {p.proposal_id: p for p in store.best_programs(run.id, 100, maximize=False)}
    assert len(proposals) == 8
    assert {p.model for p in proposals} == {"openai/cheap", "openai/strong"}
    for proposal in proposals:
        messages = json.loads(proposal.prompt)
        assert messages[-1]["role"] == "user" and "priority" in messages[-1]["content"]
        assert proposal.prompt_tokens > 0 and proposal.completion_tokens > 0
        assert proposal.response
    failed = [p for p in proposals if not p.applied]
    assert failed and all("no SEARCH/REPLACE block" in (p.error or "") for p in failed)
    applied = [p for p in proposals if p.applied]
    assert any(p.id in programs for p in applied)


def test_seed_that_fails_stops_the_run_with_a_clear_message(tmp_path: Path) -> None:
    problem = tmp_path / "broken_seed.py"
    problem.write_text('"""Seed raises."""\nfrom evoforge import evolve\n\n@evolve\ndef f(x):\n    return 1 / 0\n\n'
                       "def solve(x):\n    return f(x)\n\ndef score(x, out):\n    return float(out)\n\n"
                       "def inputs(params):\n    return [1]\n")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with pytest.raises(RunFailed, match="ZeroDivisionError"):
        run_search(RunConfig(problem=str(problem), name="broken", budget=3), db, progress=False)
    assert_failed_with(db, "broken", "ZeroDivisionError")


def test_a_run_whose_seed_failed_gives_its_name_back_once_the_file_is_fixed(tmp_path: Path) -> None:
    """The user fixes the problem file and types the same command again: the failed run held nothing, so it is
    started over under its name; `resume` points there too, and a run with programs keeps its name."""
    problem = tmp_path / "fixme.py"
    broken = ('"""Seed raises."""\nfrom evoforge import evolve\n\n@evolve\ndef f(x):\n    return 1 / 0\n\n'
              "def solve(x):\n    return f(x)\n\ndef score(x, out):\n    return float(out)\n\n"
              "def inputs(params):\n    return [1]\n")
    problem.write_text(broken)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    command = ("run", str(problem), "--name", "again", "--db", db, "--budget", "2", "--quiet")
    first = _cli(*command, cwd=tmp_path)
    assert first.returncode == 2 and "ZeroDivisionError" in first.stderr, first.stderr
    problem.write_text(broken.replace("1 / 0", "x + 1"))
    resumed = _cli("resume", "again", "--db", db, cwd=tmp_path)
    assert resumed.returncode == 2
    assert f"run it again under its name (`evoforge run {problem} --name again`)" in resumed.stderr
    second = _cli(*command, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "run again failed before it recorded a program (" in second.stderr and "starting it over" in second.stderr
    warning = next(line for line in second.stderr.splitlines() if "failed before it recorded" in line)
    assert "ZeroDivisionError: division by zero); starting it over" in warning, warning  # not the traceback's header
    with Store(db) as store:
        run = store.get_run("again")
        assert run is not None and run.status == "finished" and store.attempts(run.id) == 3
        assert store.events(run.id, "stop") == []  # the failed attempt's record went with it
    third = _cli(*command, cwd=tmp_path)
    assert third.returncode == 2 and "run 'again' already exists" in third.stderr


def assert_failed_with(db: str, name: str, reason: str) -> None:
    """The run ended failed, and `evoforge show` says why."""
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None and run.status == "failed" and run.finished_at is not None
        from evoforge.engine.analysis.views import show

        shown = show(store, name, as_json=False)
    assert f"run        {name}  (failed)" in shown and "failed     " in shown and reason in shown, shown


def test_a_sandbox_that_cannot_start_fails_the_run_with_its_reason_and_no_traceback(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    out = subprocess.run([sys.executable, "-m", "evoforge", "run", BIN_PACKING, "--name", "nosandbox", "--db", db,
                          "--budget", "3", "--quiet", *sets], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "EVOFORGE_SANDBOX": "no-such-level"})
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "sandbox workers could not start" in out.stderr and "no-such-level" in out.stderr
    assert_failed_with(db, "nosandbox", "no-such-level")


def test_a_replay_of_a_missing_run_fails_the_run_instead_of_leaving_it_running(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    models = ModelConfig(models=(ModelEntry(name="openai/m", api_base="http://127.0.0.1:9/v1"),), replay="nope")
    with pytest.raises(RunFailed, match=re.escape("replay (--replay) nope: no such run")):
        run_search(small_config("replaying", 2, models=models), db, progress=False)
    assert_failed_with(db, "replaying", "replay (--replay) nope")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evoforge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_kill_dash_nine_then_resume_loses_nothing_committed_and_a_live_run_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    proc = subprocess.Popen([sys.executable, "-m", "evoforge", "run", BIN_PACKING, "--name", "killed", "--db", db,
                             "--budget", "100000", "--quiet", *sets], cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        committed = 0
        while time.monotonic() < deadline and committed < 20:
            time.sleep(0.5)
            if (tmp_path / "runs.db").exists():
                try:
                    committed = len(programs_of(db, "killed"))
                except Exception:  # the run row may not exist yet
                    committed = 0
        assert committed >= 20, "the run did not get going"
        # While it runs, a second process may not drive the run: it is refused, naming who holds it.
        twice = _cli("resume", "killed", "--db", db, "--quiet", cwd=REPO)
        assert twice.returncode == 2, twice.stderr
        assert f"is being searched by process {proc.pid} on host {socket.gethostname()}" in twice.stderr
        assert "Traceback" not in twice.stderr
        shown = _cli("show", "killed", "--db", db, cwd=REPO).stdout
        assert f"held by    process {proc.pid} on host {socket.gethostname()}" in shown, shown
        assert "running*" not in _cli("runs", "--db", db, cwd=REPO).stdout  # a live search is not marked
        held = json.loads(_cli("show", "killed", "--db", db, "--json", cwd=REPO).stdout)["held_by"]
        assert (held["pid"], held["host"], held["alive"]) == (proc.pid, socket.gethostname(), True), held
        assert held["heartbeat_age_s"] >= 0 and held["heartbeat_at"]
        with Store(db) as store:
            run = store.get_run("killed")
            assert run is not None and store.events(run.id, "resume") == []
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = programs_of(db, "killed")
    listed = _cli("runs", "--db", db, cwd=REPO).stdout
    assert "running*" in listed and "no live process searches it" in listed, listed
    shown = _cli("show", "killed", "--db", db, cwd=REPO).stdout
    assert f"held by    no live process; this command continues it:\n           evoforge resume killed --db {db}\n" \
        in shown, shown
    assert json.loads(_cli("show", "killed", "--db", db, "--json", cwd=REPO).stdout)["held_by"]["alive"] is False
    resumed = _cli("resume", "killed", "--db", db, "--budget", str(len(before) + 10), "--quiet", cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr
    after = programs_of(db, "killed")
    assert after[: len(before)] == before
    assert len(after) > len(before)


def test_cli_eval_prints_published_figures(tmp_path: Path, bin_packing_data: Path) -> None:
    out = _cli("eval", "problems/cap_set.py", "--json", cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["score"] == 256.0

    or3 = str(bin_packing_data / "or3.json")
    out = _cli("eval", "problems/bin_packing.py", "--set", f"dataset={or3}", "--json", cwd=REPO)
    assert round(json.loads(out.stdout)["score"], 2) == 5.37
    first_fit = tmp_path / "first_fit.py"
    first_fit.write_text("import numpy as np\n\n"
                         "def priority(item, bins):\n    return -np.arange(len(bins), dtype=float)\n")
    # Outside the repository, by the bundled problem's and dataset's names.
    out = _cli("eval", "bin_packing", str(first_fit), "--set", "dataset=or3", "--json", cwd=tmp_path)
    report = json.loads(out.stdout)
    assert round(report["score"], 2) == 5.74
    assert report["held_out_score"] is not None


def test_cli_reports_a_broken_problem_file_in_one_message(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text('"""Broken."""\ndef solve(x):\n    return x\n')
    out = _cli("run", str(broken), "--db", f"sqlite:///{tmp_path / 'r.db'}", cwd=REPO)
    assert out.returncode == 2
    assert "no function is marked @evolve" in out.stderr and str(broken) in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_cleanly_and_the_run_resumes(tmp_path: Path, sent: signal.Signals) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    # As from a terminal: SIGINT is not ignored, even where this test runs as a background job (which ignores it,
    # and Python then leaves Ctrl-C ignored in its children).
    proc = subprocess.Popen([sys.executable, "-m", "evoforge", "run", BIN_PACKING, "--name", "interrupted",
                             "--db", db, "--budget", "100000", "--quiet", *sets], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            if len(programs_of(db, "interrupted")) >= 10:
                break
        except Exception:  # the database or the run row may not exist yet
            continue
    proc.send_signal(sent)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped" in out and "Traceback" not in err
    assert f"continue it: evoforge resume interrupted --db {db}" in out, out
    assert f"see its best: evoforge best interrupted --db {db}" in out
    assert ("terminated (SIGTERM)" in out) == (sent == signal.SIGTERM)
    why = "terminated (SIGTERM)" if sent == signal.SIGTERM else "interrupted (Ctrl-C)"
    # the last lines and `show` say the run stopped early, why, and how far it got
    assert re.search(rf"stopped early: {re.escape(why)} after \d+ of 100000 candidates", out), out
    assert re.search(rf"stopped +{re.escape(why)} after \d+ of 100000", _cli("show", "interrupted", "--db", db,
                                                                            cwd=REPO).stdout)
    with Store(db) as store:
        run = store.get_run("interrupted")
        assert run is not None and run.status == "stopped"
    before = programs_of(db, "interrupted")
    assert len(before) >= 10
    resumed = _cli("resume", "interrupted", "--db", db, "--budget", str(len(before) + 5), "--quiet", cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr
    assert programs_of(db, "interrupted")[: len(before)] == before
    assert why not in _cli("show", "interrupted", "--db", db, cwd=REPO).stdout  # the resume went past that stop


@pytest.mark.parametrize("level", ["bwrap", "unshare", "rlimits-only"])
def test_a_problem_file_under_tmp_is_visible_in_the_sandbox(tmp_path: Path, level: str) -> None:
    from evoforge.evaluators import SandboxPool, load_problem
    from evoforge.evaluators.isolation import available_levels

    if level not in available_levels(tmp_path / "mine.py"):
        pytest.skip(f"sandbox level {level} is not available on this machine")
    problem_file = tmp_path / "mine.py"  # pytest's tmp_path lies under /tmp, which each sandbox replaces
    problem_file.write_text((REPO / "tests" / "fixtures" / "climb_problem.py").read_text())
    with SandboxPool(load_problem(problem_file), workers=1, level=level) as pool:
        assert pool.evaluate("def value() -> float:\n    return 3.0\n").score == 3.0


def test_cli_eval_shows_what_the_candidate_printed(tmp_path: Path) -> None:
    talker = tmp_path / "talker.py"
    talker.write_text("def priority(el, n):\n    print('looking at', el)\n    return 0.0\n")
    out = _cli("eval", "problems/cap_set.py", str(talker), "--set", "n=3", cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "printed    27 line(s), the last 20:" in out.stdout and "  looking at (2, 2, 2)" in out.stdout
    report = json.loads(_cli("eval", "problems/cap_set.py", str(talker), "--set", "n=3", "--json", cwd=REPO).stdout)
    assert report["stdout"].count("looking at") == 27
