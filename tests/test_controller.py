"""The Controller on its own, driven with real collaborators: a SQLite file, the toy problem in real sandboxes (the
local executor), the island model, and either the offline proposer or the LLM proposer talking to a real HTTP
server that speaks the OpenAI API (tests/openai_server.py), which scripts each answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openai_server import Fault, OpenAIServer, sequence

from evoforge.db import Store
from evoforge.engine.analysis.queries import REJECT_EVENT
from evoforge.engine.propose.proposers import Proposer, make_proposer
from evoforge.engine.run.config import Limits, ModelConfig, ModelEntry
from evoforge.engine.run.controller import Controller, RunRef, SeedFailed
from evoforge.engine.run.executor import LocalExecutor
from evoforge.engine.run.oversight import reject_program
from evoforge.engine.run.stats import RunStats
from evoforge.evaluators import Problem, SandboxPool, load_problem
from evoforge.islands import IslandConfig, IslandModel

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY = FIXTURES / "toy_problem.py"  # f(x) = x * 2 on a=1, b=2 (held out: c=3); the score is the mean output


def answer(new: str, old: str = "    return x * 2") -> str:
    """An LLM answer that replaces one line of the seed."""
    return f"Here:\n```\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n```\n"


class Rig:
    """Builds controllers over one database and closes what it opened."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'runs.db'}"
        self.store = Store(self.url)
        self._closing = contextlib.ExitStack()
        self._closing.callback(self.store.close)

    def controller(self, proposer: Proposer, *, budget: int, name: str = "c", problem: Problem | None = None,
                   concurrency: int = 1, limits: Limits | None = None, reject_same_behaviour: bool = False,
                   duplicates_as_parents: bool = False, seed: int = 3) -> Controller:
        problem = problem or load_problem(TOY)
        run = self.store.get_run(name) or self.store.create_run(
            name=name, problem_name=problem.name, problem_path=str(problem.path), problem_source=problem.source,
            problem_hash=problem.source_hash, config={}, seed=seed)
        executor = LocalExecutor(SandboxPool(problem, 2))
        self._closing.callback(executor.close)
        return Controller(problem=problem, store=self.store, run=RunRef(run.id, run.name, seed),
                          islands=IslandModel(IslandConfig(num_islands=2, reset_period=6), maximize=True),
                          proposer=proposer,
                          executor=executor, stats=RunStats(budget=budget), concurrency=concurrency,
                          limits=limits, reject_same_behaviour=reject_same_behaviour,
                          duplicates_as_parents=duplicates_as_parents)

    def close(self) -> None:
        self._closing.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., tuple[Proposer, OpenAIServer]]]:
    """An LLM proposer whose model is a real local server answering with the given replies, in order."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    servers: list[OpenAIServer] = []

    def make(*replies: str | Fault) -> tuple[Proposer, OpenAIServer]:
        server = OpenAIServer(sequence(*replies)).start()
        servers.append(server)
        models = ModelConfig(models=(ModelEntry("openai/scripted", api_base=server.base_url, timeout_s=10),),
                             retries=0, cache=False)
        problem = load_problem(TOY)
        return make_proposer(models, problem.description, problem.evolved_names), server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


def offline() -> Proposer:
    problem = load_problem(TOY)
    return make_proposer(ModelConfig(), problem.description, problem.evolved_names,
                         global_names=vars(problem.module).keys())


def drive(controller: Controller, *, seed: bool = True) -> RunStats:
    async def go() -> RunStats:
        if seed:
            await controller.evaluate_seed()
        return await controller.run_to_budget()

    return asyncio.run(go())


def programs(store: Store, run_id: int) -> list:
    return store.get_programs([b.id for b in store.program_briefs(run_id)])


def test_the_seed_is_evaluated_on_both_input_sets_recorded_and_founds_every_island(rig: Rig) -> None:
    controller = rig.controller(offline(), budget=0)
    seed_id = asyncio.run(controller.evaluate_seed())
    [seed] = programs(rig.store, controller.run.id)
    assert (seed.id, seed.origin, seed.status, seed.score, seed.scores) == (seed_id, "seed", "ok", 3.0,
                                                                            {"a": 2.0, "b": 4.0})
    assert seed.held_out_score == 6.0
    assert [e.kind for e in rig.store.evaluations(seed_id)] == ["train", "held_out"]
    assert controller.islands.island_sizes() == [1, 1]
    assert (controller.stats.best_program_id, controller.stats.best_score) == (seed_id, 3.0)
    assert rig.store.attempts(controller.run.id) == 1


def test_a_seed_that_does_not_evaluate_stops_the_run_before_it_starts(rig: Rig, tmp_path: Path) -> None:
    broken = tmp_path / "broken_problem.py"
    broken.write_text(TOY.read_text().replace("return x * 2", "return x / 0"))
    controller = rig.controller(offline(), budget=5, problem=load_problem(broken))
    with pytest.raises(SeedFailed) as info:
        asyncio.run(controller.evaluate_seed())
    message = str(info.value)
    assert "'error'" in message and "ZeroDivisionError" in message and f"evoforge eval {broken}" in message
    assert rig.store.attempts(controller.run.id) == 0  # nothing was recorded


def test_the_budget_is_spent_exactly_and_every_candidate_is_recorded_once(rig: Rig) -> None:
    controller = rig.controller(offline(), budget=12, concurrency=2)
    stats = drive(controller)
    run_id = controller.run.id
    assert (stats.attempts, stats.done) == (12, 12)
    assert rig.store.attempts(run_id) == 13 and len(rig.store.proposals(run_id)) == 12
    counts = rig.store.status_counts(run_id)
    assert stats.evaluated == sum(counts.values()) - counts.get("duplicate", 0) - 1  # the seed is not counted
    assert stats.duplicates == counts.get("duplicate", 0) and stats.valid == counts["ok"] - 1
    best = rig.store.best_programs(run_id, 1, maximize=True)[0]
    assert (stats.best_program_id, stats.best_score) == (best.id, best.score)
    assert best.held_out_score is not None  # a new best gets its held-out evaluation


def test_each_way_a_candidate_can_fail_is_recorded_and_fed_back_to_its_island(rig: Rig, llm) -> None:
    # With one candidate in flight, attempt i works on island i % 2.
    proposer, server = llm(
        "I would rather not.",                                   # 0: no SEARCH/REPLACE block, cannot be applied
        Fault.http(500),                                         # 1: the provider fails (no retries here)
        answer("    return x * 3"),                              # 2: a better program
        answer("    return x * 3"),                              # 3: the same code again: a duplicate of 2
        answer("def f(x):\n    x = x / 0", old="def f(x):"),     # 4: applies, then fails in the sandbox
        answer("    return x * 5"),                              # 5: the best program
        "Still nothing.",                                        # 6: island 0 again
    )
    controller = rig.controller(proposer, budget=7)
    stats = drive(controller)
    run_id = controller.run.id
    errors = [p.error for p in rig.store.proposals(run_id)]
    assert errors[0].startswith("response could not be applied") and errors[6].startswith("response could not")
    assert errors[1].startswith("proposer failed") and errors[2:6] == [None] * 4
    seed, better, duplicate, failing, best = programs(rig.store, run_id)
    assert (better.status, better.score, better.parent_ids[-1]) == ("ok", 4.5, seed.id)
    assert (duplicate.status, duplicate.duplicate_of) == ("duplicate", better.id)
    assert rig.store.evaluations(duplicate.id) == []  # a duplicate is never evaluated
    assert failing.status == "error" and "ZeroDivisionError" in failing.error
    assert (best.status, best.score) == ("ok", 7.5)
    assert (stats.failed_proposals, stats.duplicates, stats.evaluated, stats.valid) == (3, 1, 3, 2)
    assert (stats.best_program_id, stats.best_score) == (best.id, 7.5)
    prompts = [" ".join(str(m["content"]) for m in r.messages) for r in server.completion_requests]
    assert len(prompts) == 7
    assert "could not be applied" in prompts[2] and "could not be applied" not in prompts[3]  # island 0's own
    assert "a version was error" in prompts[6] and "a version was error" not in prompts[5]


def test_a_program_that_behaves_like_an_earlier_one_is_rejected_when_asked(rig: Rig, llm) -> None:
    proposer, _ = llm(answer("    return x + x"), answer("    return x * 3"))
    controller = rig.controller(proposer, budget=2, reject_same_behaviour=True)
    stats = drive(controller)
    seed, same, new = programs(rig.store, controller.run.id)
    assert (same.status, same.duplicate_of, new.status) == ("duplicate", seed.id, "ok")
    assert (stats.duplicates, stats.behaviour_duplicates) == (1, 1)

    kept_proposer, _ = llm(answer("    return x + x"))
    kept = rig.controller(kept_proposer, budget=1, name="kept")
    drive(kept)
    assert [p.status for p in programs(rig.store, kept.run.id)] == ["ok", "ok"]


def test_a_spending_limit_stops_the_run_and_says_which(rig: Rig, llm) -> None:
    proposer, server = llm(*(answer(f"    return x * {k}") for k in range(3, 20)))
    controller = rig.controller(proposer, budget=10, limits=Limits(max_calls=3))
    stats = drive(controller)
    assert (stats.calls, stats.attempts, stats.stop_reason) == (3, 3, "calls limit reached")
    assert len(server.completion_requests) == 3
    [stop] = rig.store.events(controller.run.id, "stop")
    assert stop.data == {"reason": "calls limit reached", "attempts": 3}


def test_restore_rebuilds_islands_and_totals_and_the_run_continues(rig: Rig) -> None:
    first = rig.controller(offline(), budget=10)
    before = drive(first)
    again = rig.controller(offline(), budget=16)
    assert again.restore() is True
    assert again.islands.snapshot() == first.islands.snapshot()
    restored = again.stats
    assert (restored.attempts, restored.done, restored.evaluated, restored.valid) == (
        before.attempts, before.done, before.evaluated, before.valid)
    assert (restored.best_program_id, restored.best_score) == (before.best_program_id, before.best_score)
    after = drive(again, seed=False)
    assert after.attempts == 16 and rig.store.attempts(again.run.id) == 17


def test_a_resumed_llm_run_sends_the_prompts_of_one_that_never_stopped(rig: Rig, llm) -> None:
    # The parents of a prompt come from the run's memory of what it recorded, or after a resume from the database:
    # both must show the model the same programs, scores and errors.
    replies = [answer(f"    return x * 2 + {i}") if i % 3 else answer("    return x +") for i in range(1, 9)]
    whole = rig.controller(llm(*replies)[0], budget=8, name="whole")
    drive(whole)
    first = rig.controller(llm(*replies)[0], budget=4, name="resumed")
    drive(first)
    again = rig.controller(llm(*replies[4:])[0], budget=8, name="resumed")
    assert again.restore() is True
    drive(again, seed=False)

    prompts = {name: [p.prompt for p in rig.store.proposals(rig.store.get_run(name).id)]
               for name in ("whole", "resumed")}
    assert len(prompts["whole"]) == 8 and prompts["resumed"] == prompts["whole"]


def test_restore_of_a_run_killed_before_its_seed_says_there_is_nothing(rig: Rig) -> None:
    assert rig.controller(offline(), budget=3).restore() is False


def test_a_rejected_program_leaves_selection_at_once(rig: Rig, llm) -> None:
    proposer, _ = llm(answer("    return x * 9"))
    controller = rig.controller(proposer, budget=1)
    drive(controller)
    seed, best = programs(rig.store, controller.run.id)
    assert controller.stats.best_program_id == best.id
    reject_program(rig.store, best.id, why="it reads the answer")
    controller.apply_action(REJECT_EVENT, best.id)
    assert controller.islands.best() == (seed.id, 3.0)
    assert (controller.stats.best_program_id, controller.stats.best_score) == (seed.id, 3.0)
    controller.apply_action(REJECT_EVENT, best.id)  # seen twice: changes nothing
    assert controller.islands.island_sizes() == [1, 1]


class RejectsBefore:
    """A proposer that, before its n-th proposal, has a person reject the run's best program (as the steering
    poll would apply it while the run goes on); otherwise the wrapped proposer."""

    def __init__(self, inner: Proposer, before: int) -> None:
        self.inner, self.before, self.calls = inner, before, 0
        self.controller: Controller | None = None
        self.rejected: int | None = None

    async def propose(self, parents, rng, *, feedback=(), inspirations=(), answers=1):
        self.calls += 1
        if self.calls == self.before and self.controller is not None:
            self.rejected = self.controller.stats.best_program_id
            assert self.rejected is not None
            reject_program(self.controller.store, self.rejected, why="it reads the answer")
            self.controller.apply_action(REJECT_EVENT, self.rejected)
        return await self.inner.propose(parents, rng, feedback=feedback, inspirations=inspirations, answers=answers)

    def observe(self, proposal, improved, rng) -> None:
        self.inner.observe(proposal, improved, rng)

    def stop_reason(self) -> str | None:
        return self.inner.stop_reason()


def test_a_rejected_programs_behavioural_twins_leave_selection_with_it(rig: Rig, llm) -> None:
    # x + x * 8 and 9 * x behave as x * 9 does: each joins as a parent with x * 9's score, which it never earned
    inner, _ = llm(*(f"```python\ndef f(x):\n    return {body}\n```" for body in ("x * 9", "x + x * 8", "9 * x")))
    proposer = RejectsBefore(inner, before=3)
    controller = rig.controller(proposer, budget=3, reject_same_behaviour=True, duplicates_as_parents=True)
    proposer.controller = controller
    drive(controller)
    seed, best, twin, later = programs(rig.store, controller.run.id)
    assert proposer.rejected == best.id and best.score == 13.5
    # Before the rejection, the twin had joined with its original's score; with it, it left.
    assert twin.status == "duplicate" and twin.duplicate_of == best.id and controller.islands.is_registered(twin.id)
    assert later.status == "duplicate" and later.duplicate_of == best.id  # a twin that came after the rejection
    assert controller.islands.best() == (seed.id, 3.0)
    assert sorted(controller.islands.island_sizes()) == [1, 1]  # the seed alone on each island
    assert (controller.stats.best_program_id, controller.stats.best_score) == (seed.id, 3.0)
