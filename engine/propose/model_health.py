"""Rest a model that keeps failing, so a run goes on with the others instead of stalling on a dead provider."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evoforge.engine.run.config import ModelEntry


@dataclass
class _State:
    consecutive_failures: int = 0
    rests: int = 0
    resting_until: float = 0.0


class ModelHealth:
    """After `failures_to_rest` failed calls in a row a model rests; each further rest lasts twice as long."""

    def __init__(self, *, failures_to_rest: int = 3, rest_s: float = 30.0, max_rest_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures_to_rest = failures_to_rest
        self.rest_s = rest_s
        self.max_rest_s = max_rest_s
        self._clock = clock
        self._states: dict[str, _State] = {}

    def record(self, model: str, ok: bool) -> None:
        """Note the outcome of one call (after its retries)."""
        state = self._states.setdefault(model, _State())
        if ok:
            state.consecutive_failures = 0
            state.rests = 0
            return
        state.consecutive_failures += 1
        if state.consecutive_failures >= self.failures_to_rest:
            state.resting_until = self._clock() + min(self.rest_s * 2**state.rests, self.max_rest_s)
            state.rests += 1
            state.consecutive_failures = 0

    def available(self, models: Sequence[ModelEntry]) -> tuple[list[ModelEntry], float]:
        """The models not resting now; if all rest, none and the seconds until the first one is back."""
        now = self._clock()
        ready = [m for m in models if self._states.get(m.name, _State()).resting_until <= now]
        if ready:
            return ready, 0.0
        return [], min(self._states[m.name].resting_until for m in models) - now

    def resting(self) -> list[str]:
        """Names of the models resting now."""
        now = self._clock()
        return [name for name, s in self._states.items() if s.resting_until > now]
