"""The record of every run: SQLAlchemy 2.0 models and a ``Store`` that writes and reads them.

``db`` imports nothing else of evoforge. Open a store with any SQLAlchemy URL::

    store = Store("sqlite:///runs/evoforge.db")
    run = store.create_run(name="capset-1", ...)
    store.record_candidate(run.id, proposal=NewProposal(...), program=NewProgram(...), evaluations=[...])
"""

from evoforge.db.errors import StoreError
from evoforge.db.records import (
    EvaluationInfo,
    EventInfo,
    HistoryItem,
    JudgementInfo,
    ModelTotals,
    NewCandidate,
    NewEvaluation,
    NewJudgement,
    NewProgram,
    NewProposal,
    ProgramBrief,
    ProgramInfo,
    ProgramSummary,
    ProposalInfo,
    ProposalOutcome,
    RecordedCandidate,
    RunInfo,
    Spend,
)
from evoforge.db.schema import SCHEMA_VERSION, upgrade_database
from evoforge.db.store import DEFAULT_PATIENCE_S, Store

__all__ = [
    "DEFAULT_PATIENCE_S",
    "SCHEMA_VERSION",
    "EvaluationInfo",
    "EventInfo",
    "HistoryItem",
    "JudgementInfo",
    "ModelTotals",
    "NewCandidate",
    "NewEvaluation",
    "NewJudgement",
    "NewProgram",
    "NewProposal",
    "ProgramBrief",
    "ProgramInfo",
    "ProgramSummary",
    "ProposalInfo",
    "ProposalOutcome",
    "RecordedCandidate",
    "RunInfo",
    "Spend",
    "Store",
    "StoreError",
    "upgrade_database",
]
