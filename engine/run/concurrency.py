"""How many candidates the controller keeps in flight, and how many LLM calls were in flight on average.

A fixed number (`--concurrency N`, or the offline proposer's one per worker) or, by default with an LLM, a number
that follows Little's law: to keep `workers` evaluators busy, proposals must arrive at workers / evaluation time
per second, so about workers x latency / evaluation time calls must be waiting on the model at any moment, plus the
candidates being evaluated. Latency and evaluation time are running averages of what this run measured, so a model
that answers in 20 s gets hundreds of calls in flight and an instant one a handful. The evaluation time is as the
controller sees it, waiting for a free worker included: proposals queueing for the workers hold the number back.

With several answers per prompt (`--answers N`) the unit is a prompt: one call in flight that brings back N
candidates, evaluated one after another. Each call then feeds N evaluations, so the calls waiting on the model are
divided by the answers a call has actually brought back on average (a provider without `n` brings back one).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ADAPTIVE_CEILING = 256  # calls in flight at most by default: beyond this, providers' rate limits answer instead
_SMOOTHING = 0.2  # weight of the newest measurement in the running averages
_HEADROOM = 1.25  # a quarter more than Little's law asks for, against the spread of latencies


class FixedConcurrency:
    """Always the same number in flight."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)

    def limit(self) -> int:
        return self._limit

    def observe_proposal(self, seconds: float, answers: int = 1) -> None:
        """A fixed number learns nothing."""

    def observe_evaluation(self, seconds: float) -> None:
        """A fixed number learns nothing."""


class AdaptiveConcurrency:
    """Enough in flight that `workers` evaluators never wait for proposals, between `floor` and `ceiling`."""

    def __init__(self, workers: int, *, floor: int | None = None, ceiling: int = ADAPTIVE_CEILING) -> None:
        self._workers = max(1, workers)
        self._floor = max(1, floor if floor is not None else 2 * self._workers)
        self._ceiling = max(self._floor, ceiling)
        self.latency_s: float | None = None
        self.evaluation_s: float | None = None
        self.answers: float = 1.0  # answers a call brings back, on average

    def limit(self) -> int:
        if self.latency_s is None or self.evaluation_s is None:
            return self._floor
        waiting_on_model = self._workers * self.latency_s / (max(self.evaluation_s, 1e-3) * max(self.answers, 1.0))
        wanted = math.ceil(_HEADROOM * (waiting_on_model + self._workers))
        return min(self._ceiling, max(self._floor, wanted))

    def observe_proposal(self, seconds: float, answers: int = 1) -> None:
        """A call that took `seconds` and brought back `answers` candidates."""
        first = self.latency_s is None
        self.latency_s = _smoothed(self.latency_s, seconds)
        self.answers = float(answers) if first else _smoothed(self.answers, float(answers))

    def observe_evaluation(self, seconds: float) -> None:
        self.evaluation_s = _smoothed(self.evaluation_s, seconds)


def _smoothed(average: float | None, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        return average if average is not None else 0.0
    return value if average is None else (1 - _SMOOTHING) * average + _SMOOTHING * value


@dataclass
class InFlightMeter:
    """The time-weighted average and the peak of a count (LLM calls waiting on a model) over a run."""

    clock: Callable[[], float] = time.monotonic
    count: int = 0
    peak: int = 0
    _area: float = 0.0
    _since: float = field(default=0.0, init=False)
    _started: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._since = self._started = self.clock()

    def change(self, delta: int) -> None:
        now = self.clock()
        self._area += self.count * (now - self._since)
        self._since = now
        self.count += delta
        self.peak = max(self.peak, self.count)

    def seconds(self) -> float:
        return self.clock() - self._started

    def average(self) -> float:
        seconds = self.seconds()
        area = self._area + self.count * (self.clock() - self._since)
        return area / seconds if seconds > 0 else 0.0
