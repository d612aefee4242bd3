"""Indexes that let the pages and listings of a 100,000-program run read narrow indexes instead of whole rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.operations import Operations

VERSION = 12

PROGRAM_INDEXES = {
    "ix_programs_run_origin_status": ["run_id", "origin", "status"],
    "ix_programs_run_rejected": ["run_id", "rejected_at"],
    "ix_programs_run_held_out": ["run_id", "held_out_score"],
    "ix_programs_run_island_score": ["run_id", "island", "status", "score"],
    "ix_programs_run_seq_outcome": ["run_id", "seq", "status", "score", "island", "origin", "rejected_at"],
}


def upgrade(op: Operations) -> None:
    # Indexes only: no row is rewritten, so a long run's database upgrades in seconds.
    for name, columns in PROGRAM_INDEXES.items():
        op.create_index(name, "programs", columns)
    op.create_index("ix_proposals_run_spend", "proposals",
                    ["run_id", "model", "attempts", "cost", "prompt_tokens", "completion_tokens"])
