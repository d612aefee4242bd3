"""Tables of an evoforge database, as typed SQLAlchemy 2.0 models.

The models only describe the schema: the store reads and writes them with Core statements and hands out frozen
dataclasses, so no live ORM object escapes a transaction.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from evoforge.evaluators.statuses import EVALUATION_STATUSES, STATUSES

RUN_STATUSES = ("running", "finished", "stopped", "failed")
ORIGINS = ("seed", "offline", "llm", "human")
EVALUATION_KINDS = ("train", "held_out")


def utcnow() -> datetime:
    """Now in UTC; every timestamp is UTC so runs from different machines compare."""
    return datetime.now(timezone.utc)


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=column)


class Base(DeclarativeBase):
    """Declarative base of every evoforge table."""

    metadata = MetaData(naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"})
    type_annotation_map = {dict[str, Any]: JSON, list[int]: JSON, datetime: DateTime(timezone=True)}


class Meta(Base):
    """Key/value facts about the database itself, above all ``schema_version``."""

    __tablename__ = "evoforge_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    """One search: the problem it ran on and everything needed to replay it."""

    __tablename__ = "runs"
    __table_args__ = (_one_of("status", RUN_STATUSES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    problem_name: Mapped[str] = mapped_column(String(200))
    problem_path: Mapped[str] = mapped_column(Text)
    problem_source: Mapped[str] = mapped_column(Text)
    problem_hash: Mapped[str] = mapped_column(String(128))
    config: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    evoforge_version: Mapped[str] = mapped_column(String(64))
    # The run's history counter: proposals, programs and events take their seq from it inside their own write
    # transaction, so concurrent writers never collide and replay order is the order of commit.
    next_seq: Mapped[int] = mapped_column(Integer, default=0)


class Proposal(Base):
    """One candidate attempt: an LLM call or an offline mutation. The attempt budget counts these."""

    __tablename__ = "proposals"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_proposals_run_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    island: Mapped[int] = mapped_column(Integer)
    parent_ids: Mapped[list[int]]
    model: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    applied: Mapped[bool]
    attempts: Mapped[int] = mapped_column(Integer, default=1)  # calls made for it, retries included
    # How it was made: model choice (and the bandit's values), instruction id, cache or replay hit, outcome.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Program(Base):
    """One recorded program with its outcome; seed and human programs have no proposal."""

    __tablename__ = "programs"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_programs_run_seq"),
        Index("ix_programs_run_status_score", "run_id", "status", "score"),
        Index("ix_programs_run_code_hash", "run_id", "code_hash", "seq"),
        Index("ix_programs_run_proposal", "run_id", "proposal_id"),
        _one_of("status", STATUSES),
        _one_of("origin", ORIGINS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"))
    seq: Mapped[int] = mapped_column(Integer)
    island: Mapped[int] = mapped_column(Integer)
    parent_ids: Mapped[list[int]]
    origin: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str] = mapped_column(String(128))
    code_length: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any]]
    held_out_score: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("programs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A person took this program out of selection (a reward hack, say): who, why and when.
    rejected_by: Mapped[str | None] = mapped_column(String(200))
    rejected_reason: Mapped[str | None] = mapped_column(Text)
    rejected_at: Mapped[datetime | None]
    # Digest of its outputs on the first inputs: a later candidate with the same one is a near-duplicate.
    behaviour: Mapped[str | None] = mapped_column(String(64))


class Evaluation(Base):
    """One evaluation of a program on the training or the held-out inputs."""

    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_program", "program_id"),
        _one_of("kind", EVALUATION_KINDS),
        _one_of("status", EVALUATION_STATUSES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    timings: Mapped[dict[str, Any]]
    compiled: Mapped[bool | None]
    node: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[int | None] = mapped_column(Integer)  # the cascade stage that culled it; None if none did
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """Something that happened to a run (reset, stop, resume), placed in the same order as its programs."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_events_run_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Receipt(Base):
    """Proof that a batch of candidates was committed, by a token the writer chose before its first try.

    A connection can drop after the server committed but before the client heard so. The retry then finds the
    receipt and returns what was recorded instead of recording the candidates a second time.
    """

    __tablename__ = "receipts"
    __table_args__ = (Index("ix_receipts_run_id", "run_id"),)

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    first_seq: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
