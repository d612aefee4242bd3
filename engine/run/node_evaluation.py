"""An evaluation together with where it ran: what every executor returns and the controller records.

Its own module so that the executors (the local pool in `executor`, Ray actors in `ray_executor`) share it without
importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from evoforge.evaluators import Evaluation


@dataclass(frozen=True)
class NodeEvaluation(Evaluation):
    """An evaluation together with the machine (or Ray node) whose sandbox ran it, which the database records."""

    node: str | None = None

    @classmethod
    def of(cls, evaluation: Evaluation, node: str) -> NodeEvaluation:
        """``evaluation`` marked as run on ``node``."""
        return cls(**{f.name: getattr(evaluation, f.name) for f in dataclasses.fields(evaluation)}, node=node)
