"""Executors run evaluations away from the event loop: a local sandbox pool now, Ray actors on a cluster."""

from __future__ import annotations

import asyncio
from typing import Protocol

from evaluators import Evaluation, SandboxPool


class Executor(Protocol):
    """Evaluates a program's code on the training (or held-out) inputs without blocking the loop."""

    async def evaluate(self, code: str, *, held_out: bool = False) -> Evaluation: ...

    def close(self) -> None: ...


class LocalExecutor:
    """A pool of sandbox workers on this machine, one evaluation per worker at a time."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool

    async def evaluate(self, code: str, *, held_out: bool = False) -> Evaluation:
        return await asyncio.to_thread(self.pool.evaluate, code, held_out=held_out)

    def close(self) -> None:
        self.pool.close()
