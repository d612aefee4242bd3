"""A run with a model that also proposes offline (--offline-share F): the share is drawn from the seed, an offline
candidate costs no call, the limits count calls alone, and a resume or a replay continues exactly.

Real components throughout: the OpenAI-compatible HTTP server of tests/openai_server.py answering with real
mutations (benchmarks/mutation_server.py), SQLite files, the sandbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from model_searches import BIN_PACKING, REPO, SMALL  # puts benchmarks/ on the import path
from mutation_server import MutationResponder
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.analysis.views import show
from evoforge.engine.propose.hybrid import HybridProposer
from evoforge.engine.propose.prompts import ParentView
from evoforge.engine.propose.proposers import LLMProposer, OfflineProposer
from evoforge.engine.run.config import DEFAULT_OFFLINE_SHARE, ConfigError, Limits, ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import resume_search, run_search
from evoforge.evaluators import load_problem
from evoforge.islands import IslandConfig

pytestmark = pytest.mark.usefixtures("openai_test_key")


def models(server: OpenAIServer) -> ModelConfig:
    return ModelConfig(models=(ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10,
                                          input_cost_per_token=1e-6, output_cost_per_token=4e-6),), backoff_s=0.05)


def config(name: str, budget: int, server: OpenAIServer, *, share: float = 0.5, seed: int = 3,
           **options: object) -> RunConfig:
    """A small bin-packing search with one candidate in flight."""
    return RunConfig(problem=BIN_PACKING, name=name, budget=budget, seed=seed, overrides=dict(SMALL), concurrency=1,
                     islands=IslandConfig(num_islands=3, reset_period=5), models=models(server),
                     offline_share=share, **options)  # type: ignore[arg-type]


def recorded(db: str, name: str) -> tuple[list, list]:
    """The run's proposals and programs, in the order they were recorded."""
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None
        return store.proposals(run.id), store.get_programs([b.id for b in store.program_briefs(run.id)])


def lineage(proposals: list, programs: list) -> list[tuple]:
    """Each proposal's model, answer, parents (as positions among the run's programs, so two runs compare), island."""
    position = {p.id: i for i, p in enumerate(programs)}
    return [(p.model, p.response, [position[i] for i in p.parent_ids], p.island) for p in proposals]


# ---- the proposer ----------------------------------------------------------------------------------------------

def test_each_prompt_goes_to_the_offline_mutator_with_the_share_drawn_first_from_its_generator() -> None:
    problem = load_problem(BIN_PACKING, SMALL)
    seed = ParentView(code=problem.seed_code, score=5.0, status="ok")
    with OpenAIServer(MutationResponder(0)) as server:
        model = LLMProposer(problem.description, problem.evolved_names, models(server), maximize=False)
        hybrid = HybridProposer(model, OfflineProposer(problem.evolved_names, vars(problem.module).keys(),
                                                       maximize=False), 0.3)
        chosen = []
        for prompt in range(40):
            expected = np.random.default_rng([7, prompt]).random() < 0.3
            [proposal] = asyncio.run(hybrid.propose([seed], np.random.default_rng([7, prompt])))
            assert (proposal.model == "offline") == expected and proposal.error is None
            chosen.append(expected)
        calls = len(server.completion_requests)
    assert calls == chosen.count(False) and 0 < chosen.count(True) < 40  # a call only for the model's prompts


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, True])
def test_a_share_outside_0_to_1_is_refused_by_the_proposer_and_the_config(share: float) -> None:
    problem = load_problem(BIN_PACKING, SMALL)
    offline = OfflineProposer(problem.evolved_names)
    if not isinstance(share, bool):
        with pytest.raises(ValueError, match="offline_share"):
            HybridProposer(offline, offline, share)
    if share != 0.0:
        with pytest.raises(ConfigError, match="offline_share"):
            RunConfig(problem=BIN_PACKING, name="x", models=ModelConfig(models=(ModelEntry("gpt-4o-mini"),)),
                      offline_share=share)


def test_an_offline_share_without_a_model_is_refused_rather_than_ignored() -> None:
    with pytest.raises(ConfigError, match="--offline-share.*--model"):
        RunConfig(problem=BIN_PACKING, name="x", offline_share=0.5)


