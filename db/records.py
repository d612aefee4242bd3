"""Plain frozen dataclasses that go into and come out of the store.

Inputs (``New*``) check themselves when built, so a bad record fails where it is made, not inside a transaction.
Outputs (``*Info``, ``ProgramSummary``, ``EventInfo``) are detached copies of rows: safe to keep, share between
threads and compare, unlike live ORM objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, overload

from evoforge.db.models import EVALUATION_KINDS, ORIGINS
from evoforge.evaluators.statuses import EVALUATION_STATUSES, STATUSES

PROPOSED_ORIGINS = ("offline", "llm")


def _check_one_of(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def _check_score(what: str, value: float | None) -> None:
    # SQLite stores NaN as NULL and PostgreSQL's JSON rejects it: refuse it here, where the caller can see why.
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{what} is {value}; record a non-finite result as status 'invalid' with score None")


def _check_scores(what: str, scores: Mapping[str, float]) -> None:
    for name, value in scores.items():
        _check_score(f"{what}[{name!r}]", value)


# ---------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class NewProposal:
    """One LLM call or offline mutation to record.

    ``applied`` (the response produced a program) follows from whether the candidate has a program; when given it
    must agree.
    """

    island: int
    model: str
    prompt: str
    parent_ids: Sequence[int] = ()
    response: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    applied: bool | None = None
    attempts: int = 1
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("a proposal names its model ('offline' for the offline mutator)")
        if not isinstance(self.prompt, str):
            raise ValueError("a proposal's prompt is the messages as JSON text: pass json.dumps(messages)")
        for name in ("prompt_tokens", "completion_tokens", "cost", "latency_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"proposal {name} is {value}; it must be a finite number >= 0")


@dataclass(frozen=True)
class NewProgram:
    """A program to record.

    ``code_length`` is ``len(code)`` and ``held_out_score`` is the score of the candidate's held-out evaluation;
    both are filled in by the store, and checked against those when given.
    """

    island: int
    origin: str
    code: str
    code_hash: str
    status: str
    parent_ids: Sequence[int] = ()
    score: float | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    duplicate_of: int | None = None
    behaviour: str | None = None
    code_length: int | None = None
    held_out_score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)  # named metrics, when score() returns several
    feedback: str | None = None  # what score() said about the outputs
    mate_id: int | None = None  # a crossover's second parent, also among parent_ids (before the primary, the last)

    def __post_init__(self) -> None:
        _check_one_of("program origin", self.origin, ORIGINS)
        if self.mate_id is not None and self.mate_id not in self.parent_ids[:-1]:
            raise ValueError(f"a crossover's mate {self.mate_id} is listed among parent_ids, before the primary "
                             f"parent (the last); got {list(self.parent_ids)}")
        _check_scores("program metrics", self.metrics)
        if self.code_length is not None and self.code_length != len(self.code):
            raise ValueError(f"code_length {self.code_length} is not len(code) = {len(self.code)}; leave it out")
        _check_one_of("program status", self.status, STATUSES)
        _check_score("program score", self.score)
        _check_scores("program scores", self.scores)
        if (self.status == "duplicate") != (self.duplicate_of is not None):
            raise ValueError("a program has status 'duplicate' exactly when duplicate_of names the original")


@dataclass(frozen=True)
class NewEvaluation:
    """One evaluation result to record against a program."""

    kind: str
    status: str
    score: float | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    compiled: bool | None = None
    node: str | None = None
    stage: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    feedback: str | None = None

    def __post_init__(self) -> None:
        _check_one_of("evaluation kind", self.kind, EVALUATION_KINDS)
        _check_scores("evaluation metrics", self.metrics)
        _check_one_of("evaluation status", self.status, EVALUATION_STATUSES)
        _check_score("evaluation score", self.score)
        _check_scores("evaluation scores", self.scores)


@dataclass(frozen=True)
class NewJudgement:
    """One call to the reviewer model about a program, recorded with that program: the verdict, or why none."""

    model: str
    prompt: str
    response: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    attempts: int = 1
    error: str | None = None
    grade: float | None = None
    gaming: bool | None = None
    critique: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("a judgement names the reviewer model")
        for name in ("prompt_tokens", "completion_tokens", "cost", "latency_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"judgement {name} is {value}; it must be a finite number >= 0")
        if self.grade is not None and not (math.isfinite(self.grade) and 0 <= self.grade <= 10):
            raise ValueError(f"judgement grade {self.grade} must lie in [0, 10]")
        if (self.error is None) == (self.grade is None or self.gaming is None):
            raise ValueError("a judgement has a grade and a gaming verdict exactly when it has no error")


@dataclass(frozen=True)
class NewCandidate:
    """A finished candidate: a failed proposal has no program; a duplicate has a program and no evaluations."""

    proposal: NewProposal | None = None
    program: NewProgram | None = None
    evaluations: Sequence[NewEvaluation] = ()
    judgement: NewJudgement | None = None  # the reviewer model's verdict on the program, when it was asked

    def __post_init__(self) -> None:
        if self.proposal is None and self.program is None:
            raise ValueError("a candidate needs a proposal, a program, or both")
        if self.judgement is not None and self.program is None:
            raise ValueError("a judgement needs the program it judges")
        if self.proposal is not None and self.proposal.applied not in (None, self.program is not None):
            raise ValueError(
                "a proposal is applied exactly when its candidate has a program; "
                + ("pass the program" if self.proposal.applied else "set applied=True or leave it out")
            )
        if self.program is None:
            if self.evaluations:
                raise ValueError("evaluations need a program to belong to")
            return
        proposed = self.program.origin in PROPOSED_ORIGINS
        if proposed != (self.proposal is not None):
            raise ValueError(
                f"a program of origin {self.program.origin!r} "
                + ("needs the proposal that produced it" if proposed else "has no proposal (seed and human programs)")
            )
        if self.program.status == "duplicate" and self.evaluations:
            raise ValueError("a duplicate is never evaluated: record it without evaluations")
        held_out = [e for e in self.evaluations if e.kind == "held_out"]
        if len(held_out) > 1:
            raise ValueError("a candidate has at most one held-out evaluation")
        given = self.program.held_out_score
        if given is not None and (not held_out or held_out[0].score != given):
            raise ValueError(
                f"held_out_score {given} must be the score of the candidate's held-out evaluation; leave it out"
            )


# --------------------------------------------------------------------------------------------------- outputs


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """The timestamp as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RecordedCandidate:
    """Ids and history position the store gave a recorded candidate."""

    seq: int
    proposal_id: int | None
    program_id: int | None


