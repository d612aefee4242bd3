"""Which model answers the next prompt: fixed tiers and weights, or a bandit that learns from outcomes.

AlphaEvolve mixes a fast model for breadth with a strong one for depth; ShinkaEvolve picks models by a bandit.
Both choosers draw only from the rng they are given, so a seed fixes the choice sequence, and both explain each
choice in a small dict that is stored with the proposal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from evoforge.engine.run.config import ModelEntry

COST_FLOOR = 1e-6  # USD per call: a free (local) model is worth its improvement rate over this, not infinity


class ModelChooser(Protocol):
    """Picks one of the available models and learns from what its proposals achieved."""

    def choose(self, available: Sequence[ModelEntry], rng: np.random.Generator) -> tuple[ModelEntry, dict[str, Any]]:
        ...

    def observe(self, model: str, improved: bool, cost: float) -> None: ...


class TierChoice:
    """Strong tier with probability strong_prob, else cheap; by weight within the tier."""

    def __init__(self, strong_prob: float) -> None:
        self.strong_prob = strong_prob

    def choose(self, available: Sequence[ModelEntry], rng: np.random.Generator) -> tuple[ModelEntry, dict[str, Any]]:
        wants_strong = bool(rng.random() < self.strong_prob)  # always drawn: the stream must not depend on tiers
        tier = [m for m in available if m.tier == ("strong" if wants_strong else "cheap")] or list(available)
        weights = np.array([m.weight for m in tier], dtype=float)
        if weights.sum() <= 0:  # the weighted models of this tier are resting: treat the rest alike
            weights = np.ones(len(tier))
        chosen = tier[int(rng.choice(len(tier), p=weights / weights.sum()))]
        return chosen, {"choice": "tier", "strong": wants_strong}

    def observe(self, model: str, improved: bool, cost: float) -> None:
        """Fixed weights learn nothing."""


@dataclass
class _Arm:
    calls: int = 0
    improvements: int = 0
    cost: float = 0.0


class BanditChoice:
    """Thompson sampling on each model's improvement rate, divided by its mean cost per call."""

    def __init__(self) -> None:
        self._arms: dict[str, _Arm] = {}

    def choose(self, available: Sequence[ModelEntry], rng: np.random.Generator) -> tuple[ModelEntry, dict[str, Any]]:
        values: dict[str, float] = {}
        for model in available:
            arm = self._arms.get(model.name, _Arm())
            rate = rng.beta(1 + arm.improvements, 1 + arm.calls - arm.improvements)
            mean_cost = arm.cost / arm.calls if arm.calls else 0.0
            values[model.name] = float(rate / max(mean_cost, COST_FLOOR))
        chosen = max(available, key=lambda m: values[m.name])
        return chosen, {"choice": "bandit", "values": values}

    def observe(self, model: str, improved: bool, cost: float) -> None:
        arm = self._arms.setdefault(model, _Arm())
        arm.calls += 1
        arm.improvements += int(improved)
        arm.cost += cost

    def stats(self) -> dict[str, dict[str, float]]:
        """Calls, improvements and cost per model, as learned so far."""
        return {name: {"calls": a.calls, "improvements": a.improvements, "cost": a.cost}
                for name, a in self._arms.items()}
