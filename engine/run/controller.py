"""The search loop: pick an island, select parents, propose, patch, dedupe, evaluate, record, update islands.

A steady-state asyncio loop: as many candidates are in flight as the concurrency policy says (fixed, or adapted
to the model's latency and the evaluation time); proposing (LLM I/O) happens here and evaluation goes to the
executor. Every random choice for prompt i comes from a Generator seeded by (seed, i), so with one candidate in
flight the same seed gives the same run, and a resumed run continues exactly where it stopped. A prompt may bring
back several answers (`answers`): each is a candidate of its own, counted against the budget, and they are
patched, evaluated and recorded one after another in the order the proposer gave them, so a seed still fixes the
run. The controller is the only writer of the database; candidates that finish together are recorded in one
transaction (see recorder).
Nothing per candidate grows with the run: parents come from a bounded cache, duplicates are found in memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import shlex
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from evoforge.db import (
    EventInfo,
    NewCandidate,
    NewJudgement,
    NewProgram,
    NewProposal,
    ProgramInfo,
    ProgramSummary,
    RecordedCandidate,
    Store,
)
from evoforge.engine.analysis.queries import ACCEPT_EVENT, FEWER_ANSWERS_EVENT, HUMAN_EVENT, REJECT_EVENT
from evoforge.engine.program.patching import PatchError, apply_response
from evoforge.engine.program.source import code_hash
from evoforge.engine.propose.improvements import Improvement, ImprovementLog, changed_lines
from evoforge.engine.propose.judge import JUDGE_METRIC, Judge, Review
from evoforge.engine.propose.offline.walk import CHILD_SCORE
from evoforge.engine.propose.prompts import ParentView
from evoforge.engine.propose.proposers import Proposal, Proposer
from evoforge.engine.run.concurrency import AdaptiveConcurrency, FixedConcurrency, InFlightMeter
from evoforge.engine.run.config import Limits
from evoforge.engine.run.errors import SeedFailed
from evoforge.engine.run.executor import Executor
from evoforge.engine.run.feedback import UNAPPLIED, Feedback
from evoforge.engine.run.recorder import BatchRecorder
from evoforge.engine.run.records import evaluation_record
from evoforge.engine.run.spending import CallSizes, prompt_material
from evoforge.engine.run.stats import RunStats
from evoforge.engine.run.steering import Steering, steer_forever
from evoforge.evaluators import Evaluation, Problem
from evoforge.islands import IslandModel, ResetPlan
from evoforge.islands.map_elites import MapElitesArchive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRef:
    """The database identity of the run being driven."""

    id: int
    name: str
    seed: int


# What a seed that ran out of a limit needs, besides working code: the setting that sets the limit.
_LIMIT_OF = {"timeout": "time_limit_s", "memory": "memory_limit_mb"}


def _seed_fix(problem: Problem, status: str) -> str:
    """How to fix a failing seed, with the `eval` command that shows it as the run saw it (its --set values)."""
    sets = "".join(f" --set {shlex.quote(f'{k}={v}')}" for k, v in problem.overrides.items())
    look = f"try `evoforge eval {shlex.quote(str(problem.path))}{sets}` to see the details"
    limit = _LIMIT_OF.get(status)
    if limit is not None:
        return (f"make the seed's solve() lighter, or raise the limit (Settings({limit}=...) in the problem file, "
                f"or --set {limit}=...); {look}")
    return f"make the @evolve seed, solve() and score() work together; {look}"


def _proposal_record(p: Proposal, island: int, parent_ids: list[int], error: str | None = None, *,
                     improved: bool = False) -> NewProposal:
    return NewProposal(island=island, parent_ids=parent_ids, model=p.model, prompt=p.prompt, response=p.text,
                       prompt_tokens=p.prompt_tokens, completion_tokens=p.completion_tokens, cost=p.cost,
                       latency_s=p.latency_s, error=error, attempts=p.attempts,
                       details={**p.details, "improved": improved})


def _scored(proposal: Proposal, score: float) -> Proposal:
    """The proposal noted with its valid child's trusted score, for the offline proposer's walk
    (`engine/propose/offline/walk.py`); the note is stored, so a resumed run walks the same."""
    return dataclasses.replace(proposal, details={**proposal.details, CHILD_SCORE: score})


def _mate_of(proposal: Proposal) -> int | None:
    """The second parent of a crossover proposal (the controller notes it in the details), or None."""
    mate = proposal.details.get("crossover")
    return None if mate is None else int(mate)


def draw_mate(islands: IslandModel, island: int, parent: int, share: float, rng: np.random.Generator) -> int | None:
    """In a `share` of the prompts, a crossover's second parent for `parent` (IslandModel.select_mate); None for the
    others. Draws nothing when the share is 0, so a run without crossover keeps its random stream."""
    if share <= 0 or rng.random() >= share:
        return None
    return islands.select_mate(island, parent, rng)


MAP_SHARE = 0.5
"""With a MAP-Elites archive: the share of prompts whose parents are archive elites (the rest use the islands).
As parents rather than inspirations, since MAP-Elites' gain comes from improving the elite of a sparse niche, which
an inspiration beside the island's parents never is; half keeps the islands' exploitation for the other prompts."""
PARENT_CACHE = 4096  # programs kept for prompts; selection favours few, so most parents come from here


def _hash_key(digest: str) -> int:
    """A 64-bit key for the in-memory dedupe index (a hit is confirmed in the database, so a collision is harmless)."""
    return int(digest[:16], 16)


@dataclass(frozen=True)
class Parent:
    """What a prompt, a patch and a review read of a parent program (its stored values)."""

    id: int
    code: str
    score: float | None
    status: str
    error: str | None
    metrics: Mapping[str, float]
    feedback: str | None

    @classmethod
    def of(cls, p: ProgramInfo) -> Parent:
        return cls(p.id, p.code, p.score, p.status, p.error, p.metrics, p.feedback)


class _ParentCache:
    """The programs last used as parents or last registered, so a prompt reads the database only for a parent it
    has not seen (a new program often becomes a parent at once: reading it back cost ~1 ms per candidate)."""

    def __init__(self, store: Store, capacity: int = PARENT_CACHE) -> None:
        self._store = store
        self._capacity = capacity
        self._programs: OrderedDict[int, Parent] = OrderedDict()

    def get(self, ids: list[int]) -> list[Parent]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._programs]
        for program in self._store.get_programs(missing) if missing else ():
            self._programs[program.id] = Parent.of(program)
        for i in ids:
            self._programs.move_to_end(i)
        self._evict()
        return [self._programs[i] for i in ids]

    def remember(self, parent: Parent) -> None:
        """A program just recorded, with the values it was recorded with; only finite numbers, which the database
        gives back unchanged, so a prompt reads the same whether its parent came from here or from there."""
        numbers = [parent.score, *parent.metrics.values()]
        if all(x is None or math.isfinite(x) for x in numbers):
            self._programs[parent.id] = parent
            self._evict()

    def _evict(self) -> None:
        while len(self._programs) > self._capacity:
            self._programs.popitem(last=False)


def _without_founders(plan: ResetPlan, rejected: set[int]) -> ResetPlan:
    """The reset without the islands a rejected program would found: those islands keep what they had."""
    kept = [step for step in zip(plan.islands, plan.founders, plan.source_islands) if step[1] not in rejected]
    return ResetPlan(*(tuple(column) for column in zip(*kept))) if kept else ResetPlan((), (), ())


class Controller:
    """Drives one run to its budget; collaborators are passed in so each can be tested and swapped alone."""

    def __init__(self, *, problem: Problem, store: Store, run: RunRef, islands: IslandModel, proposer: Proposer,
                 executor: Executor, stats: RunStats, concurrency: int | FixedConcurrency | AdaptiveConcurrency = 1,
                 limits: Limits | None = None, reject_same_behaviour: bool = False,
                 duplicates_as_parents: bool = False, inspirations: int = 0, judge: Judge | None = None,
                 map_elites: MapElitesArchive | None = None, crossover: float = 0.0, meta_summary: int = 0,
                 answers: int = 1,
                 on_progress: Callable[[RunStats], None] | None = None) -> None:
        self.problem = problem
        self.store = store
        self.run = run
        self.islands = islands
        self.proposer = proposer
        self.executor = executor
        self.stats = stats
        self.concurrency = FixedConcurrency(concurrency) if isinstance(concurrency, int) else concurrency
        self.limits = limits or Limits()
        self.calls_in_flight = InFlightMeter()  # proposals (LLM calls) waiting on the proposer; `show` says
        self._proposing = 0  # candidates whose proposal has not come back: each may still become a call
        self._sizes = CallSizes()  # what calls spent: what a call in flight may still spend (see spending.py)
        self._admitted: dict[int, tuple[int, float]] = {}  # prompt -> its call's estimate, while the call is out
        self._call_back = asyncio.Event()  # set (and replaced) whenever a call in flight comes back
        self._recorder = BatchRecorder(store, run.id, after_batch=self._maybe_reset)
        self._parents = _ParentCache(store)
        self._hashes: dict[int, int] = {}  # normalised-code hash (64 bits) -> first program with it
        # Why recent candidates from each island failed: shown in the island's next prompts as feedback.
        self._feedback = Feedback()
        self._on_progress = on_progress or (lambda _stats: None)
        self._in_flight_hashes: dict[str, asyncio.Future[int | None]] = {}
        # Behaviour digest (outputs on the first inputs) -> the first valid program that showed it.
        self._behaviours: dict[str, int] = {}
        self.reject_same_behaviour = reject_same_behaviour
        # A behavioural duplicate joins its island with its twin's score, at no further evaluation cost, so a
        # search can drift across variants that behave alike (see RunConfig.same_behaviour).
        self.duplicates_as_parents = duplicates_as_parents
        # Program -> the behavioural twins registered with its score; a person's rejection takes them out too.
        self._twins: dict[int, list[int]] = defaultdict(list)
        self._withdrawn: set[int] = set()  # rejected while the run went on: no twin joins with their score
        self.inspirations = inspirations  # other islands' best programs shown in each prompt
        # The reviewer model: it judges each program that beats its island's best. Its critiques go into the
        # prompts of the program's children; a program it finds gaming the score is held, like one past the bound.
        self.judge = judge
        self._judging = 0  # reviews whose call has not come back: the limits count them as calls in flight
        self._critiques: dict[int, str] = {}
        self._gaming: set[int] = set()
        # Valid, selectable programs by behaviour descriptors (None: off); updated wherever the islands register.
        self.map_elites = map_elites
        self.crossover = crossover  # the share of prompts that combine the parent with a mate from elsewhere
        # The last `meta_summary` children that beat their parent, shown in every prompt (None: off).
        self.improvements = ImprovementLog(meta_summary) if meta_summary else None
        self.answers = answers  # asked per prompt; the last prompt asks only for what the budget has left
        self._prompts = 0  # prompts started: prompt i draws from the Generator (seed, i) and asks island i mod K
        self._fewer_answers: set[str] = set()  # models that gave fewer answers than asked (said once each)

    # ----------------------------------------------------------------- seed and history

    async def evaluate_seed(self) -> int:
        """Evaluate the problem's seed, record it, and found every island with it."""
        code = self.problem.seed_code
        start = time.perf_counter()
        ev = await self.executor.evaluate(code)
        self.stats.add_time("evaluate", time.perf_counter() - start)
        if ev.status != "ok" or ev.score is None:
            raise SeedFailed(f"{self.problem.path}: the seed program's evaluation is '{ev.status}': {ev.error}\n"
                             f"  fix: {_seed_fix(self.problem, ev.status)}")
        past = self.problem.seed_bound_warning(ev.score)
        if past is not None:  # not fatal (the bound may be the mistake), but every improvement would be held
            log.warning("%s", past)
        if self.problem.settings.numba is True and ev.compiled is False:  # the whole run would be slow, unsaid
            why = " ".join(line.removeprefix("[evoforge] ") for line in ev.stdout.splitlines()
                           if line.startswith("[evoforge] numba"))
            log.warning("%s: numba=True, but the seed program ran as Python%s; every candidate that keeps what "
                        "numba refuses will too, each call through a pipe; fix the seed so that it compiles",
                        self.problem.path, f" ({why})" if why else "")
        held = await self._held_out(code)
        program = NewProgram(island=0, parent_ids=[], origin="seed", code=code, code_hash=code_hash(code),
                             status="ok", score=ev.score, scores=dict(ev.scores), error=None,
                             behaviour=ev.behaviour, metrics=dict(ev.metrics), feedback=ev.feedback)
        evaluations = [evaluation_record(ev, "train")]
        if held is not None:
            evaluations.append(evaluation_record(held, "held_out"))
        recorded = self.store.record_candidate(self.run.id, proposal=None, program=program, evaluations=evaluations)
        assert recorded.program_id is not None  # a program was recorded
        self._hashes.setdefault(_hash_key(program.code_hash), recorded.program_id)
        self._register_seed(recorded.program_id, ev.score, ev.scores, len(code))
        self._enter_archive(recorded.program_id, ev.score, len(code), ev.metrics, seed=True)
        self._note_best(recorded.program_id, ev.score)
        self._remember_behaviour(ev.behaviour, recorded.program_id)
        return recorded.program_id

    def _enter_archive(self, program_id: int, score: float, code_length: int, metrics: Mapping[str, float], *,
                       seed: bool = False) -> None:
        """Put a selectable program in the MAP-Elites archive; the seed must have every descriptor, or the run
        stops with the metrics it does have (a later program without one just stays out)."""
        archive = self.map_elites
        if archive is None:
            return
        if not archive.register(program_id, score, code_length, metrics) and seed:
            known = ", ".join(["code_length", *sorted(metrics)])
            raise SeedFailed(f"--map-elites {','.join(archive.descriptors)}: the seed program has no finite value "
                             f"for every descriptor; the descriptors available are: {known}")

    def _remember_behaviour(self, behaviour: str | None, program_id: int) -> None:
        if behaviour is not None:
            self._behaviours.setdefault(behaviour, program_id)

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
        history = self.store.history(self.run.id)
        # A program a person rejected stays out of selection, also where a reset copied it as a founder.
        rejected = {item.id for item in history if isinstance(item, ProgramSummary) and item.rejected}
        accepted = {int(e.data["program"]) for e in self.store.events(self.run.id, ACCEPT_EVENT)}
        for judgement in self.store.judgements(self.run.id):
            self._note_judgement(judgement.program_id, judgement.gaming, judgement.critique)
        self._restore_improvements(history, rejected)
        self._feedback.restore(self.store.proposal_outcomes(self.run.id), self._held_why)
        for item in history:
            if isinstance(item, EventInfo):
                if item.kind == "reset":
                    self.islands.apply_reset(_without_founders(ResetPlan.from_dict(item.data), rejected))
                continue
            self.islands.note_offspring(item.parent_ids)
            if item.origin in ("seed", "human"):
                unproposed += 1
            elif item.status != "duplicate":  # the valid rate continues where it was
                self.stats.evaluated += 1
                self.stats.valid += item.status == "ok" and item.score is not None
            if item.status == "ok" and item.score is not None and not item.rejected:
                if self._held(item.id, item.score, item.origin) and item.id not in accepted:
                    continue  # held for a person: `evoforge accept` or `reject`
                if item.origin == "seed":
                    self._register_seed(item.id, item.score, item.scores, item.code_length)
                else:
                    self.islands.register(item.id, item.island, self._signature(item.scores), item.score,
                                          item.code_length)
                self._enter_archive(item.id, item.score, item.code_length, item.metrics, seed=item.origin == "seed")
                self._note_best(item.id, item.score)
                self._remember_behaviour(item.behaviour, item.id)
                found = True
            elif item.status == "duplicate" and not item.rejected:
                self._register_twin(item.id, item.island, item.behaviour, item.code_length)
        self.stats.attempts = self.stats.done = self.stats.done_before = self.store.attempts(self.run.id) - unproposed
        self._prompts = self.store.prompts(self.run.id)
        spend = self.store.llm_spend(self.run.id)
        self.stats.calls, self.stats.tokens, self.stats.cost = spend.calls, spend.tokens, spend.cost
        self.stats.offline = spend.offline
        for digest, program_id in self.store.code_hashes(self.run.id):
            self._hashes.setdefault(_hash_key(digest), program_id)
        return found

    def _restore_improvements(self, history: list[EventInfo | ProgramSummary], rejected: set[int]) -> None:
        """Rebuild the improvement log as the run built it: every valid proposed program that beat its parent and
        was not held for a person, in the order recorded, the last ones kept; those rejected since are hidden."""
        log = self.improvements
        if log is None:
            return
        scores: dict[int, float] = {}
        steps: deque[tuple[int, int, float, float]] = deque(maxlen=log.size)
        for item in history:
            if not isinstance(item, ProgramSummary) or item.status != "ok" or item.score is None:
                continue
            before = scores.get(item.parent_ids[-1]) if item.parent_ids else None
            proposed = item.origin not in ("seed", "human")
            if (before is not None and proposed and not self._held(item.id, item.score, item.origin)
                    and self.problem.is_better(item.score, before)):
                steps.append((item.id, item.parent_ids[-1], before, item.score))
            scores[item.id] = item.score
        codes = {p.id: p.code for p in self.store.get_programs(sorted({i for s in steps for i in s[:2]}))}
        for child, parent, before, after in steps:
            log.add(Improvement(child, parent, before, after, changed_lines(codes[parent], codes[child])))
        for program_id in rejected:
            log.hide(program_id)

    def apply_action(self, kind: str, program_id: int) -> None:
        """Apply a person's action taken while the run goes on: a rejected program leaves selection at once, a
        valid human program joins its island. Idempotent, so an action seen twice changes nothing."""
        if kind == REJECT_EVENT:
            # Its twins never earned its score themselves (they joined with it): they leave with it, as a
            # resume, which registers no twin of a rejected program, would have it.
            gone = [program_id, *self._twins.pop(program_id, [])]
            self._withdrawn.update(gone)
            for pid in gone:
                if self.map_elites is not None:
                    self.map_elites.withdraw(pid)
                if self.improvements is not None:
                    self.improvements.hide(pid)
                for island in self.islands.withdraw(pid):
                    self.islands.refound(island, self._seed_id())
            if self.stats.best_program_id in gone:
                best = self.islands.best()
                self.stats.best_program_id, self.stats.best_score = best if best else (None, None)
        elif kind in (HUMAN_EVENT, ACCEPT_EVENT) and not self.islands.is_registered(program_id):
            p = self.store.get_program(program_id)
            if p.status != "duplicate":  # later candidates with its code are its duplicates
                self._hashes.setdefault(_hash_key(p.code_hash), p.id)
            if (p.status == "ok" and p.score is not None and p.rejected_at is None
                    and (kind == ACCEPT_EVENT or not self._held(p.id, p.score, p.origin))):
                self.islands.register(p.id, p.island, self._signature(p.scores), p.score, p.code_length)
                self._enter_archive(p.id, p.score, p.code_length, p.metrics)
                self._note_best(p.id, p.score)

    def _suspect(self, score: float, origin: str) -> bool:
        """Past the problem's bound: not a parent until a person accepts it (the seed is the starting point)."""
        return origin != "seed" and self.problem.settings.beyond_bound(score)

    def _held(self, program_id: int, score: float, origin: str) -> bool:
        """SUSPECT: past the bound, or judged to game the score; out of selection until a person accepts it."""
        return self._suspect(score, origin) or program_id in self._gaming

    def _held_why(self, program_id: int, score: float, origin: str) -> str | None:
        """Why a valid program was held for a person when it was recorded ("gaming" or "bound"), or None."""
        return "gaming" if program_id in self._gaming else "bound" if self._suspect(score, origin) else None

    def _note_judgement(self, program_id: int, gaming: bool | None, critique: str | None) -> None:
        if gaming:
            self._gaming.add(program_id)
        if critique:
            self._critiques[program_id] = critique

    def _seed_id(self) -> int:
        return self.store.program_briefs(self.run.id, origin="seed")[0].id

    def _register_twin(self, program_id: int, island: int, behaviour: str | None, length: int) -> None:
        """Register a behavioural duplicate with its twin's signature and score (duplicates_as_parents only)."""
        if not self.duplicates_as_parents or behaviour is None:
            return  # a copy of an earlier program's code has no behaviour of its own: it never joins
        twin = self._behaviours.get(behaviour)
        if twin is None or twin in self._withdrawn:
            return
        entry = self.islands.entry(twin)
        if entry is not None:  # a twin a person rejected is not registered, so neither is its copy
            self.islands.register(program_id, island, entry[0], entry[1], length)
            self._twins[twin].append(program_id)

    def _note_best(self, program_id: int, score: float) -> bool:
        if self.problem.is_better(score, self.stats.best_score):
            self.stats.best_score = score
            self.stats.best_program_id = program_id
            return True
        return False

    # ----------------------------------------------------------------- the loop

    async def run_to_budget(self) -> RunStats:
        """Propose and evaluate candidates until the budget is spent; cancellation keeps what was recorded.

        At the wall-time limit the candidates still in flight are given up (none of them is recorded, so the budget
        they held stays unspent), so `--max-time` holds however many calls are waiting on a slow model.
        """
        pending: set[asyncio.Task[int]] = set()
        steer = asyncio.create_task(steer_forever(Steering(self.store, self.run.id), self.apply_action))
        attempts_before = self.stats.attempts
        try:
            while self._may_start() or pending:
                while self._may_start() and len(pending) < self.concurrency.limit():
                    asked = min(self.answers, self.stats.budget - self.stats.attempts)  # never past the budget
                    self.stats.attempts += asked  # held until the answers are back: fewer give the rest back
                    self._proposing += 1  # from now on it may become a call: the limits count it at once
                    pending.add(asyncio.create_task(self._one_prompt(self._prompts, asked)))
                    self._prompts += 1
                done, pending = await asyncio.wait(pending, timeout=self._time_left(),
                                                   return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self.stats.done += task.result()  # an engine bug must surface, not vanish in a task
                self._on_progress(self.stats)
                if pending and self._out_of_time():
                    self._give_up(pending)
                    break
        finally:
            steer.cancel()
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            try:
                await self._recorder.drain()
            finally:
                self._recorder.close()
            # What was recorded is what was attempted: candidates given up at the time limit never were.
            self.stats.attempts = attempts_before + self._recorder.recorded
            self.store.record_event(self.run.id, "in_flight", {
                "average": round(self.calls_in_flight.average(), 3), "peak": self.calls_in_flight.peak,
                "seconds": round(self.calls_in_flight.seconds(), 3), "batches": self._recorder.batches,
                "recorded": self._recorder.recorded})
        return self.stats

    def _time_left(self) -> float | None:
        if self.limits.max_wall_s is None:
            return None
        return max(0.0, self.limits.max_wall_s - self.stats.elapsed)

    def _out_of_time(self) -> bool:
        return self.limits.max_wall_s is not None and self.stats.elapsed >= self.limits.max_wall_s

    def _give_up(self, pending: set[asyncio.Task[int]]) -> None:
        for task in pending:
            task.cancel()  # never recorded: a resume makes these attempts again
        self._stop("wall time limit reached")

    def _stop(self, reason: str, *, by_failure: bool = False) -> None:
        """Note why the run stops (the first reason wins) in its stats and as a "stop" event."""
        if self.stats.stop_reason is not None:
            return
        self.stats.stop_reason, self.stats.stopped_by_failure = reason, by_failure
        self.store.record_event(self.run.id, "stop", {"reason": reason, "attempts": self.stats.attempts})

    def _may_start(self) -> bool:
        """Whether another candidate may start: budget left and no spending limit reached (which is noted).

        Calls still in flight count as made (calls) and, for tokens and cost, as their estimate (see _admit), so a
        limit holds with hundreds in flight just as with one at a time.
        """
        if self.stats.attempts >= self.stats.budget or self.stats.stop_reason is not None:
            return False
        hopeless = getattr(self.proposer, "stop_reason", lambda: None)()  # custom proposers may not say
        if hopeless is not None:
            self._stop(hopeless, by_failure=True)
            return False
        stats, waiting = self.stats, self._proposing + self._judging
        reached = self._limits_reached(waiting)
        if reached and waiting:
            return False  # the calls in flight may leave room: decide when they are back
        if reached:
            self._stop(f"{reached[0]} limit reached")
            return False
        # Nothing measured yet bounds what a call in flight will spend: under a token or cost limit, one at a time.
        # (_admit holds this too; checking here as well keeps later prompts from being built, their parents drawn,
        # before the first call has said what a call costs.)
        return not (waiting and self._limits_spending and stats.calls == 0)

    @property
    def _limits_spending(self) -> bool:
        """Whether a token or cost limit holds, so calls in flight need estimates (spending.py)."""
        return self.limits.max_tokens is not None or self.limits.max_cost is not None

    def _limits_reached(self, waiting: int, unknown: int | None = None) -> list[str]:
        """The limits reached, counting `waiting` calls in flight as made; for tokens and cost an admitted call
        counts as its estimate and the `unknown` others (by default all not admitted) as large as the largest call
        so far."""
        limits, stats = self.limits, self.stats
        most_tokens, most_cost = self._sizes.largest()
        unknown = waiting - len(self._admitted) if unknown is None else unknown
        tokens = stats.tokens + sum(t for t, _ in self._admitted.values()) + unknown * most_tokens
        cost = stats.cost + sum(c for _, c in self._admitted.values()) + unknown * most_cost
        return [what for what, value, limit in (
            ("calls", stats.calls + waiting, limits.max_calls),
            ("tokens", tokens, limits.max_tokens),
            ("cost", cost, limits.max_cost),
            ("wall time", stats.elapsed, limits.max_wall_s),
        ) if limit is not None and value >= limit]

    async def _admit(self, prompt: int, material: int) -> bool:
        """Whether prompt `prompt`'s call may go out, waiting while it may not yet (False: a limit is reached).

        Under a token or cost limit a call goes out, as with one call at a time, while what was spent is under the
        limit, the calls in flight counted as their estimates (spending.py: grown with what their prompts show);
        it then counts as its own estimate. While the calls in flight leave no room it waits for them to come
        back; when nothing is in flight and the limit is reached, the run stops. Nothing measured bounds a call
        before the first one came back, so until then they go out one at a time.
        """
        if not self._limits_spending:
            return True
        while True:
            others = len(self._admitted) + self._judging
            if not (others and self.stats.calls == 0):
                reached = [what for what in self._limits_reached(others, unknown=self._judging)
                           if what in ("tokens", "cost")]
                if not reached:
                    self._admitted[prompt] = self._sizes.estimate(material)
                    return True
                if not others:
                    self._stop(f"{reached[0]} limit reached")
                    return False
            await self._call_back.wait()

    def _came_back(self, prompt: int | None = None) -> None:
        """A call in flight came back: its estimate is released and the calls waiting to go out look again."""
        if prompt is not None:
            self._admitted.pop(prompt, None)
        self._call_back.set()
        self._call_back = asyncio.Event()

    async def _one_prompt(self, prompt: int, asked: int) -> int:
        """Propose `asked` answers to one prompt and take each through to its record; returns how many came."""
        try:
            rng = np.random.default_rng([self.run.seed, prompt])
            island = prompt % self.islands.config.num_islands
            parent_ids = self._select_parents(island, rng)
            mate = draw_mate(self.islands, island, parent_ids[-1], self.crossover, rng)
            if mate is not None:  # a crossover shows the parent and its mate alone; the mate is listed first
                parent_ids = [mate, parent_ids[-1]]
            parents = self._parents.get(parent_ids)
            views = [self._parent_view(p) for p in parents]
            extra: dict[str, Any] = {}
            if self.inspirations:
                extra["inspirations"] = self._inspirations(island, parent_ids)
            if mate is not None:
                extra["mate"], views = views[0], views[1:]
            if self.improvements is not None:
                extra["improvements"] = self.improvements.recent()
            shown = [*views, *extra.get("inspirations", ()), *([extra["mate"]] if mate is not None else [])]
            # Only a token or cost limit needs the prompt's size (spending.py); without one it is not measured.
            material = (prompt_material(shown, self._feedback.of(island), extra.get("improvements", ()))
                        if self._limits_spending else 0)
            if not await self._admit(prompt, material):
                self.stats.attempts -= asked  # never asked: its budget stays unspent, as at the time limit
                return 0
            start = time.perf_counter()
            self.calls_in_flight.change(+1)
            try:
                proposals = await self.proposer.propose(views, rng, feedback=tuple(self._feedback.of(island)),
                                                        answers=asked, **extra)
            finally:
                self.calls_in_flight.change(-1)
            if mate is not None:
                proposals = [dataclasses.replace(p, details={**p.details, "crossover": mate}) for p in proposals]
        finally:
            self._proposing -= 1
            self._came_back(prompt)
        if not proposals:
            raise TypeError(f"{type(self.proposer).__name__}.propose returned no proposal; a failure is one "
                            "Proposal with error set")
        proposals = proposals[:asked]  # a proposer that gives more than asked must not overshoot the budget
        self.stats.attempts -= asked - len(proposals)
        seconds = time.perf_counter() - start
        self.stats.add_time("propose", seconds)
        if proposals[0].model != "offline":  # calls in flight follow the model's latency, not the mutator's
            self.concurrency.observe_proposal(seconds, len(proposals))
        self._count_spend(proposals, material)
        self._note_fewer(proposals, asked)
        for index, proposal in enumerate(proposals):  # one after another: the order is the proposer's, not timing's
            answer_rng = rng if index == 0 else np.random.default_rng([self.run.seed, prompt, index])
            await self._one_candidate(proposal, island, parents, answer_rng)
        return len(proposals)

    def _note_fewer(self, proposals: list[Proposal], asked: int) -> None:
        """Say once per model, in the log and the run's events, that it gives fewer answers than asked (not of the
        offline proposer, which gives fewer only when the program offers no more mutations)."""
        first = proposals[0]
        if (len(proposals) >= asked or first.error is not None or first.model in self._fewer_answers
                or self._origin(first) == "offline"):
            return
        self._fewer_answers.add(first.model)
        data = {"model": first.model, "asked": asked, "got": len(proposals)}
        self.store.record_event(self.run.id, FEWER_ANSWERS_EVENT, data)
        log.warning("model %s gave %d of the %d answers asked per prompt (a provider that takes no `n` gives one); "
                    "the run goes on with the answers that come back", first.model, len(proposals), asked)

    async def _one_candidate(self, proposal: Proposal, island: int, parents: list[Parent],
                             rng: np.random.Generator) -> None:
        """Patch, dedupe, evaluate and record one answer (or record why it gave no program)."""
        parent_ids = [p.id for p in parents]
        if proposal.error is not None:
            await self._record_failed(proposal, island, parent_ids, f"proposer failed: {proposal.error}")
            if not proposal.details.get("llm_error"):
                self.proposer.observe(proposal, False, rng)
            return

        start = time.perf_counter()
        try:
            code = apply_response(proposal.text, parents[-1].code, self.problem.evolved_names,
                                  self.problem.project)
        except PatchError as exc:
            self.stats.add_time("patch", time.perf_counter() - start)
            await self._record_failed(proposal, island, parent_ids, f"{UNAPPLIED}{exc}")
            self._feedback.unapplied(island, str(exc))
            self.proposer.observe(proposal, False, rng)
            return
        self.stats.add_time("patch", time.perf_counter() - start)

        digest = code_hash(code)
        original = await self._find_original(digest)
        if original is not None:
            await self._record_duplicate(proposal, island, parent_ids, code, digest, original)
            self.proposer.observe(proposal, False, rng)
            return
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._in_flight_hashes[digest] = future
        program_id: int | None = None
        try:
            program_id, improved, proposal = await self._evaluate_and_record(proposal, island, parents, code,
                                                                             digest)
            self.proposer.observe(proposal, improved, rng)
        finally:
            future.set_result(program_id)
            del self._in_flight_hashes[digest]

    def _select_parents(self, island: int, rng: np.random.Generator) -> list[int]:
        """The island's parents, or with a MAP-Elites archive in MAP_SHARE of the prompts its elites (drawn only
        when the archive is on, so a run without one keeps its random stream)."""
        if self.map_elites is not None and len(self.map_elites) and rng.random() < MAP_SHARE:
            return self.map_elites.select(self.islands.config.parents_per_prompt, rng)
        return self.islands.select_parents(island, rng)

    def _inspirations(self, island: int, parent_ids: list[int]) -> list[ParentView]:
        """The best programs of the other islands (best first), not among the parents: ideas from elsewhere."""
        chosen = self.islands.bests_elsewhere(island, lambda pid: pid not in parent_ids)[: self.inspirations]
        return [self._parent_view(p, brief=True) for p in self.store.get_programs(chosen)]

    def _parent_view(self, program: ProgramInfo | Parent, brief: bool = False) -> ParentView:
        """What a prompt shows of a program. A behavioural duplicate kept as a parent is shown with the score it
        selects with (its twin's, on the inputs compared), never as a failure: the model would read a working
        program as a broken one."""
        score, status = program.score, program.status
        if status == "duplicate" and (entry := self.islands.entry(program.id)) is not None:
            score, status = entry[1], "ok"
        if brief:
            return ParentView(code=program.code, score=score, status=status)
        return ParentView(code=program.code, score=score, status=status, error=program.error,
                          metrics=program.metrics, feedback=program.feedback,
                          critique=self._critiques.get(program.id))

    def _count_spend(self, proposals: list[Proposal], material: int) -> None:
        """The spend of one prompt's answers: one call (if a model was called), with every answer's tokens;
        `material`: what its prompt showed (spending.prompt_material), for the estimates of later calls."""
        self.stats.cost += sum(p.cost for p in proposals)
        first = proposals[0]
        if first.model == "offline":
            self.stats.offline += len(proposals)
        if first.is_call:
            tokens = sum(p.prompt_tokens + p.completion_tokens for p in proposals)
            cost = sum(p.cost for p in proposals)
            self._count_call(tokens, cost, first.attempts, first.error is not None)
            self._sizes.observe(tokens, cost, material)

    def _count_call(self, tokens: int, cost: float, attempts: int, failed: bool) -> None:
        self.stats.calls += 1
        self.stats.tokens += tokens
        self.stats.retries += max(0, attempts - 1)
        self.stats.failed_calls += failed

    async def _review(self, island: int, parent: Parent, code: str, ev: Evaluation) -> NewJudgement | None:
        """The reviewer's judgement of a valid candidate that beats its island's best (None: not one, or no
        reviewer). A spending limit already reached skips the call, with the reason recorded."""
        best = self.islands.best(island)
        if (self.judge is None or ev.status != "ok" or ev.score is None
                or (best is not None and not self.problem.is_better(ev.score, best[1]))):
            return None
        review = Review(description=self.problem.description, criteria=self.problem.settings.judge_criteria,
                        code=code, parent_code=parent.code, score=ev.score, parent_score=parent.score,
                        maximize=self.problem.settings.maximize, metrics=dict(ev.metrics), feedback=ev.feedback)
        reached = self._limits_reached(self._proposing + self._judging)
        if reached:
            return self.judge.skipped(review, f"the {reached[0]} limit is reached")
        self._judging += 1
        start = time.perf_counter()
        try:
            judgement = await self.judge.judge(review)
        finally:
            self._judging -= 1
            self._came_back()
        self.stats.add_time("judge", time.perf_counter() - start)
        self.stats.cost += judgement.cost
        if judgement.attempts > 0:  # a replayed answer made no call
            tokens = judgement.prompt_tokens + judgement.completion_tokens
            self._count_call(tokens, judgement.cost, judgement.attempts, bool(judgement.details.get("call_error")))
            self._sizes.observe(tokens, judgement.cost, len(code) + len(parent.code))
        return judgement

    async def _find_original(self, digest: str) -> int | None:
        waiting = self._in_flight_hashes.get(digest)
        if waiting is not None:
            return await asyncio.shield(waiting)
        if _hash_key(digest) not in self._hashes:
            return None
        return self.store.find_by_hash(self.run.id, digest)  # a 64-bit match: the database has the whole hash

    async def _evaluate_and_record(self, proposal: Proposal, island: int, parents: list[Parent], code: str,
                                   digest: str) -> tuple[int, bool, Proposal]:
        """Evaluate a new program, record it, and return its id, whether it beat its best parent, and the proposal
        as recorded (noted with its valid child's score)."""
        parent_ids = [p.id for p in parents]
        start = time.perf_counter()
        probe = self._behaviours.get if self.reject_same_behaviour else None
        ev = await self.executor.evaluate(code, probe=probe)
        seconds = time.perf_counter() - start
        self.stats.add_time("evaluate", seconds)
        self.concurrency.observe_evaluation(seconds)
        for part in ("sandbox_start", "compile", "solve", "score"):
            self.stats.add_time(part, ev.timings.get(part, 0.0))
        original = ev.duplicate_of if ev.status == "duplicate" else None
        if probe is not None and ev.status == "ok" and ev.behaviour is not None:
            original = probe(ev.behaviour)  # an executor that could not probe early (Ray): compare afterwards
        if original is not None:
            def twin(ids: RecordedCandidate) -> None:
                assert ids.program_id is not None  # a program was recorded
                self._register_twin(ids.program_id, island, ev.behaviour, len(code))

            await self._record_duplicate(proposal, island, parent_ids, code, digest, original,
                                         behaviour=ev.behaviour, after=twin)
            self.stats.behaviour_duplicates += 1
            return original, False, proposal
        held = None
        if ev.status == "ok" and ev.score is not None and self.problem.is_better(ev.score, self.stats.best_score):
            held = await self._held_out(code)
        judgement = await self._review(island, parents[-1], code, ev)
        metrics = dict(ev.metrics)
        if judgement is not None and judgement.grade is not None:
            metrics[JUDGE_METRIC] = judgement.grade
        gaming = judgement is not None and bool(judgement.gaming)
        program = NewProgram(island=island, parent_ids=parent_ids, origin=self._origin(proposal), code=code,
                             code_hash=digest, status=ev.status, score=ev.score,
                             scores=dict(ev.scores), error=ev.error, behaviour=ev.behaviour,
                             metrics=metrics, feedback=ev.feedback, mate_id=_mate_of(proposal))
        evaluations = [evaluation_record(ev, "train", {"propose": proposal.latency_s})]
        if held is not None:
            evaluations.append(evaluation_record(held, "held_out"))
        best_parent = parents[-1].score
        improved = (ev.status == "ok" and ev.score is not None and best_parent is not None and not gaming
                    and self.problem.is_better(ev.score, best_parent))
        if ev.status == "ok" and ev.score is not None and not gaming and not self._suspect(ev.score, program.origin):
            proposal = _scored(proposal, ev.score)  # what selection may use, so the walk may too

        def registered(recorded: RecordedCandidate) -> None:
            """At the commit, in seq order with the rest of its batch: the program joins the run's state."""
            assert recorded.program_id is not None
            self._hashes.setdefault(_hash_key(digest), recorded.program_id)
            self.islands.note_offspring(parent_ids)
            self.stats.evaluated += 1
            if judgement is not None:
                self._note_judgement(recorded.program_id, judgement.gaming, judgement.critique)
            if ev.status == "ok" and ev.score is not None and gaming:
                self.stats.valid += 1  # held for a person, out of selection: listings mark it SUSPECT
                self._feedback.held(island, ev.score, gaming=True)
            elif ev.status == "ok" and ev.score is not None and self._suspect(ev.score, program.origin):
                self.stats.valid += 1  # held for a person, out of selection: listings mark it SUSPECT
                self._feedback.held(island, ev.score, gaming=False)
            elif ev.status == "ok" and ev.score is not None:
                self.stats.valid += 1
                self.islands.register(recorded.program_id, island, self._signature(ev.scores), ev.score, len(code))
                self._parents.remember(Parent(recorded.program_id, code, ev.score, ev.status, ev.error, metrics,
                                              ev.feedback))
                self._enter_archive(recorded.program_id, ev.score, len(code), metrics)
                self._note_best(recorded.program_id, ev.score)
                self._remember_behaviour(ev.behaviour, recorded.program_id)
                if improved and self.improvements is not None and best_parent is not None:
                    self.improvements.add(Improvement(recorded.program_id, parents[-1].id, best_parent, ev.score,
                                                      changed_lines(parents[-1].code, code)))
            else:
                self._feedback.failed(island, ev.status, ev.error)

        start = time.perf_counter()
        recorded = await self._recorder.record(
            NewCandidate(proposal=_proposal_record(proposal, island, parent_ids, improved=improved),
                         program=program, evaluations=tuple(evaluations), judgement=judgement), registered)
        self.stats.add_time("database", time.perf_counter() - start)
        assert recorded.program_id is not None
        return recorded.program_id, improved, proposal

    async def _held_out(self, code: str) -> Evaluation | None:
        if not self.problem.held_out:
            return None
        start = time.perf_counter()
        held = await self.executor.evaluate(code, held_out=True)
        self.stats.add_time("held_out", time.perf_counter() - start)
        return held

    def _maybe_reset(self, _batch: list[RecordedCandidate]) -> None:
        """After a batch is recorded: reset the worst islands if enough registrations came since the last reset.

        Its random tie-breaks are seeded by the registrations so far, which a resume restores (a seq would not:
        the events a stop and a resume record take seqs of their own)."""
        if not self.islands.needs_reset():
            return
        plan = self.islands.plan_reset(np.random.default_rng([self.run.seed, self.islands.num_registered, 1]))
        self.store.record_event(self.run.id, "reset", plan.to_dict())
        self.islands.apply_reset(plan)

    @staticmethod
    def _origin(proposal: Proposal) -> str:
        return "offline" if proposal.model == "offline" else "llm"

    async def _record_failed(self, proposal: Proposal, island: int, parent_ids: list[int], error: str) -> None:
        await self._recorder.record(NewCandidate(proposal=_proposal_record(proposal, island, parent_ids, error),
                                                 program=None, evaluations=()))
        self.stats.failed_proposals += 1

    async def _record_duplicate(self, proposal: Proposal, island: int, parent_ids: list[int], code: str,
                                digest: str, original: int, *, behaviour: str | None = None,
                                after: Callable[[RecordedCandidate], None] | None = None) -> RecordedCandidate:
        """Record a duplicate; `behaviour` (a behavioural duplicate's outputs) lets it join as its twin on resume;
        `after` runs at the commit, in seq order with the rest of the batch."""
        program = NewProgram(island=island, parent_ids=parent_ids, origin=self._origin(proposal), code=code,
                             code_hash=digest, status="duplicate", score=None, scores={},
                             duplicate_of=original, behaviour=behaviour, mate_id=_mate_of(proposal))

        def recorded_duplicate(ids: RecordedCandidate) -> None:
            self.islands.note_offspring(parent_ids)
            if after is not None:
                after(ids)

        recorded = await self._recorder.record(NewCandidate(proposal=_proposal_record(proposal, island, parent_ids),
                                                            program=program, evaluations=()), recorded_duplicate)
        self.stats.duplicates += 1
        return recorded
