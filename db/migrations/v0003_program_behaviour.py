"""Programs record a digest of their outputs on the first inputs, so near-duplicates are recognised."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.operations import Operations

VERSION = 3


def upgrade(op: Operations) -> None:
    # Programs recorded before this step have no digest: they are simply never matched as originals.
    op.add_column("programs", sa.Column("behaviour", sa.String(64), nullable=True))
