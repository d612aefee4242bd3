"""Per-model and per-instruction statistics of a run, so a user sees at once which model or prompt helps."""

from __future__ import annotations

from dataclasses import dataclass

from evoforge.db import ModelTotals, Store

ModelStats = ModelTotals
"""What one model's proposals achieved in a run (the database sums it: see ``Store.model_totals``)."""


@dataclass(frozen=True)
class InstructionStats:
    """One evolved prompt instruction and the improvements its children achieved."""

    id: int
    text: str
    uses: int
    improved: int


_COUNTS = ("proposals", "calls", "applied", "valid", "improved", "tokens")  # ModelStats' counts, in order


def model_stats(store: Store, run_id: int) -> list[ModelStats]:
    """Per model, most proposals first."""
    return sorted(store.model_totals(run_id), key=lambda s: (-s.proposals, s.model))


def instruction_stats(store: Store, run_id: int) -> list[InstructionStats]:
    """Evolved instructions, best improvement rate first (empty when the run did not evolve instructions)."""
    texts = {int(e.data["id"]): str(e.data["text"]) for e in store.events(run_id, "instruction")}
    if not texts:
        return []
    uses = dict.fromkeys(texts, 0)
    improved = dict.fromkeys(texts, 0)
    for p in store.proposals(run_id):
        instruction = p.details.get("instruction")
        if instruction is not None and int(instruction) in texts:
            uses[int(instruction)] += 1
            improved[int(instruction)] += bool(p.details.get("improved"))
    ranked = [InstructionStats(i, texts[i], uses[i], improved[i]) for i in texts]
    return sorted(ranked, key=lambda s: (-(s.improved + 1) / (s.uses + 2), s.id))
