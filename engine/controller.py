"""The search loop: pick an island, select parents, propose, patch, dedupe, evaluate, record, update islands.

A steady-state asyncio loop: up to `concurrency` candidates are in flight; proposing (LLM I/O) happens here and
evaluation goes to the executor. Every random choice for attempt i comes from a Generator seeded by (seed, i), so
with one candidate in flight the same seed gives the same run, and a resumed run continues exactly where it stopped.
The controller is the only writer of the database; each finished candidate is one transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from db import NewEvaluation, NewProgram, NewProposal, Store
from engine.codeutil import code_hash
from engine.executor import Executor
from engine.patching import PatchError, apply_response
from engine.prompts import ParentView
from engine.proposers import Proposal, Proposer
from engine.stats import RunStats
from evaluators import Evaluation, Problem
from islands import IslandModel, ResetPlan


class SeedFailed(RuntimeError):
    """The problem's own seed program does not evaluate to a valid score, so there is nothing to evolve from."""


@dataclass(frozen=True)
class RunRef:
    """The database identity of the run being driven."""

    id: int
    name: str
    seed: int


def _evaluation_record(ev: Evaluation, kind: str, extra_timings: dict[str, float] | None = None) -> NewEvaluation:
    timings = dict(ev.timings)
    timings.update(extra_timings or {})
    return NewEvaluation(kind=kind, status=ev.status, score=ev.score, scores=dict(ev.scores), error=ev.error,
                         timings=timings, compiled=ev.compiled)


def _proposal_record(p: Proposal, island: int, parent_ids: list[int], error: str | None = None) -> NewProposal:
    return NewProposal(island=island, parent_ids=parent_ids, model=p.model, prompt=p.prompt, response=p.text,
                       prompt_tokens=p.prompt_tokens, completion_tokens=p.completion_tokens, cost=p.cost,
                       latency_s=p.latency_s, error=error)


