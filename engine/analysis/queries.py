"""What a run discovered, as data: the queries behind `evoforge runs/show/best/program/lineage/plot/report`.

The same functions serve a notebook (evoforge.load_run(...) wraps them: best, curve, programs, lineage)::

    from evoforge.db import Store
    from evoforge.engine.analysis import queries as analysis
    store = Store("sqlite:///runs/evoforge.db")
    run = analysis.open_run(store, "demo")
    frame = pandas.DataFrame(analysis.program_records(store, run))   # one row per program
    c = analysis.curve(store, run)                                  # numpy arrays
    plt.plot(c.evaluated, c.best); plt.plot(c.seconds, c.island_best(0))

Rejected programs are kept in every listing, marked `rejected`, and never count as a best.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evoforge.db import EvaluationInfo, JudgementInfo, ProgramBrief, ProgramInfo, ProposalInfo, RunInfo, Store
from evoforge.db.records import PROPOSED_ORIGINS
from evoforge.engine.analysis.llm_stats import ModelStats, model_stats
from evoforge.engine.analysis.metrics import MetricSpec, pareto, rank
from evoforge.engine.analysis.overfit import Gap, gap, relative_gap
from evoforge.engine.run.stats import valid_rate
from evoforge.evaluators import ProblemError

if TYPE_CHECKING:
    import numpy as np

# Events that record a person's action on a run: read by a running search's steering (engine/run/steering.py)
# and shown by the report and `evoforge serve`.
HUMAN_EVENT, REJECT_EVENT, NOTE_EVENT, ACCEPT_EVENT = "human", "reject", "note", "accept"
FEWER_ANSWERS_EVENT = "fewer_answers"
"""A model gave fewer answers per prompt than --answers asked (recorded once per model and invocation)."""


def open_run(store: Store, name: str) -> RunInfo:
    """The run named `name`; ProblemError naming the runs there if there is none."""
    run = store.get_run(name)
    if run is None:
        names = ", ".join(r.name for r in store.list_runs()) or "none"
        raise ProblemError(f"no run named '{name}' in {store.url} (runs there: {names})\n"
                           "  fix: pick a name from `evoforge runs`, or pass the database with --db")
    return run


def run_of(store: Store, program: ProgramInfo) -> RunInfo:
    """The run a program belongs to."""
    return next(r for r in store.list_runs() if r.id == program.run_id)


def maximize(run: RunInfo) -> bool:
    """The run's direction, as its problem declared it when the run started."""
    return bool(run.config["settings"]["maximize"])


def num_islands(run: RunInfo) -> int:
    return int(run.config["run"]["islands"]["num_islands"])


def primary_parent(program: ProgramInfo | ProgramBrief) -> int | None:
    """The parent the change was applied to (the best of the parents shown, which come worst to best)."""
    return program.parent_ids[-1] if program.parent_ids else None


def is_better(a: float, b: float | None, maximize: bool) -> bool:
    return b is None or (a > b if maximize else a < b)


# ----------------------------------------------------------------------------------------------- a run


@dataclass(frozen=True)
class RunSummary:
    """One line of `evoforge runs`: what a run is and how far it got."""

    name: str
    problem: str
    status: str
    candidates: int  # proposals plus programs recorded without one (seed, human): what the budget counts
    evaluated: int  # proposed candidates evaluated (duplicates, the seed and people's programs left out)
    valid_rate: float  # engine.run.stats.valid_rate: the progress bar's figure
    best_score: float | None
    best_program_id: int | None
    best_held_out_status: str | None  # of the best's held-out evaluation: 'ok', how it failed, None (not run)
    best_suspect: bool  # the best scores past the problem's bound, and no person accepted or rejected it
    cost: float
    started: datetime
    duration_s: float | None  # time spent searching (idle gaps before a resume left out); None: never active

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "started": self.started.isoformat(timespec="seconds")}