def test_a_run_with_a_model_answers_half_its_prompts_offline_by_default_and_an_older_stored_run_none() -> None:
    entry = ModelEntry("openai/cheap", api_base="http://localhost:1/v1")
    with_model = RunConfig(problem=BIN_PACKING, name="x", models=ModelConfig(models=(entry,)))
    assert with_model.offline_share == DEFAULT_OFFLINE_SHARE == 0.5
    assert RunConfig.from_dict(with_model.to_dict()).offline_share == 0.5  # stored resolved
    assert RunConfig(problem=BIN_PACKING, name="x").offline_share == 0.0  # offline: every prompt is offline anyway
    assert RunConfig(problem=BIN_PACKING, name="x", models=ModelConfig(models=(entry,)),
                     offline_share=0).offline_share == 0.0
    older = with_model.to_dict()
    del older["offline_share"]  # stored before the setting existed: the model answered every prompt
    assert RunConfig.from_dict(older).offline_share == 0.0


def test_a_replay_asks_the_model_what_the_replayed_run_did_whatever_the_default(tmp_path: Path) -> None:
    from evoforge.engine.run.options import SearchOptions, run_config

    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(1)) as server:
        run_search(config("model-only", 6, server, share=0.0), db, progress=False)
        run_search(config("hybrid", 6, server, share=0.7), db, progress=False)
    for replayed, share in (("model-only", 0.0), ("hybrid", 0.7)):
        options = SearchOptions(name=f"again-{replayed}", replay=replayed)
        assert run_config(BIN_PACKING, options, db).offline_share == share
    options = SearchOptions(name="told", replay="hybrid", offline_share=0.25)  # given, it wins
    assert run_config(BIN_PACKING, options, db).offline_share == 0.25


# ---- searches --------------------------------------------------------------------------------------------------

def test_a_seed_fixes_which_prompts_are_offline_and_offline_candidates_cost_no_call(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(1)) as server:
        result = run_search(config("mixed", 24, server), db, progress=False)
        requests = len(server.completion_requests)
    with OpenAIServer(MutationResponder(1)) as server:
        run_search(config("again", 24, server), db, progress=False)
    proposals, programs = recorded(db, "mixed")
    offline = [p for p in proposals if p.model == "offline"]
    assert result.status == "finished" and len(proposals) == 24 == result.stats.done  # the budget counts both kinds
    assert 6 <= len(offline) <= 18  # about half, as drawn from the seed
    assert requests == 24 - len(offline) == result.stats.calls  # one call per model proposal, none offline
    assert all(p.prompt_tokens == p.completion_tokens == 0 and p.cost == 0 for p in offline)
    by_proposal = {p.proposal_id: p for p in programs if p.proposal_id is not None}
    assert {by_proposal[p.id].origin for p in offline if p.id in by_proposal} == {"offline"}
    assert {by_proposal[p.id].origin for p in proposals if p.id in by_proposal and p.model != "offline"} == {"llm"}
    again, again_programs = recorded(db, "again")
    assert lineage(again, again_programs) == lineage(proposals, programs)  # the same seed, the same run
    assert [(p.code_hash, p.score) for p in again_programs] == [(p.code_hash, p.score) for p in programs]
    with Store(db) as store:
        run = store.get_run("mixed")
        assert run is not None
        spend = store.llm_spend(run.id)
        totals = {t.model: t for t in store.model_totals(run.id)}
        text = show(store, "mixed", as_json=False)
    assert spend.calls == requests and spend.cost == pytest.approx(result.stats.cost) and spend.cost > 0
    assert (totals["offline"].proposals, totals["offline"].calls, totals["offline"].tokens) == (len(offline), 0, 0)
    assert totals["openai/cheap"].calls == requests
    assert f"{requests} LLM calls" in text and "offline_share=0.5" in text


def test_the_calls_limit_counts_calls_alone_and_offline_candidates_go_on_until_it_is_reached(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(0)) as server:
        result = run_search(config("limited", 60, server, share=0.75, limits=Limits(max_calls=4)), db,
                            progress=False)
        requests = len(server.completion_requests)
    proposals, _ = recorded(db, "limited")
    assert requests == 4 == result.stats.calls and result.stats.stop_reason == "calls limit reached"
    assert result.status == "finished"
    assert proposals[-1].model != "offline"  # it stops at the fourth call, one candidate in flight
    assert len(proposals) > 4 and sum(p.model != "offline" for p in proposals) == 4


