"""Tables of an evoforge database.

SQLAlchemy Core tables, not ORM classes: the store reads and writes them with Core statements and hands out frozen
dataclasses, and every command opens the database without importing the ORM (a third of SQLAlchemy's start-up).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

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


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` with each NUL and lone surrogate as U+FFFD: a Python str may hold them (a candidate's error, a model's
    answer decoded from JSON's `\\ud800`), but SQLite's UTF-8 and PostgreSQL's text refuse them, and the refused
    write failed the whole record, and with it the search."""
    return _UNSTORABLE.sub("\ufffd", text)


class Chars(TypeDecorator[str]):
    """A text column that stores any str (see `storable`); the same TEXT in the schema."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else storable(value)


metadata = MetaData(naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"})
"""Every evoforge table."""

_WHEN = DateTime(timezone=True)


def _required(name: str, *args: Any, **kwargs: Any) -> Column[Any]:
    return Column(name, *args, nullable=False, **kwargs)


def _optional(name: str, *args: Any, **kwargs: Any) -> Column[Any]:
    return Column(name, *args, nullable=True, **kwargs)


Meta = Table(
    "evoforge_meta", metadata,
    # Key/value facts about the database itself, above all ``schema_version``.
    Column("key", String(64), primary_key=True),
    _required("value", Chars),
)

Run = Table(
    "runs", metadata,
    # One search: the problem it ran on and everything needed to replay it.
    Column("id", Integer, primary_key=True),
    _required("name", String(200), unique=True),
    _required("problem_name", String(200)),
    _required("problem_path", Chars),
    _required("problem_source", Chars),
    _required("problem_hash", String(128)),
    _required("config", JSON),
    _required("seed", Integer),
    _required("status", String(16), default="running"),
    _required("created_at", _WHEN, default=utcnow),
    _optional("finished_at", _WHEN),
    _required("evoforge_version", String(64)),
    # The run's history counter: proposals, programs and events take their seq from it inside their own write
    # transaction, so concurrent writers never collide and replay order is the order of commit.
    _required("next_seq", Integer, default=0),
    # The process searching the run now (db/holder.py): set by run and resume, its heartbeat refreshed while it
    # searches, cleared when it ends; a second process refuses a run whose holder is alive.
    _optional("holder_host", String(255)),
    _optional("holder_pid", Integer),
    _optional("heartbeat_at", _WHEN),
    _one_of("status", RUN_STATUSES),
)

Proposal = Table(
    "proposals", metadata,
    # One candidate attempt: an LLM call or an offline mutation. The attempt budget counts these.
    Column("id", Integer, primary_key=True),
    _required("run_id", Integer, ForeignKey("runs.id")),
    _required("seq", Integer),
    _required("island", Integer),
    _required("parent_ids", JSON),
    _required("model", String(200)),
    _required("prompt", Chars),
    _optional("response", Chars),
    _required("prompt_tokens", Integer, default=0),
    _required("completion_tokens", Integer, default=0),
    _required("cost", Float, default=0.0),
    _required("latency_s", Float, default=0.0),
    _optional("error", Chars),
    _required("applied", Boolean),
    _required("attempts", Integer, default=1),  # calls made for it, retries included
    # How it was made: model choice (and the bandit's values), instruction id, cache or replay hit, outcome.
    _required("details", JSON, default=dict),
    _required("created_at", _WHEN, default=utcnow),
    UniqueConstraint("run_id", "seq", name="uq_proposals_run_seq"),
    # What a run's spend sums (v12), so that summing it never reads the prompts.
    Index("ix_proposals_run_spend", "run_id", "model", "attempts", "cost", "prompt_tokens", "completion_tokens"),
)

Program = Table(
    "programs", metadata,
    # One recorded program with its outcome; seed and human programs have no proposal.
    Column("id", Integer, primary_key=True),
    _required("run_id", Integer, ForeignKey("runs.id")),
    _optional("proposal_id", Integer, ForeignKey("proposals.id")),
    _required("seq", Integer),
    _required("island", Integer),
    _required("parent_ids", JSON),
    _required("origin", String(16)),
    _required("code", Chars),
    _required("code_hash", String(128)),
    _required("code_length", Integer),
    _required("status", String(16)),
    _optional("score", Float),
    _required("scores", JSON),
    _optional("held_out_score", Float),
    _optional("error", Chars),
    _optional("duplicate_of", Integer, ForeignKey("programs.id")),
    _required("created_at", _WHEN, default=utcnow),
    # A person took this program out of selection (a reward hack, say): who, why and when.
    _optional("rejected_by", String(200)),
    _optional("rejected_reason", Chars),
    _optional("rejected_at", _WHEN),
    # Digest of its outputs on the first inputs: a later candidate with the same one is a near-duplicate.
    _optional("behaviour", String(64)),
    # Named metrics over every input, when score() returns several (NULL: one score, or recorded before v6).
    _optional("metrics", JSON),
    # What score() said about its outputs, shown to its children's model (bounded, control characters escaped).
    _optional("feedback", Chars),
    # A crossover's second parent (v13): its prompt asked to combine the primary parent with this program, which
    # parent_ids also lists (before the primary, the last); NULL for every other program. Like parent_ids, it names
    # a program of the same run without a foreign key.
    _optional("mate_id", Integer),
    UniqueConstraint("run_id", "seq", name="uq_programs_run_seq"),
    Index("ix_programs_run_status_score", "run_id", "status", "score"),
    Index("ix_programs_run_code_hash", "run_id", "code_hash", "seq"),
    Index("ix_programs_run_proposal", "run_id", "proposal_id"),
    # For the pages and listings of a long run (v12): counts by origin, a run's seeds, rejected and held-out
    # programs, each island's best, and the curve's one pass over the run, each read from an index alone.
    Index("ix_programs_run_origin_status", "run_id", "origin", "status"),
    Index("ix_programs_run_rejected", "run_id", "rejected_at"),
    Index("ix_programs_run_held_out", "run_id", "held_out_score"),
    Index("ix_programs_run_island_score", "run_id", "island", "status", "score"),
    Index("ix_programs_run_seq_outcome", "run_id", "seq", "status", "score", "island", "origin", "rejected_at"),
    _one_of("status", STATUSES),
    _one_of("origin", ORIGINS),
)

Evaluation = Table(
    "evaluations", metadata,
    # One evaluation of a program on the training or the held-out inputs.
    Column("id", Integer, primary_key=True),
    _required("program_id", Integer, ForeignKey("programs.id")),
    _required("kind", String(16)),
    _required("status", String(16)),
    _optional("score", Float),
    _required("scores", JSON),
    _optional("error", Chars),
    _required("timings", JSON),
    _optional("compiled", Boolean),
    _optional("node", String(200)),
    _optional("stage", Integer),  # the cascade stage that culled it; None if none did
    _optional("metrics", JSON),  # named metrics over every input (see programs.metrics)
    _optional("feedback", Chars),  # what score() said about the outputs
    _required("created_at", _WHEN, default=utcnow),
    Index("ix_evaluations_program", "program_id"),
    _one_of("kind", EVALUATION_KINDS),
    _one_of("status", EVALUATION_STATUSES),
)

Event = Table(
    "events", metadata,
    # Something that happened to a run (reset, stop, resume), placed in the same order as its programs.
    Column("id", Integer, primary_key=True),
    _required("run_id", Integer, ForeignKey("runs.id")),
    _required("seq", Integer),
    _required("kind", String(64)),
    _required("data", JSON),
    _required("created_at", _WHEN, default=utcnow),
    UniqueConstraint("run_id", "seq", name="uq_events_run_seq"),
)

Judgement = Table(
    "judgements", metadata,
    # One call to the reviewer model (--judge-model) about a program that improved: the request and the answer as
    # for a proposal, and the verdict read from it (grade, gaming, critique), or why there is none (error).
    Column("id", Integer, primary_key=True),
    _required("run_id", Integer, ForeignKey("runs.id")),
    _required("program_id", Integer, ForeignKey("programs.id")),
    _required("model", String(200)),
    _required("prompt", Chars),
    _optional("response", Chars),
    _required("prompt_tokens", Integer, default=0),
    _required("completion_tokens", Integer, default=0),
    _required("cost", Float, default=0.0),
    _required("latency_s", Float, default=0.0),
    _required("attempts", Integer, default=1),  # calls made, retries included; 0: answered by a replayed run
    _optional("error", Chars),  # why no verdict: the call failed, or the answer was not in the asked format
    _optional("grade", Float),  # 0-10 on the problem's judge_criteria
    _optional("gaming", Boolean),  # the reviewer says it games the score: SUSPECT until a person decides
    _optional("critique", Chars),  # shown in the prompts of the program's children (bounded, escaped)
    _required("details", JSON, default=dict),
    _required("created_at", _WHEN, default=utcnow),
    Index("ix_judgements_run_program", "run_id", "program_id"),
)

Receipt = Table(
    "receipts", metadata,
    # Proof that a batch of candidates was committed, by a token the writer chose before its first try. A
    # connection can drop after the server committed but before the client heard so. The retry then finds the
    # receipt and returns what was recorded instead of recording the candidates a second time.
    Column("token", String(32), primary_key=True),
    _required("run_id", Integer, ForeignKey("runs.id")),
    _required("first_seq", Integer),
    _required("count", Integer),
    Index("ix_receipts_run_id", "run_id"),
)
