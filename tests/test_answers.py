"""Several answers per prompt (--answers N): one call asks for N choices, each becomes a candidate of its own.

Real components throughout: the OpenAI-compatible HTTP server of tests/openai_server.py (answering each choice with
a real mutation from benchmarks/mutation_server.py) called through litellm, SQLite files, the sandbox."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest
from openai_server import OpenAIServer, count_tokens, sequence

from evoforge.db import Store
from evoforge.engine.analysis.queries import FEWER_ANSWERS_EVENT
from evoforge.engine.analysis.views import show
from evoforge.engine.propose.llm import LLMEnsemble
from evoforge.engine.propose.shares import split_call
from evoforge.engine.run.concurrency import AdaptiveConcurrency
from evoforge.engine.run.config import ConfigError, Limits, ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import resume_search, run_search
from evoforge.islands import IslandConfig

REPO = Path(__file__).resolve().parent.parent
BIN_PACKING = str(REPO / "problems" / "bin_packing.py")
SMALL = {"num_items": "200", "num_instances": "2", "held_out_instances": "1"}
sys.path.insert(0, str(REPO / "benchmarks"))
from mutation_server import MutationResponder  # noqa: E402  (benchmarks/ is not a package)

INPUT_PRICE, OUTPUT_PRICE = 1e-6, 4e-6


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


def config(name: str, budget: int, server: OpenAIServer | None, *, answers: int, seed: int = 4,
           temperature: float = 0.8, **options: object) -> RunConfig:
    """A small bin-packing search with one candidate in flight; no server: the offline proposer."""
    models = ModelConfig() if server is None else ModelConfig(models=(ModelEntry(
        "openai/cheap", api_base=server.base_url, timeout_s=10, temperature=temperature,
        input_cost_per_token=INPUT_PRICE, output_cost_per_token=OUTPUT_PRICE),), backoff_s=0.05)
    islands = IslandConfig(num_islands=3, reset_period=5)
    return RunConfig(offline_share=0.0, problem=BIN_PACKING, name=name, budget=budget, seed=seed,
                     overrides=dict(SMALL), concurrency=1,
                     islands=islands, models=models, answers=answers, **options)  # type: ignore[arg-type]


def recorded(db: str, name: str) -> tuple[list, list]:
    """The run's proposals and programs, in the order they were recorded."""
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None
        briefs = store.program_briefs(run.id)
        return store.proposals(run.id), store.get_programs([b.id for b in briefs])


def lineage(proposals: list, programs: list) -> list[tuple]:
    """Each proposal's answer, parents (as positions among the run's programs, so two runs compare) and island."""
    position = {p.id: i for i, p in enumerate(programs)}
    return [(p.response, [position[i] for i in p.parent_ids], p.island, p.details.get("answer")) for p in proposals]


def calls_of(proposals: list) -> list[list]:
    """Proposals grouped by the call that made them (a call's answers are recorded one after another here)."""
    groups: list[list] = []
    for p in proposals:
        if p.details.get("answer", 0) == 0:
            groups.append([])
        groups[-1].append(p)
    return groups


# ---- the parts -------------------------------------------------------------------------------------------------

def test_a_calls_tokens_and_cost_are_shared_among_its_answers_and_add_up_to_the_call() -> None:
    shares = split_call(["aaaa", "a", ""], prompt_tokens=10, completion_tokens=7, cost=0.17)
    assert [s.prompt_tokens for s in shares] == [4, 3, 3]  # evenly, the remainder to the first
    assert [s.completion_tokens for s in shares] == [6, 1, 0]  # by length, largest remainder first
    assert [s.cost for s in shares] == pytest.approx([0.10, 0.04, 0.03])  # by the tokens each was given
    assert sum(s.cost for s in shares) == pytest.approx(0.17)
    alone = split_call(["x"], prompt_tokens=10, completion_tokens=7, cost=0.17)[0]
    assert (alone.prompt_tokens, alone.completion_tokens, alone.cost) == (10, 7, 0.17)
    empty = split_call(["", ""], prompt_tokens=3, completion_tokens=0, cost=0.0)
    assert [(s.prompt_tokens, s.completion_tokens, s.cost) for s in empty] == [(2, 0, 0.0), (1, 0, 0.0)]


def test_the_answers_setting_is_checked_and_stored_with_the_run() -> None:
    with pytest.raises(ConfigError, match=re.escape("answers (--answers) 0")):
        RunConfig(problem="p.py", name="x", answers=0)
    stored = RunConfig(problem="p.py", name="x", answers=4).to_dict()
    assert stored["answers"] == 4 and RunConfig.from_dict(stored).answers == 4
    assert RunConfig(problem="p.py", name="x").answers == 1


def test_the_adaptive_count_keeps_fewer_calls_in_flight_when_each_brings_several_answers() -> None:
    one, four, fewer = AdaptiveConcurrency(2), AdaptiveConcurrency(2), AdaptiveConcurrency(2)
    for policy, answers in ((one, 1), (four, 4), (fewer, 1)):
        policy.observe_proposal(10.0, answers)
        policy.observe_evaluation(1.0)
    # Little's law: workers x latency / evaluation calls wait on the model, each feeding `answers` evaluations.
    assert one.limit() == 28 and four.limit() == 9  # ceil(1.25 * (2 * 10 / 1 + 2)), ceil(1.25 * (20 / 4 + 2))
    assert fewer.limit() == one.limit()  # a provider that gives one answer per call is treated as such