def test_a_resumed_hybrid_run_continues_as_the_uninterrupted_one(tmp_path: Path) -> None:
    """On a construction (min_max_distance), where the offline mutator walks the numbers from one recorded child to
    the next: the resume must replay its recorded offline proposals, or its walk starts over elsewhere."""
    db = f"sqlite:///{tmp_path / 'r.db'}"
    problem = str(REPO / "problems" / "min_max_distance.py")

    def construction(name: str, budget: int, server: OpenAIServer) -> RunConfig:
        return RunConfig(problem=problem, name=name, budget=budget, seed=0, concurrency=1, models=models(server),
                         offline_share=0.7)

    with OpenAIServer(MutationResponder(2)) as whole:
        run_search(construction("whole", 40, whole), db, progress=False)
    with OpenAIServer(MutationResponder(2)) as parts:
        run_search(construction("parts", 20, parts), db, progress=False)
        assert resume_search("parts", db, budget=40, progress=False).status == "finished"
    (a, a_programs), (b, b_programs) = recorded(db, "whole"), recorded(db, "parts")
    assert {p.model for p in a[20:]} == {"offline", "openai/cheap"}  # both kinds after the resume point
    assert any(p.details.get("walked") for p in a[20:])  # the walk goes on from where it was
    assert lineage(a, a_programs) == lineage(b, b_programs)
    assert [(p.code_hash, p.score) for p in a_programs] == [(p.code_hash, p.score) for p in b_programs]


def test_a_replay_of_a_hybrid_run_is_identical_with_no_server(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(MutationResponder(1)) as server:
        run_search(config("original", 16, server), db, progress=False)
    replay = config("replayed", 16, server)  # the server is gone: every model answer must come from the record
    replay = RunConfig.from_dict({**replay.to_dict(), "models": {**replay.to_dict()["models"], "replay": "original"}})
    assert run_search(replay, db, progress=False).status == "finished"
    (first, first_programs), (again, again_programs) = recorded(db, "original"), recorded(db, "replayed")
    assert lineage(again, again_programs) == lineage(first, first_programs)
    assert all(p.details.get("replay") == "hit" for p in again if p.model != "offline")
    assert [(p.code_hash, p.score) for p in again_programs] == [(p.code_hash, p.score) for p in first_programs]


def test_the_cli_flag_and_the_api_build_the_same_run(tmp_path: Path) -> None:
    import evoforge
    from evoforge.engine.cli.main import main

    db = f"sqlite:///{tmp_path / 'r.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    with OpenAIServer(MutationResponder(0)) as server:
        assert main(["run", "bin_packing", "--budget", "4", "--offline-share", "0.5", "--model", "openai/cheap",
                     "--api-base", server.base_url, "--db", db, "--name", "cli", "--quiet", *sets]) == 0
        api = evoforge.run("bin_packing", budget=4, offline_share=0.5, model="openai/cheap",
                           api_base=server.base_url, db=db, name="api", overrides=SMALL)
    cli = evoforge.load_run("cli", db=db)
    assert cli.config.offline_share == 0.5
    assert {**cli.config.to_dict(), "name": "api"} == api.config.to_dict()


def test_the_quality_benchmark_counts_paid_proposals_and_a_free_one_with_the_paid_one_after_it() -> None:
    import quality

    class Brief:
        def __init__(self, proposal_id: int | None, score: float) -> None:
            self.proposal_id, self.score, self.status = proposal_id, score, "ok"

    # proposals 1..6; 2, 3 and 5 offline (free); lower is better
    briefs = [Brief(None, 5.0), Brief(1, 4.9), Brief(2, 4.0), Brief(4, 4.5), Brief(5, 3.0), Brief(6, 4.8)]
    assert quality.running_best(briefs, [1, 2, 3, 4, 5, 6], (1, 2, 3), False, paid=[1, 4, 6]) == (4.9, 4.0, 3.0)
    assert quality.running_best(briefs, [1, 2, 3, 4, 5, 6], (1, 2, 6), False) == (4.9, 4.0, 3.0)  # every proposal