def summarize(store: Store, run: RunInfo) -> RunSummary:
    """Counts, best score, cost and timing of a run."""
    counts = store.status_counts(run.id, origins=PROPOSED_ORIGINS)
    best = store.best_programs(run.id, 1, maximize=maximize(run))
    evaluated = sum(n for status, n in counts.items() if status != "duplicate")
    duration = active_seconds(store, run)
    return RunSummary(name=run.name, problem=run.problem_name, status=run.status, candidates=store.attempts(run.id),
                      evaluated=evaluated, valid_rate=valid_rate(counts.get("ok", 0), evaluated),
                      best_score=best[0].score if best else None, best_program_id=best[0].id if best else None,
                      best_held_out_status=(store.held_out_statuses(run.id, [best[0].id]).get(best[0].id)
                                            if best else None),
                      best_suspect=bool(suspects(store, run, best)),
                      cost=store.total_cost(run.id), started=run.created_at, duration_s=duration)


def active_seconds(store: Store, run: RunInfo) -> float | None:
    """How long the run spent searching: each session from its start (creation, or a resume) to its last record
    (or the finish), so the days a stopped run waited before `evoforge resume` do not count."""
    resumes = store.events(run.id, "resume")
    starts = [run.created_at, *(e.created_at for e in resumes)]
    total, active = 0.0, False
    next_starts = [*starts[1:], None]
    for start, following, next_start in zip(starts, [*(e.seq for e in resumes), None], next_starts):
        end = store.last_activity(run.id, before_seq=following)
        # The finish belongs to the session it happened in, which need not be the last (a resume recorded later).
        finished = run.finished_at
        if finished is not None and finished >= start and (next_start is None or finished <= next_start):
            end = max(end, finished) if end is not None else finished
        if end is not None and end > start:
            total += (end - start).total_seconds()
            active = True
    return total if active else None


@dataclass(frozen=True)
class InFlight:
    """Proposals (LLM calls) that were waiting on the proposer: time-weighted average and peak, over the run's
    invocations (each records its own when its search loop ends), and how the candidates were recorded."""

    average: float
    peak: int
    seconds: float
    batches: int
    recorded: int

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def in_flight(store: Store, run: RunInfo) -> InFlight | None:
    """What the run's invocations say about their proposals in flight; None when none said (an older run)."""
    events = [e.data for e in store.events(run.id, "in_flight")]
    if not events:
        return None
    seconds = sum(float(e["seconds"]) for e in events)
    area = sum(float(e["average"]) * float(e["seconds"]) for e in events)
    return InFlight(average=area / seconds if seconds > 0 else 0.0, peak=max(int(e["peak"]) for e in events),
                    seconds=seconds, batches=sum(int(e["batches"]) for e in events),
                    recorded=sum(int(e["recorded"]) for e in events))


def program_records(store: Store, run: RunInfo) -> list[dict[str, Any]]:
    """Every program of the run as a plain dict (no code), in the order they were recorded: a DataFrame's rows."""
    return [dataclasses.asdict(p) for p in store.program_briefs(run.id)]


def seed_gap(store: Store, run: RunInfo) -> float | None:
    """The seed's relative held-out gap: the baseline a widening gap is measured from."""
    seed = next((p for p in store.program_briefs(run.id, origin="seed") if p.status == "ok"), None)
    if seed is None or seed.score is None or seed.held_out_score is None:
        return None
    return relative_gap(seed.score, seed.held_out_score, maximize=maximize(run))


def gap_of(run: RunInfo, program: ProgramInfo | ProgramBrief, baseline: float | None,
           held_out_status: str | None = None) -> Gap:
    return gap(program.score, program.held_out_score, maximize=maximize(run), baseline=baseline,
               held_out_status=held_out_status)


@dataclass(frozen=True)
class Ranked:
    """One of a run's best programs, with its held-out gap."""

    rank: int
    program: ProgramInfo
    gap: Gap
    suspect: bool = False  # past the problem's bound and neither accepted nor rejected by a person


def bound(run: RunInfo) -> float | None:
    """The best score an honest program can reach, as the run's problem declared it (None: none declared)."""
    value = run.config.get("settings", {}).get("bound")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def beyond_bound(run: RunInfo, score: float | None) -> bool:
    limit = bound(run)
    if limit is None or score is None:
        return False
    return score >= limit if maximize(run) else score <= limit


def accepted(store: Store, run: RunInfo) -> set[int]:
    """Programs past the bound that a person accepted (`evoforge accept`)."""
    return {int(e.data["program"]) for e in store.events(run.id, ACCEPT_EVENT) if "program" in e.data}


def judged(run: RunInfo) -> bool:
    """Whether the run has a reviewer model (--judge-model)."""
    return bool((run.config["run"].get("models") or {}).get("judge"))


