"""Proposals record their LLM call attempts and how they were made (model choice, instruction, cache hit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.operations import Operations

VERSION = 2


def upgrade(op: Operations) -> None:
    # Existing proposals were one call each, made with nothing worth recording in details.
    op.add_column("proposals", sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("proposals", sa.Column("details", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