class Controller:
    """Drives one run to its budget; collaborators are passed in so each can be tested and swapped alone."""

    def __init__(self, *, problem: Problem, store: Store, run: RunRef, islands: IslandModel, proposer: Proposer,
                 executor: Executor, stats: RunStats, concurrency: int = 1,
                 on_progress: Callable[[RunStats], None] | None = None) -> None:
        self.problem = problem
        self.store = store
        self.run = run
        self.islands = islands
        self.proposer = proposer
        self.executor = executor
        self.stats = stats
        self.concurrency = max(1, concurrency)
        self._on_progress = on_progress or (lambda _stats: None)
        self._in_flight_hashes: dict[str, asyncio.Future[int | None]] = {}

    # ----------------------------------------------------------------- seed and history

    async def evaluate_seed(self) -> int:
        """Evaluate the problem's seed, record it, and found every island with it."""
        code = self.problem.seed_code
        start = time.perf_counter()
        ev = await self.executor.evaluate(code)
        self.stats.add_time("evaluate", time.perf_counter() - start)
        if ev.status != "ok" or ev.score is None:
            raise SeedFailed(f"{self.problem.path}: the seed program's evaluation is '{ev.status}': {ev.error}\n"
                             "  fix: make the @evolve seed, solve() and score() work together; try "
                             f"`evoforge eval {self.problem.path}` to see the details")
        held = await self._held_out(code)
        program = NewProgram(island=0, parent_ids=[], origin="seed", code=code, code_hash=code_hash(code), status="ok", score=ev.score, scores=dict(ev.scores), error=None)
        evaluations = [_evaluation_record(ev, "train")]
        if held is not None:
            evaluations.append(_evaluation_record(held, "held_out"))
        recorded = self.store.record_candidate(self.run.id, proposal=None, program=program, evaluations=evaluations)
        self._register_seed(recorded.program_id, ev.score, ev.scores, len(code))
        self._note_best(recorded.program_id, ev.score)
        return recorded.program_id

    def _register_seed(self, program_id: int, score: float, scores: dict[str, float], length: int) -> None:
        self.islands.register_everywhere(program_id, self._signature(scores), score, length)

    def _signature(self, scores: dict[str, float]) -> tuple[float, ...]:
        return tuple(scores[name] for name in self.problem.inputs)

    def restore(self) -> bool:
        """Rebuild islands and totals from the database, replaying registrations and resets in their order.

        Returns False when the run holds no valid program yet (it was killed before its seed was recorded).
        """
        found = False
        unproposed = 0  # the seed and human-written programs: recorded, but not part of the budget
        for item in self.store.history(self.run.id):
            if item.kind == "program" and item.origin in ("seed", "human"):
                unproposed += 1
            if item.kind == "reset":
                self.islands.apply_reset(ResetPlan.from_dict(item.data))
            elif item.kind == "program" and item.status == "ok" and item.score is not None:
                if item.origin == "seed":
                    self._register_seed(item.id, item.score, item.scores, item.code_length)
                else:
                    self.islands.register(item.id, item.island, self._signature(item.scores), item.score,
                                          item.code_length)
                self._note_best(item.id, item.score)
                found = True
        self.stats.attempts = self.stats.done = self.store.attempts(self.run.id) - unproposed
        self.stats.cost = self.store.total_cost(self.run.id)
        return found

    def _note_best(self, program_id: int, score: float) -> bool:
        if self.problem.is_better(score, self.stats.best_score):
            self.stats.best_score = score
            self.stats.best_program_id = program_id
            return True
        return False

    # ----------------------------------------------------------------- the loop

    async def run_to_budget(self) -> RunStats:
        """Propose and evaluate candidates until the budget is spent; cancellation keeps what was recorded."""
        pending: set[asyncio.Task[None]] = set()
        try:
            while self.stats.attempts < self.stats.budget or pending:
                while self.stats.attempts < self.stats.budget and len(pending) < self.concurrency:
                    attempt = self.stats.attempts
                    self.stats.attempts += 1
                    pending.add(asyncio.create_task(self._one_candidate(attempt)))
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # an engine bug must surface, not vanish in a task
                    self.stats.done += 1
                self._on_progress(self.stats)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return self.stats

    async def _one_candidate(self, attempt: int) -> None:
        rng = np.random.default_rng([self.run.seed, attempt])
        island = attempt % self.islands.config.num_islands
        parent_ids = self.islands.select_parents(island, rng)
        parents = self.store.get_programs(parent_ids)
        views = [ParentView(code=p.code, score=p.score, status=p.status, error=p.error) for p in parents]

        start = time.perf_counter()
        proposal = await self.proposer.propose(views, rng)
        self.stats.add_time("propose", time.perf_counter() - start)
        self.stats.cost += proposal.cost
        if proposal.error is not None:
            self._record_failed(proposal, island, parent_ids, f"proposer failed: {proposal.error}")
            return

        start = time.perf_counter()
        try:
            code = apply_response(proposal.text, parents[-1].code, self.problem.evolved_names)
        except PatchError as exc:
            self.stats.add_time("patch", time.perf_counter() - start)
            self._record_failed(proposal, island, parent_ids, f"response could not be applied: {exc}")
            return
        self.stats.add_time("patch", time.perf_counter() - start)

        digest = code_hash(code)
        original = await self._find_original(digest)
        if original is not None:
            await self._record_duplicate(proposal, island, parent_ids, code, digest, original)
            return
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._in_flight_hashes[digest] = future
        program_id: int | None = None
        try:
            program_id = await self._evaluate_and_record(proposal, island, parent_ids, code, digest)
        finally:
            future.set_result(program_id)
            del self._in_flight_hashes[digest]

    async def _find_original(self, digest: str) -> int | None:
        waiting = self._in_flight_hashes.get(digest)
        if waiting is not None:
            return await asyncio.shield(waiting)
        return self.store.find_by_hash(self.run.id, digest)

    async def _evaluate_and_record(self, proposal: Proposal, island: int, parent_ids: list[int], code: str,
                                   digest: str) -> int:
        start = time.perf_counter()
        ev = await self.executor.evaluate(code)
        self.stats.add_time("evaluate", time.perf_counter() - start)
        for part in ("sandbox_start", "compile", "solve", "score"):
            self.stats.add_time(part, ev.timings.get(part, 0.0))
        held = None
        if ev.status == "ok" and ev.score is not None and self.problem.is_better(ev.score, self.stats.best_score):
            held = await self._held_out(code)
        program = NewProgram(island=island, parent_ids=parent_ids, origin=self._origin(proposal), code=code,
                             code_hash=digest, status=ev.status, score=ev.score,
                             scores=dict(ev.scores), error=ev.error)
        evaluations = [_evaluation_record(ev, "train", {"propose": proposal.latency_s})]
        if held is not None:
            evaluations.append(_evaluation_record(held, "held_out"))
        start = time.perf_counter()
        recorded = self.store.record_candidate(self.run.id, proposal=_proposal_record(proposal, island, parent_ids), program=program, evaluations=evaluations)
        self.stats.add_time("database", time.perf_counter() - start)
        self.stats.evaluated += 1
        if ev.status == "ok" and ev.score is not None:
            self.stats.valid += 1
            self.islands.register(recorded.program_id, island, self._signature(ev.scores), ev.score, len(code))
            self._note_best(recorded.program_id, ev.score)
            self._maybe_reset(recorded.seq)
        return recorded.program_id

    async def _held_out(self, code: str) -> Evaluation | None:
        if not self.problem.held_out:
            return None
        start = time.perf_counter()
        held = await self.executor.evaluate(code, held_out=True)
        self.stats.add_time("held_out", time.perf_counter() - start)
        return held

    def _maybe_reset(self, seq: int) -> None:
        if not self.islands.needs_reset():
            return
        plan = self.islands.plan_reset(np.random.default_rng([self.run.seed, seq, 1]))
        self.store.record_event(self.run.id, "reset", plan.to_dict())
        self.islands.apply_reset(plan)

    @staticmethod
    def _origin(proposal: Proposal) -> str:
        return "offline" if proposal.model == "offline" else "llm"

    def _record_failed(self, proposal: Proposal, island: int, parent_ids: list[int], error: str) -> None:
        self.store.record_candidate(self.run.id, proposal=_proposal_record(proposal, island, parent_ids, error), program=None, evaluations=[])
        self.stats.failed_proposals += 1

    async def _record_duplicate(self, proposal: Proposal, island: int, parent_ids: list[int], code: str,
                                digest: str, original: int) -> None:
        program = NewProgram(island=island, parent_ids=parent_ids, origin=self._origin(proposal), code=code,
                             code_hash=digest, status="duplicate", score=None, scores={},
                             duplicate_of=original)
        self.store.record_candidate(self.run.id, proposal=_proposal_record(proposal, island, parent_ids),
                                    program=program, evaluations=[])
        self.stats.duplicates += 1
