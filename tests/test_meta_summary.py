"""The summary of recent improvements in the prompt (--meta-summary K): bounded entries, the log's order and
hiding, and real searches whose every prompt lists exactly the improvements recorded before it, the same after a
resume (a program rejected meanwhile left out).

Searches here are real: a real HTTP server speaking the OpenAI chat API, real sandboxes, real SQLite.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from climb_answers import Climbing
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.propose.improvements import (
    CHANGE_LINES,
    LINE_CHARS,
    Improvement,
    ImprovementLog,
    changed_lines,
)
from evoforge.engine.propose.prompts import ParentView, build_messages
from evoforge.engine.run.config import (
    DEFAULT_META_SUMMARY,
    MAX_META_SUMMARY,
    ConfigError,
    ModelConfig,
    ModelEntry,
    RunConfig,
)
from evoforge.engine.run.oversight import reject_program
from evoforge.engine.run.search import resume_search, run_search
from evoforge.islands import IslandConfig

REPO = Path(__file__).resolve().parent.parent
CLIMB = str(REPO / "tests" / "fixtures" / "climb_problem.py")
HEADER = "## What recently improved the best scores"
ENTRY = re.compile(r"^\d+\. (\S+) -> (\S+) \(")


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


# ---- entries and the log -----------------------------------------------------------------------------------------

def test_an_entry_is_the_changed_lines_without_indentation_and_bounded() -> None:
    old = "def f(x):\n    a = 1\n    return a\n"
    new = "def f(x):\n    a = 2\n    return a\n"
    assert changed_lines(old, new) == ("- a = 1", "+ a = 2")
    many = "def f(x):\n" + "".join(f"    a{i} = {'y' * 300}\n" for i in range(20))
    lines = changed_lines("def f(x):\n    pass\n", many)
    assert len(lines) == CHANGE_LINES + 1 and lines[-1] == f"... and {21 - CHANGE_LINES} more changed lines"
    assert all(len(line) <= LINE_CHARS for line in lines) and lines[1].endswith("...")


def step(pid: int, after: float) -> Improvement:
    return Improvement(pid, pid - 1, after - 1, after, ("+ x",))


def test_the_log_keeps_the_last_k_in_order_and_hides_a_rejected_one() -> None:
    log = ImprovementLog(3)
    for pid in range(1, 6):
        log.add(step(pid, float(pid)))
    assert [e.program_id for e in log.recent()] == [3, 4, 5]
    log.hide(4)
    log.hide(1)  # long gone: nothing to hide
    assert [e.program_id for e in log.recent()] == [3, 5]
    log.add(step(6, 6.0))  # the hidden one still takes its place until it leaves, as on a resume
    assert [e.program_id for e in log.recent()] == [5, 6]
    log.add(step(7, 7.0))
    assert [e.program_id for e in log.recent()] == [5, 6, 7]


def test_the_prompt_section_lists_each_improvement_with_its_lines() -> None:
    parent = ParentView(code="def value() -> float:\n    return 1.0\n", score=1.0, status="ok")
    text = build_messages("Climb.", ["value"], [parent], improvements=[
        Improvement(2, 1, 0.0, 1.0, ("- return 0.0", "+ return 1.0")), Improvement(3, 2, 1.0, 2.5, ())],
        maximize=True)[1]["content"]
    assert (f"{HEADER}\nThe last changes that beat their parent, oldest first, with the lines each one removed (-) "
            "and added (+):\n1. 0 -> 1 (+1):\n   - return 0.0\n   + return 1.0\n2. 1 -> 2.5 (+1.5):\n"
            "   (no line changed)\n\nBelow is the current version") in text
    assert HEADER not in build_messages("Climb.", ["value"], [parent])[1]["content"]


@pytest.mark.parametrize("bad", [-1, MAX_META_SUMMARY + 1, True, 2.5])
def test_the_size_is_validated(bad: int) -> None:
    entry = ModelEntry("openai/m")
    with pytest.raises(ConfigError, match="--meta-summary"):
        RunConfig(problem="p.py", name="x", meta_summary=bad, models=ModelConfig(models=(entry,)))


def test_offline_it_is_refused_since_no_model_reads_it() -> None:
    with pytest.raises(ConfigError, match=r"meta_summary \(--meta-summary\) lists recent improvements"):
        RunConfig(problem="p.py", name="x", meta_summary=3)


def test_the_summary_is_on_with_a_model_off_offline_and_kept_with_the_run() -> None:
    model = ModelConfig(models=(ModelEntry("openai/m"),))
    with_model = RunConfig(problem="p.py", name="x", models=model)
    # the default is resolved when the config is made: on with a model, off offline (only a model reads it)
    assert with_model.meta_summary == DEFAULT_META_SUMMARY == 5
    assert RunConfig(problem="p.py", name="x").meta_summary == 0
    assert RunConfig(problem="p.py", name="x", meta_summary=0, models=model).meta_summary == 0
    stored = json.loads(json.dumps(with_model.to_dict()))
    assert stored["meta_summary"] == 5 and RunConfig.from_dict(stored).meta_summary == 5
    del stored["meta_summary"]  # a run stored before the summary existed resumes without it
    assert RunConfig.from_dict(stored).meta_summary == 0


# ---- real searches -----------------------------------------------------------------------------------------------

def climb_config(name: str, budget: int, server: OpenAIServer, **options: object) -> RunConfig:
    entry = ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10)
    return RunConfig(offline_share=0.0, problem=CLIMB, name=name, budget=budget, seed=5, concurrency=1,
                     islands=IslandConfig(num_islands=1, reset_period=1000),
                     models=ModelConfig(models=(entry,), backoff_s=0.05), meta_summary=3, **options)


def listed(prompt: str) -> list[tuple[float, float]]:
    """The (before, after) scores the prompt's summary lists, in its order."""
    text = json.loads(prompt)[1]["content"]
    if HEADER not in text:
        return []
    section = text[text.index(HEADER):].split("\n\n", 1)[0]
    found = [ENTRY.match(line) for line in section.splitlines()]
    return [(float(m.group(1)), float(m.group(2))) for m in found if m is not None]