@pytest.mark.parametrize("direct", [False, True], ids=["litellm", "direct"])
def test_one_request_asks_for_n_choices_and_returns_every_one(openai_server: OpenAIServer, direct: bool) -> None:
    openai_server.responder = sequence("first answer", "second", "third one here")
    spec = ModelEntry("openai/cheap", api_base=openai_server.base_url, timeout_s=10)
    ensemble = LLMEnsemble([spec], direct=direct)
    messages = [{"role": "user", "content": "improve this please"}]
    result = asyncio.run(ensemble.call(spec, messages, 3))
    assert result.ok and result.texts == ("first answer", "second", "third one here")
    assert result.text == "first answer"
    assert (result.prompt_tokens, result.completion_tokens) == (3, 2 + 1 + 3)  # the prompt once, every choice
    single = asyncio.run(ensemble.call(spec, messages))
    assert single.texts == ("third one here",)
    bodies = [r.body for r in openai_server.completion_requests]
    assert bodies[0]["n"] == 3 and "n" not in bodies[1]  # a one-answer request is sent as it always was


def test_n_is_sent_only_to_models_that_take_it() -> None:
    ensemble = LLMEnsemble([ModelEntry("openai/cheap")])
    assert ensemble.supports_n(ModelEntry("openai/cheap"))
    assert not ensemble.supports_n(ModelEntry("anthropic/claude-3-5-sonnet-20240620"))  # litellm lists no `n`
    server = ModelEntry("openai/cheap", api_base="http://127.0.0.1:9/v1")
    assert LLMEnsemble([server], direct=True).supports_n(server)  # as litellm says of every openai/ model


# ---- searches --------------------------------------------------------------------------------------------------

def test_each_answer_is_a_candidate_of_its_prompt_the_budget_is_exact_and_the_call_is_paid_once(
        tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(0)) as server:
        result = run_search(config("three", 7, server, answers=3), db, progress=False)
        requests = server.completion_requests
    assert result.status == "finished"
    assert [r.body.get("n") for r in requests] == [3, 3, None]  # the last prompt asks only for what is left
    proposals, programs = recorded(db, "three")
    assert len(proposals) == 7 and result.stats.done == 7  # each answer counts once against --budget
    calls = calls_of(proposals)
    assert [len(c) for c in calls] == [3, 3, 1]
    for call, request in zip(calls, requests):
        assert len({(p.prompt, tuple(p.parent_ids), p.island) for p in call}) == 1  # one prompt, same parents
        assert [p.details.get("answer") for p in call] == ([0, 1, 2] if len(call) == 3 else [None])
        assert [p.attempts for p in call] == [1] + [0] * (len(call) - 1)  # one call, counted once
        prompt_tokens = sum(count_tokens(m["content"]) for m in request.body["messages"])
        assert sum(p.prompt_tokens for p in call) == prompt_tokens  # the prompt paid once, shared
        assert sum(p.completion_tokens for p in call) == sum(count_tokens(p.response) for p in call)
        assert sum(p.cost for p in call) == pytest.approx(
            prompt_tokens * INPUT_PRICE + sum(p.completion_tokens for p in call) * OUTPUT_PRICE)
    assert len({p.response for p in calls[0]}) == 3  # different mutations per choice
    assert len(programs) == 1 + 7 - sum(not p.applied for p in proposals)  # the seed, then a program per answer
    with Store(db) as store:
        run = store.get_run("three")
        assert run is not None
        spend = store.llm_spend(run.id)
        text = show(store, "three", as_json=False)
    tokens = sum(p.prompt_tokens + p.completion_tokens for p in proposals)
    assert (spend.calls, spend.tokens) == (3, tokens) == (result.stats.calls, result.stats.tokens)
    assert spend.cost == pytest.approx(sum(p.cost for p in proposals)) == pytest.approx(result.stats.cost)
    assert f"3 LLM calls, {tokens} tokens" in text and "answers=3" in text


def test_a_server_that_gives_fewer_choices_is_used_as_it_is_and_said_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(0), max_choices=1) as server:
        result = run_search(config("fewer", 4, server, answers=3), db, progress=False)
        asked = [r.body.get("n") for r in server.completion_requests]
    assert result.status == "finished" and asked == [3, 3, 2, None]  # each asks for what the budget has left
    proposals, _ = recorded(db, "fewer")
    assert len(proposals) == 4 and all(p.attempts == 1 and p.details.get("answers", 1) == 1 for p in proposals)
    with Store(db) as store:
        run = store.get_run("fewer")
        assert run is not None
        said = [e.data for e in store.events(run.id, FEWER_ANSWERS_EVENT)]
        assert store.llm_spend(run.id).calls == 4
        text = show(store, "fewer", as_json=False)
    assert said == [{"model": "openai/cheap", "asked": 3, "got": 1}]
    assert "openai/cheap gave 1 of the 3 asked per prompt" in text


