"""Ordered schema migrations: step N turns a version N-1 database into version N, in one transaction.

A new database is created from ``db.models`` directly; these steps exist for databases an older evoforge made.
Each step is a module ``vNNNN_what.py`` with ``VERSION`` and ``upgrade(op)``, where ``op`` is Alembic's
``Operations`` (portable ALTER TABLE, batch mode for SQLite). tests/test_migrations.py checks that upgrading the
oldest database gives exactly the tables, columns and indexes the models describe, so a model change without its
step fails there.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from evoforge.db.migrations import (
    v0001_baseline,
    v0002_proposal_attempts_details,
    v0003_program_behaviour,
    v0004_receipts,
    v0006_metrics_feedback,
    v0011_judgements,
    v0012_page_indexes,
    v0013_program_mate,
    v0014_run_holder,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

STEPS: tuple[ModuleType, ...] = (v0001_baseline, v0002_proposal_attempts_details, v0003_program_behaviour,
                                 v0004_receipts, v0006_metrics_feedback, v0011_judgements, v0012_page_indexes,
                                 v0013_program_mate, v0014_run_holder)
"""Every step in order of VERSION. Numbers may have gaps, but a new step is always numbered above LATEST as it lands:
a database at LATEST is taken to have every step below it, so a step slipped in under it would never run there."""

LATEST = STEPS[-1].VERSION
"""The schema version this evoforge reads and writes."""

assert all(a.VERSION < b.VERSION for a, b in zip(STEPS, STEPS[1:])), "migration steps must be in VERSION order"


def apply(connection: Connection, found: int, target: int = LATEST) -> list[str]:
    """Run the steps after version ``found`` up to ``target`` on an open transaction; return what each did."""
    if not 0 <= found <= target <= LATEST:
        raise ValueError(f"cannot migrate from schema version {found} to {target} (this evoforge knows 0..{LATEST})")
    # Alembic is imported only here: every command opens the database, few upgrade it.
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    op = Operations(MigrationContext.configure(connection))
    done = []
    for step in (step for step in STEPS if found < step.VERSION <= target):
        step.upgrade(op)
        assert step.__doc__, f"migration {step.VERSION} says what it does in its docstring"
        done.append(f"{step.VERSION}: {step.__doc__.strip().splitlines()[0]}")
    return done
