"""Runs record the process searching them and its heartbeat (holder_host, holder_pid, heartbeat_at)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.operations import Operations

VERSION = 14


def upgrade(op: Operations) -> None:
    # No run of an older evoforge is held: NULL, so any of them resumes as before.
    op.add_column("runs", sa.Column("holder_host", sa.String(255), nullable=True))
    op.add_column("runs", sa.Column("holder_pid", sa.Integer, nullable=True))
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