def improvements_before(store: Store, name: str, hidden_after: dict[int, int]) -> list[list[tuple[float, float]]]:
    """For each proposal of the run, the last 3 improvements recorded before it, worked out from the record:
    valid proposed programs that beat their primary parent; a program rejected before the proposal (seq of the
    rejection in `hidden_after`) is left out."""
    run = store.get_run(name)
    assert run is not None
    briefs = store.program_briefs(run.id)
    score = {b.id: b.score for b in briefs if b.status == "ok"}
    steps = [(b.seq, b.id, score[b.parent_ids[-1]], b.score) for b in briefs
             if b.status == "ok" and b.score is not None and b.origin == "llm" and b.parent_ids
             and score.get(b.parent_ids[-1]) is not None and b.score > score[b.parent_ids[-1]]]
    out = []
    for q in store.proposals(run.id):
        last = [s for s in steps if s[0] < q.seq][-3:]
        out.append([(before, after) for _, pid, before, after in last
                    if not (pid in hidden_after and hidden_after[pid] < q.seq)])
    return out


def summaries(store: Store, name: str) -> list[list[tuple[float, float]]]:
    run = store.get_run(name)
    assert run is not None
    return [listed(q.prompt) for q in store.proposals(run.id)]


def test_every_prompt_lists_the_last_improvements_recorded_before_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(Climbing()) as server:
        run_search(climb_config("m", 14, server), db, progress=False)
    with Store(db) as store:
        shown = summaries(store, "m")
        assert shown == improvements_before(store, "m", {})
        assert shown[0] == [] and max(len(s) for s in shown) == 3  # bounded; and there was something to show
        assert all(before < after for s in shown for before, after in s)  # each one an improvement (maximising)
        run = store.get_run("m")
        assert run is not None
        prompt = json.loads(store.proposals(run.id)[-1].prompt)[1]["content"]
        assert re.search(r"   - return -?[\d.]+\n   \+ return -?[\d.]+", prompt)  # with the changed lines


def test_a_resumed_run_lists_what_the_uninterrupted_one_did_less_what_a_person_rejected(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(Climbing()) as server:
        run_search(climb_config("whole", 14, server), db, progress=False)
        server.responder = Climbing()  # each run its own model; a resume keeps its run's
        run_search(climb_config("part", 7, server), db, progress=False)
        resume_search("part", db, budget=14, progress=False)
        server.responder = Climbing()
        run_search(climb_config("judged", 7, server), db, progress=False)
        with Store(db) as store:
            run = store.get_run("judged")
            assert run is not None
            shown_last = improvements_before(store, "judged", {})[-1]
            assert shown_last, "the first 7 proposals improved at least once"
            victim = next(b for b in reversed(store.program_briefs(run.id)) if b.status == "ok" and b.origin == "llm"
                          and (b.score is not None and b.score in {after for _, after in shown_last}))
            reject_program(store, victim.id, why="test: a rejected program is no lesson")
            rejected_at = store.events(run.id, "reject")[-1].seq
        resume_search("judged", db, budget=14, progress=False)
    with Store(db) as store:
        assert summaries(store, "part") == summaries(store, "whole")
        assert summaries(store, "judged") == improvements_before(store, "judged", {victim.id: rejected_at})
        assert summaries(store, "judged") != summaries(store, "whole")
