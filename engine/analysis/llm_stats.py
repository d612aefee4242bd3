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
    return _ordered(store.model_totals(run_id))


def _ordered(stats: list[ModelStats]) -> list[ModelStats]:
    return sorted(stats, key=lambda s: (-s.proposals, s.model))


class ModelTally:
    """A run's per-model stats kept by a long-lived reader (`evoforge serve`): each look sums only the proposals
    recorded since the previous one and adds them to what it holds, as model_stats would sum them all."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._upto = -1
        self._held: dict[str, ModelStats] = {}

    def refresh(self, store: Store) -> list[ModelStats]:
        self._upto, new = store.model_totals_since(self.run_id, after_seq=self._upto)
        for m in new:
            old = self._held.get(m.model)
            self._held[m.model] = m if old is None else ModelTotals(
                m.model, *(getattr(old, f) + getattr(m, f) for f in (*_COUNTS, "cost")))
        return _ordered(list(self._held.values()))


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
