"""Receipts of committed candidate batches, so a retry after a lost acknowledgement records nothing twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.operations import Operations

VERSION = 4


def upgrade(op: Operations) -> None:
    # Batches recorded before this step have no receipt; they were never retried against one.
    op.create_table(
        "receipts",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("first_seq", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index("ix_receipts_run_id", "receipts", ["run_id"])
