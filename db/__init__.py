"""The record of every run: SQLAlchemy 2.0 models and a ``Store`` that writes and reads them.

``db`` imports nothing else of evoforge. Open a store with any SQLAlchemy URL::

    store = Store("sqlite:///runs/evoforge.db")
    run = store.create_run(name="capset-1", ...)
    store.record_candidate(run.id, proposal=NewProposal(...), program=NewProgram(...), evaluations=[...])
"""

from db.errors import StoreError
from db.records import (
    EvaluationInfo,
    EventInfo,
    HistoryItem,
    NewCandidate,
    NewEvaluation,
    NewProgram,
    NewProposal,
    ProgramInfo,
    ProgramSummary,
    ProposalInfo,
    RecordedCandidate,
    RunInfo,
)
from db.schema import SCHEMA_VERSION
from db.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "EvaluationInfo",
    "EventInfo",
    "HistoryItem",
    "NewCandidate",
    "NewEvaluation",
    "NewProgram",
    "NewProposal",
    "ProgramInfo",
    "ProgramSummary",
    "ProposalInfo",
    "RecordedCandidate",
    "RunInfo",
    "Store",
    "StoreError",
]
