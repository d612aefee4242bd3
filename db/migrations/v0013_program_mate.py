"""Programs record a crossover's second parent (mate_id)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.operations import Operations

VERSION = 13


def upgrade(op: Operations) -> None:
    # Programs recorded before this step came from no crossover prompt: NULL, read back as none.
    op.add_column("programs", sa.Column("mate_id", sa.Integer, nullable=True))
