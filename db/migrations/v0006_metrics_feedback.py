"""Programs and evaluations record named metrics and score()'s feedback text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.operations import Operations

VERSION = 6


def upgrade(op: Operations) -> None:
    # Rows recorded before this step had one score and no feedback: NULL in both, read back as none.
    for table in ("programs", "evaluations"):
        op.add_column(table, sa.Column("metrics", sa.JSON, nullable=True))
        op.add_column(table, sa.Column("feedback", sa.Text, nullable=True))
