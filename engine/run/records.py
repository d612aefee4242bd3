"""How an evaluation becomes the store's record: one builder for the search, `evoforge add` and held-out scoring,
so that a program's record says the same (status, scores, timings, cascade stage, node) whoever evaluated it."""

from __future__ import annotations

from evoforge.db import NewEvaluation
from evoforge.engine.run.node_evaluation import NodeEvaluation
from evoforge.evaluators import Evaluation


def evaluation_record(ev: Evaluation, kind: str, extra_timings: dict[str, float] | None = None) -> NewEvaluation:
    """An evaluation as the store records it; `extra_timings` adds phases outside the sandbox (the proposal's)."""
    timings = dict(ev.timings)
    timings.update(extra_timings or {})
    return NewEvaluation(kind=kind, status=ev.status, score=ev.score, scores=dict(ev.scores), error=ev.error,
                         timings=timings, compiled=ev.compiled, stage=ev.stage,
                         node=ev.node if isinstance(ev, NodeEvaluation) else None, metrics=dict(ev.metrics),
                         feedback=ev.feedback)