def test_a_replay_of_a_run_with_several_answers_per_prompt_is_identical(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(1)) as server:
        run_search(config("original", 10, server, answers=3), db, progress=False)
    replay = config("replayed", 10, server, answers=3)  # the server is gone: every answer must come from the record
    replay = RunConfig.from_dict({**replay.to_dict(), "models": {**replay.to_dict()["models"], "replay": "original"}})
    assert run_search(replay, db, progress=False).status == "finished"
    (first, first_programs), (again, again_programs) = recorded(db, "original"), recorded(db, "replayed")
    assert lineage(again, again_programs) == lineage(first, first_programs)
    assert all(p.details.get("replay") == "hit" and p.attempts == 0 for p in again)
    assert [(p.code_hash, p.status, p.score) for p in again_programs] == [
        (p.code_hash, p.status, p.score) for p in first_programs]


def test_a_resumed_run_with_several_answers_continues_as_the_uninterrupted_one(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(2)) as whole:
        run_search(config("whole", 9, whole, answers=3), db, progress=False)
    with OpenAIServer(MutationResponder(2)) as parts:
        run_search(config("parts", 6, parts, answers=3), db, progress=False)
        assert resume_search("parts", db, budget=9, progress=False).status == "finished"
    (a, a_programs), (b, b_programs) = recorded(db, "whole"), recorded(db, "parts")
    assert lineage(a, a_programs) == lineage(b, b_programs)
    assert [(p.code_hash, p.score) for p in a_programs] == [(p.code_hash, p.score) for p in b_programs]


def test_an_identical_deterministic_request_gets_all_its_answers_from_the_cache_also_after_a_resume(
        tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(sequence("I have no code for you.", "Nor have I.")) as server:
        run_search(config("cached", 10, server, answers=2, temperature=0.0), db, progress=False)
        resumed = resume_search("cached", db, budget=20, progress=False)  # its cache is rebuilt from the record
        requests = len(server.completion_requests)
    proposals, _ = recorded(db, "cached")
    calls = calls_of(proposals)
    assert len(proposals) == 20 and all(len(call) == 2 for call in calls)
    hits = [call for call in calls if call[0].details.get("cache") == "hit"]
    assert [[p.details.get("cache") for p in call] for call in hits] == [["hit", "hit"]] * len(hits)
    assert any(call[0].seq > proposals[9].seq for call in hits)  # a hit after the resume, from the stored answers
    assert requests == len(calls) - len(hits) == resumed.stats.calls
    assert all(p.cost == 0 and p.attempts == 0 for call in hits for p in call)
    paid = {call[0].prompt: [p.response for p in call] for call in calls if call not in hits}
    assert len(paid) == requests  # each request paid once, also across the resume (which shows the same failures)
    assert all([p.response for p in call] == paid[call[0].prompt] for call in hits)  # both answers, in order


def test_a_call_with_several_choices_is_one_call_for_the_calls_limit(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(0)) as server:
        result = run_search(config("limited", 20, server, answers=3, limits=Limits(max_calls=2)), db, progress=False)
        requests = len(server.completion_requests)
    assert requests == 2 and result.stats.calls == 2 and result.stats.stop_reason == "calls limit reached"
    proposals, _ = recorded(db, "limited")
    assert len(proposals) == 6


def test_the_offline_proposer_makes_several_mutations_of_the_same_parents(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    run_search(config("offline", 8, None, answers=4), db, progress=False)
    run_search(config("again", 8, None, answers=4), db, progress=False)
    proposals, programs = recorded(db, "offline")
    assert len(proposals) == 8 and {p.model for p in proposals} == {"offline"}
    calls = calls_of(proposals)
    assert [[p.details["answer"] for p in call] for call in calls] == [[0, 1, 2, 3]] * 2
    assert all(len({(tuple(p.parent_ids), p.island) for p in call}) == 1 for call in calls)
    assert len({p.response for p in proposals[:4]}) > 1
    again, again_programs = recorded(db, "again")
    assert lineage(again, again_programs) == lineage(proposals, programs)
    assert [p.code_hash for p in again_programs] == [p.code_hash for p in programs]  # a seed fixes the run


def test_the_cli_flag_and_the_api_build_the_same_run(tmp_path: Path) -> None:
    import evoforge
    from evoforge.engine.cli.main import main

    db = f"sqlite:///{tmp_path / 'r.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    assert main(["run", "bin_packing", "--budget", "3", "--answers", "2", "--db", db, "--name", "cli", "--quiet",
                 *sets]) == 0
    api = evoforge.run("bin_packing", budget=3, answers=2, db=db, name="api", overrides=SMALL)
    cli = evoforge.load_run("cli", db=db)
    assert cli.config.answers == 2
    assert {**cli.config.to_dict(), "name": "api"} == api.config.to_dict()
    proposals, _ = recorded(db, "cli")
    assert [p.details.get("answer") for p in proposals] == [0, 1, None]
    with Store(db) as store:
        assert json.loads(show(store, "cli", as_json=True))["config"]["run"]["answers"] == 2