def gaming(store: Store, run: RunInfo) -> set[int]:
    """Programs the reviewer model judged to game the score."""
    return store.gaming_programs(run.id) if judged(run) else set()


def held(store: Store, run: RunInfo, program: ProgramInfo | ProgramBrief) -> str | None:
    """Why a program waits for a person (past the bound, judged to game the score), ignoring accepts and rejects;
    None when it does not."""
    if program.status != "ok":
        return None
    if beyond_bound(run, program.score):
        return f"past the problem's bound ({bound(run)})"
    if program.id in gaming(store, run):
        return "the reviewer model judged that it games the score"
    return None


def suspects(store: Store, run: RunInfo, programs: list[ProgramInfo] | list[ProgramBrief]) -> set[int]:
    """Those of `programs` that score past the bound or that the reviewer judged to game the score: held out of
    selection until a person accepts or rejects them."""
    games = gaming(store, run)
    if bound(run) is None and not games:
        return set()
    ok = accepted(store, run)
    return {p.id for p in programs if p.status == "ok" and (beyond_bound(run, p.score) or p.id in games)
            and p.id not in ok
            and not (p.rejected if isinstance(p, ProgramBrief) else p.rejected_at is not None)}


def judgements(store: Store, run: RunInfo, program_ids: list[int]) -> dict[int, JudgementInfo]:
    """The reviewer's latest judgement of each of these programs that it judged."""
    if not judged(run):
        return {}
    return {j.program_id: j for j in store.judgements(run.id, program_ids)}


ALL = 2**31 - 1  # "every program" as a row limit


def best(store: Store, run: RunInfo, n: int, *, by: str | None = None) -> list[Ranked]:
    """The run's `n` best programs that no person rejected, best first, each with its held-out gap.

    They rank by the metric `by` (the primary score when None), after the run's constraints (engine.analysis.metrics).
    """
    baseline = seed_gap(store, run)
    spec = MetricSpec.of(run)
    if by is None and not spec.constraints:
        programs = store.best_programs(run.id, n, maximize=maximize(run))
    else:
        programs = rank(spec, store.best_programs(run.id, ALL, maximize=maximize(run)), by)[:n]
    return _ranked(store, run, programs, baseline)


def pareto_front(store: Store, run: RunInfo, a: str, b: str) -> list[Ranked]:
    """The run's programs that no other beats on both metrics a and b (within its constraints), by a."""
    front = pareto(MetricSpec.of(run), store.best_programs(run.id, ALL, maximize=maximize(run)), a, b)
    return _ranked(store, run, front, seed_gap(store, run))


def _ranked(store: Store, run: RunInfo, programs: list[ProgramInfo], baseline: float | None) -> list[Ranked]:
    statuses = store.held_out_statuses(run.id, [p.id for p in programs])
    held = suspects(store, run, programs)
    return [Ranked(rank, p, gap_of(run, p, baseline, statuses.get(p.id)), p.id in held)
            for rank, p in enumerate(programs, 1)]


def seed_program(store: Store, run: RunInfo) -> ProgramBrief | None:
    """The run's seed program (its scores are the baseline every best is read against)."""
    return next(iter(store.program_briefs(run.id, origin="seed")), None)


def seed_held_out_failure(store: Store, run: RunInfo, seed: ProgramBrief | None = None) -> str | None:
    """How the seed's held-out evaluation failed ('timeout', 'error', ...), or None: it passed or has not run."""
    seed = seed or seed_program(store, run)
    status = None if seed is None else store.held_out_statuses(run.id, [seed.id]).get(seed.id)
    return status if status not in (None, "ok") else None


@dataclass(frozen=True)
class IslandRow:
    """An island's valid programs (the seed counts on every island) and its best one."""

    island: int
    programs: int
    best_score: float | None
    best_program_id: int | None


