"""A run with a model that also proposes with the offline mutator (`--offline-share F`).

Evaluation is cheap next to an LLM call, and a call is what the user pays for; the offline mutator costs no call
and no token. Each prompt is answered offline with probability F, else by the model, the choice drawn first from
the prompt's seeded Generator, so a seed still fixes the whole run (never chosen by which is free first). An
offline answer is a Proposal of model "offline" like any other: same parents, patching, dedupe, evaluation and
record, and the controller counts no call for it (`Proposal.is_call`), so the spending limits hold the calls alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evoforge.engine.propose.improvements import Improvement
from evoforge.engine.propose.prompts import ParentView
from evoforge.engine.propose.proposers import OfflineProposer, Proposal, Proposer


class HybridProposer:
    """The model's proposer and the offline proposer, one of the two chosen per prompt from the prompt's rng."""

    def __init__(self, model: Proposer, offline: OfflineProposer, offline_share: float) -> None:
        if not 0.0 < offline_share < 1.0:
            raise ValueError(f"offline_share {offline_share} must lie in (0, 1): 0 is the model alone, 1 no model")
        self.model = model
        self.offline = offline
        self.offline_share = offline_share

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator, *,
                      feedback: Sequence[str] = (), inspirations: Sequence[ParentView] = (),
                      mate: ParentView | None = None, improvements: Sequence[Improvement] = (),
                      answers: int = 1) -> list[Proposal]:
        """All `answers` from one of the two: the offline mutator with probability `offline_share`, else the
        model (one call); the rest of `rng` then drives the one chosen, as it would alone."""
        chosen = self.offline if rng.random() < self.offline_share else self.model
        return await chosen.propose(parents, rng, feedback=feedback, inspirations=inspirations, mate=mate,
                                    improvements=improvements, answers=answers)

    def observe(self, proposal: Proposal, improved: bool, rng: np.random.Generator) -> None:
        """Each proposer learns from its own children only (the model's bandit from calls, the offline steps from
        mutations)."""
        (self.offline if proposal.model == "offline" else self.model).observe(proposal, improved, rng)

    def stop_reason(self) -> str | None:
        """The model's: a run that was given a model stops when no model can answer, as without offline
        proposals; the offline mutator finding nothing to change only fails its own candidates."""
        return self.model.stop_reason()