@dataclass(frozen=True)
class RunInfo:
    """A run as stored."""

    id: int
    name: str
    problem_name: str
    problem_path: str
    problem_source: str
    problem_hash: str
    config: dict[str, Any]
    seed: int
    status: str
    created_at: datetime
    finished_at: datetime | None
    evoforge_version: str


@dataclass(frozen=True)
class ProposalInfo:
    """A proposal (LLM call or offline mutation) as stored."""

    id: int
    run_id: int
    seq: int
    island: int
    parent_ids: tuple[int, ...]
    model: str
    prompt: str
    response: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    error: str | None
    applied: bool
    attempts: int
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ProgramInfo:
    """A program as stored, code included."""

    id: int
    run_id: int
    proposal_id: int | None
    seq: int
    island: int
    parent_ids: tuple[int, ...]
    origin: str
    code: str
    code_hash: str
    code_length: int
    status: str
    score: float | None
    scores: dict[str, float]
    held_out_score: float | None
    error: str | None
    duplicate_of: int | None
    created_at: datetime
    rejected_by: str | None
    rejected_reason: str | None
    rejected_at: datetime | None
    behaviour: str | None
    metrics: dict[str, float]  # named metrics ({} for a single score)
    feedback: str | None
    mate_id: int | None  # a crossover's second parent (None: not a crossover)


@dataclass(frozen=True)
class EvaluationInfo:
    """An evaluation as stored."""

    id: int
    program_id: int
    kind: str
    status: str
    score: float | None
    scores: dict[str, float]
    error: str | None
    timings: dict[str, float]
    compiled: bool | None
    node: str | None
    stage: int | None
    created_at: datetime
    metrics: dict[str, float]
    feedback: str | None


@dataclass(frozen=True)
class JudgementInfo:
    """A call to the reviewer model about a program, as stored."""

    id: int
    run_id: int
    program_id: int
    model: str
    prompt: str
    response: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    attempts: int
    error: str | None
    grade: float | None
    gaming: bool | None
    critique: str | None
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ProgramSummary:
    """A program in a run's history: what island state needs, without the code."""

    kind: ClassVar[str] = "program"
    """Tells a program from an event when walking a history; no event may take this kind."""

    id: int
    seq: int
    island: int
    origin: str
    status: str
    score: float | None
    scores: dict[str, float]
    code_length: int
    rejected: bool = False  # a person took it out of selection
    behaviour: str | None = None  # digest of its outputs on the first inputs
    parent_ids: tuple[int, ...] = ()  # counted as offspring on resume (parent selection's offspring penalty)
    metrics: Mapping[str, float] = field(default_factory=dict)  # named metrics: MAP-Elites descriptors on resume


@dataclass(frozen=True)
class EventInfo:
    """An event in a run's history."""

    id: int
    seq: int
    kind: str
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ProgramBrief:
    """A program without its code: what curves, lineages and listings of a whole run need."""

    id: int
    seq: int
    island: int
    parent_ids: tuple[int, ...]
    origin: str
    status: str
    score: float | None
    held_out_score: float | None
    proposal_id: int | None
    duplicate_of: int | None
    code_length: int
    created_at: datetime
    rejected: bool  # a person took it out of selection
    mate_id: int | None = None  # a crossover's second parent (None: not a crossover)


@dataclass(frozen=True)
class ModelTotals:
    """What one model's proposals achieved in a run, summed by the database."""

    model: str
    proposals: int  # answers recorded (cache and replay hits included)
    calls: int  # real calls made
    applied: int  # answers that patched into a program
    valid: int  # programs that evaluated ok
    improved: int  # programs that beat their best parent
    tokens: int
    cost: float


HistoryItem = ProgramSummary | EventInfo
"""One step of a run's history, in seq order: a program or an event."""


@dataclass(frozen=True)
class ProposalOutcome:
    """How a proposal ended, without its prompt or code: what the islands' feedback is rebuilt from on resume."""

    island: int
    error: str | None  # why it gave no program (its answer could not be applied, or the proposer failed)
    program_id: int | None
    status: str | None  # its program's status; None: it gave none
    score: float | None
    origin: str | None
    program_error: str | None


@dataclass(frozen=True)
class Spend:
    """What a run's LLM calls have used so far."""

    calls: int
    tokens: int
    cost: float
    offline: int = 0
    """Proposals the offline proposer answered beside the model (--offline-share): no call, no spend."""