def islands(store: Store, run: RunInfo) -> list[IslandRow]:
    """Per island: how many valid programs were registered there and the best of them (rejected ones left out).
    The seed counts on every island; of equal scores the earlier program is the best."""
    up = maximize(run)
    seeds = [(p.score, p.seq, p.id, p.island) for p in store.program_briefs(run.id, origin="seed")
             if p.status == "ok" and p.score is not None and not p.rejected]
    found = {row[0]: row[1:] for row in store.island_bests(run.id, maximize=up)}
    rows = []
    for i in range(num_islands(run)):
        count = found[i][0] if i in found else 0
        best = (found[i][1], found[i][3], found[i][2]) if i in found else None  # score, seq, id
        for seed_score, seed_seq, seed_id, seed_island in seeds:
            count += seed_island != i  # the database counted it on its own island
            if best is None or is_better(seed_score, best[0], up) or (seed_score == best[0] and seed_seq < best[1]):
                best = (seed_score, seed_seq, seed_id)
        rows.append(IslandRow(i, count, best[0] if best else None, best[2] if best else None))
    return rows


def models(store: Store, run: RunInfo) -> list[ModelStats]:
    """Each model's proposals, calls, applied, valid and improving answers, tokens and cost in this run."""
    return model_stats(store, run.id)


def rejected(store: Store, run: RunInfo) -> list[ProgramBrief]:
    """The run's programs a person rejected, in the order they were recorded."""
    return store.program_briefs(run.id, rejected=True)


# ----------------------------------------------------------------------------------------- a program


@dataclass(frozen=True)
class ProgramDetail:
    """Everything recorded about one program: code, diff, scores per input, proposal, held-out gap."""

    run: RunInfo
    program: ProgramInfo
    parent: ProgramInfo | None
    diff: str
    evaluations: list[EvaluationInfo]
    proposal: ProposalInfo | None
    gap: Gap


def code_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two programs' code ('' when equal)."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def program_detail(store: Store, program_id: int) -> ProgramDetail:
    """One program with its run, primary parent, diff against it, evaluations and proposal."""
    program = store.get_program(program_id)
    run = run_of(store, program)
    parent_id = primary_parent(program)
    parent = store.get_program(parent_id) if parent_id is not None else None
    diff = code_diff(parent.code, program.code, f"program {parent.id}", f"program {program.id}") if parent else ""
    proposal = store.get_proposal(program.proposal_id) if program.proposal_id is not None else None
    baseline = seed_gap(store, run)
    evaluations = store.evaluations(program_id)
    held_out = [e.status for e in evaluations if e.kind == "held_out"]
    return ProgramDetail(run=run, program=program, parent=parent, diff=diff, evaluations=evaluations,
                         proposal=proposal, gap=gap_of(run, program, baseline, held_out[-1] if held_out else None))


_FEW = 500


def lineage(store: Store, program_id: int) -> list[ProgramBrief]:
    """The chain of ancestors through each primary parent, the oldest (the seed, or a human's program) first."""
    program = store.get_program(program_id)
    links = store.primary_ancestors([program_id], limit=ALL)
    chain = ancestry(links, program_id)
    # A long chain reads the whole run at once rather than binding thousands of ids.
    briefs = store.program_briefs(program.run_id, ids=chain if len(chain) <= _FEW else None)
    by_id = {p.id: p for p in briefs}
    return [by_id[i] for i in reversed(chain)]


def ancestry(links: dict[int, tuple[int, ...]], program_id: int) -> list[int]:
    """A program and its ancestors through each primary parent (the last), the program first, as far as `links`
    (parent ids by program, from Store.primary_ancestors) reach; a loop is cut where it closes."""
    chain, seen = [program_id], {program_id}
    while (parents := links.get(chain[-1])) and parents[-1] in links and parents[-1] not in seen:
        chain.append(parents[-1])
        seen.add(parents[-1])
    return chain


# -------------------------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curve:
    """A run's evaluated candidates in order (duplicates are not evaluated, so not here), as arrays.

    `best` is the running best over valid programs no person rejected; `best_held_out` the held-out score of that
    running best (NaN where it has none), and `best_held_out_failed` whether its held-out evaluation failed (a
    timeout, error, memory or crash: shown as a failure, never as "not scored yet"). Scores of invalid programs
    are NaN.
    """

    maximize: bool
    num_islands: int
    program_id: np.ndarray
    evaluated: np.ndarray  # 1, 2, ...: candidates evaluated so far
    seconds: np.ndarray  # since the run started
    island: np.ndarray
    origin: np.ndarray
    score: np.ndarray
    valid: np.ndarray
    rejected: np.ndarray
    best: np.ndarray
    best_program_id: np.ndarray  # -1 before the first valid program
    best_held_out: np.ndarray
    best_held_out_failed: np.ndarray

    def island_best(self, island: int) -> np.ndarray:
        """The running best of one island (the seed counts on every island); NaN before its first program."""
        import numpy as np

        mine = (self.island == island) | (self.origin == "seed")
        return _running_best(np.where(mine & self.valid & ~self.rejected, self.score, np.nan), self.maximize)

    def valid_rate(self, window: int) -> np.ndarray:
        """Share of valid programs among the last `window` evaluated (fewer at the start)."""
        import numpy as np

        sums = np.concatenate([[0.0], np.cumsum(self.valid)])
        end = np.arange(1, len(self.valid) + 1)
        start = np.maximum(end - window, 0)
        return (sums[end] - sums[start]) / (end - start)


