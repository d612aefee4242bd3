"""Per-model and per-instruction statistics of a run, so a user sees at once which model or prompt helps."""

from __future__ import annotations

from dataclasses import dataclass

from evoforge.db import Store


@dataclass(frozen=True)
class ModelStats:
    """What one model's proposals achieved in a run."""

    model: str
    proposals: int  # answers recorded (cache and replay hits included)
    calls: int  # real calls made
    applied: int  # answers that patched into a program
    valid: int  # programs that evaluated ok
    improved: int  # programs that beat their best parent
    tokens: int
    cost: float


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
    statuses = store.statuses_by_proposal(run_id)
    rows: dict[str, dict[str, float]] = {}
    for p in store.proposals(run_id):
        row = rows.setdefault(p.model, dict.fromkeys((*_COUNTS, "cost"), 0))
        row["proposals"] += 1
        row["calls"] += p.attempts > 0 and p.model != "offline"
        row["applied"] += p.applied
        row["valid"] += statuses.get(p.id) == "ok"
        row["improved"] += bool(p.details.get("improved"))
        row["tokens"] += p.prompt_tokens + p.completion_tokens
        row["cost"] += p.cost
    stats = [ModelStats(model=m, cost=float(r["cost"]), **{k: int(r[k]) for k in _COUNTS}) for m, r in rows.items()]
    return sorted(stats, key=lambda s: (-s.proposals, s.model))


def instruction_stats(store: Store, run_id: int) -> list[InstructionStats]:
    """Evolved instructions, best improvement rate first (empty when the run did not evolve instructions)."""
    texts = {int(e.data["id"]): str(e.data["text"]) for e in store.events(run_id, "instruction")}
    uses = dict.fromkeys(texts, 0)
    improved = dict.fromkeys(texts, 0)
    for p in store.proposals(run_id):
        instruction = p.details.get("instruction")
        if instruction is not None and int(instruction) in texts:
            uses[int(instruction)] += 1
            improved[int(instruction)] += bool(p.details.get("improved"))
    ranked = [InstructionStats(i, texts[i], uses[i], improved[i]) for i in texts]
    return sorted(ranked, key=lambda s: (-(s.improved + 1) / (s.uses + 2), s.id))
