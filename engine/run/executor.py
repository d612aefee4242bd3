"""Executors run evaluations away from the event loop: a local sandbox pool now, Ray actors on a cluster."""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

from evoforge.engine.run.config import ConfigError, RunConfig, named
from evoforge.engine.run.node_evaluation import NodeEvaluation
from evoforge.evaluators import Evaluation, Problem, SandboxPool
from evoforge.evaluators.scoring import BehaviourProbe


class Executor(Protocol):
    """Evaluates a program's code on the training (or held-out) inputs without blocking the loop."""

    async def evaluate(self, code: str, *, held_out: bool = False, probe: BehaviourProbe | None = None
                       ) -> Evaluation:
        """`probe` lets a near-duplicate stop after its first inputs; an executor may ignore it (the controller
        then compares the evaluation's behaviour digest afterwards)."""
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """A pool of sandbox workers on this machine, one evaluation per worker at a time."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool
        self.node = socket.gethostname()

    async def evaluate(self, code: str, *, held_out: bool = False, probe: BehaviourProbe | None = None
                       ) -> NodeEvaluation:
        # The language check parses the code: here, on the loop's thread, never beside another parse (refusal)
        evaluation = self.pool.refusal(code) or await asyncio.to_thread(self.pool.evaluate, code, held_out=held_out,
                                                                         probe=probe, checked=True)
        return NodeEvaluation.of(evaluation, self.node)

    def close(self) -> None:
        self.pool.close()


def make_executor(problem: Problem, config: RunConfig) -> Executor:
    """The executor the run's settings name: sandbox workers here, or Ray actors (Ray is imported only then)."""
    if not config.executor.ray:
        return LocalExecutor(SandboxPool(problem, config.workers, behaviour_inputs=config.behaviour_inputs))
    try:
        from evoforge.engine.run.ray_executor import RayExecutor
    except ImportError as err:
        raise ConfigError(f"{named('--ray')} needs Ray, which is not installed ({err}); "
                          "pip install 'evoforge[ray]'") from err
    return RayExecutor.start(problem, config.overrides, config.workers, address=config.executor.ray_address,
                             behaviour_inputs=config.behaviour_inputs)