def _running_best(scores: np.ndarray, maximize: bool) -> np.ndarray:
    import numpy as np

    if scores.size == 0:
        return scores
    filled = np.where(np.isnan(scores), -np.inf if maximize else np.inf, scores)
    best = np.maximum.accumulate(filled) if maximize else np.minimum.accumulate(filled)
    return np.where(np.isinf(best), np.nan, best)


@dataclass(frozen=True)
class MetricCurve:
    """One named metric other than the primary along a run's curve: `value` per evaluated candidate (NaN where it
    is invalid, rejected or did not report the metric) and `best`, its running best in the metric's own direction
    (NaN before the first value). `limit` is the constraint the problem declared on it, if any."""

    name: str
    maximize: bool
    limit: float | None
    value: np.ndarray
    best: np.ndarray


def metric_curves(store: Store, run: RunInfo, c: Curve) -> list[MetricCurve]:
    """Each named metric of the run's valid programs other than the primary, aligned with `c` (in the order the
    programs first reported them); empty for a run scored by one number."""
    import numpy as np

    metrics = store.program_metrics(run.id)
    if not metrics:
        return []
    spec = MetricSpec.of(run)
    names = [n for n in dict.fromkeys(n for pid in c.program_id.tolist() for n in metrics.get(pid, {}))
             if n not in (spec.primary, "score")]
    counted = c.valid & ~c.rejected
    curves = []
    for name in names:
        value = np.array([metrics.get(pid, {}).get(name, np.nan) for pid in c.program_id.tolist()], dtype=float)
        value = np.where(counted, value, np.nan)
        up = spec.maximized(name)
        curves.append(MetricCurve(name=name, maximize=up, limit=spec.constraints.get(name), value=value,
                                  best=_running_best(value, up)))
    return curves


def curve(store: Store, run: RunInfo) -> Curve:
    """The run's curve: every evaluated program's score, the running best and its held-out score."""
    import numpy as np  # here, not at the top: the text commands (runs, show, ...) never need it

    briefs = [p for p in store.program_briefs(run.id) if p.status != "duplicate"]
    up = maximize(run)
    valid = np.array([p.status == "ok" and p.score is not None for p in briefs], dtype=bool)
    score = np.array([p.score if p.score is not None else np.nan for p in briefs], dtype=float)
    rejected_mask = np.array([p.rejected for p in briefs], dtype=bool)
    held_out_statuses = store.held_out_statuses(run.id)
    best_ids, best_held, best_failed, current = [], [], [], None
    for p in briefs:
        counts = p.status == "ok" and not p.rejected
        if counts and p.score is not None and is_better(p.score, None if current is None else current.score, up):
            current = p
        best_ids.append(current.id if current else -1)
        held = current.held_out_score if current else None
        best_held.append(np.nan if held is None else held)
        best_failed.append(current is not None and held_out_statuses.get(current.id) not in (None, "ok"))
    return Curve(
        maximize=up, num_islands=num_islands(run),
        program_id=np.array([p.id for p in briefs], dtype=int),
        evaluated=np.arange(1, len(briefs) + 1),
        seconds=np.array([(p.created_at - run.created_at).total_seconds() for p in briefs], dtype=float),
        island=np.array([p.island for p in briefs], dtype=int),
        origin=np.array([p.origin for p in briefs], dtype=object),
        score=score, valid=valid, rejected=rejected_mask,
        best=_running_best(np.where(valid & ~rejected_mask, score, np.nan), up),
        best_program_id=np.array(best_ids, dtype=int), best_held_out=np.array(best_held, dtype=float),
        best_held_out_failed=np.array(best_failed, dtype=bool),
    )
