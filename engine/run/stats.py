"""Running totals of a search, for the progress bar, the summary and the throughput benchmark."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class RunStats:
    """Counts and time split of the candidates this process has handled (plus the run's earlier totals)."""

    budget: int
    attempts: int = 0  # proposals started, the budget's unit (including those made before a resume)
    done: int = 0  # proposals finished and recorded (including those made before a resume)
    evaluated: int = 0  # candidates evaluated in a sandbox by this process
    valid: int = 0  # of those, status ok
    failed_proposals: int = 0  # the model failed, or its answer could not be applied
    duplicates: int = 0  # same normalised code, or (behaviour_duplicates of them) same outputs on the first inputs
    behaviour_duplicates: int = 0
    best_score: float | None = None
    best_program_id: int | None = None
    cost: float = 0.0  # USD spent on LLM calls (including before a resume)
    calls: int = 0  # LLM calls made (including before a resume); cache and replay hits are not calls
    tokens: int = 0  # prompt plus completion tokens of those calls
    retries: int = 0  # extra requests made by retrying transient faults (this process)
    failed_calls: int = 0  # calls that failed after their retries (this process)
    stop_reason: str | None = None  # why the run stopped early (a spending limit), None if it ran its budget
    stopped_by_failure: bool = False  # the stop was a failure (no model can answer), not a limit reached
    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add_time(self, part: str, seconds: float) -> None:
        self.seconds[part] += seconds

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def valid_rate(self) -> float:
        return self.valid / self.evaluated if self.evaluated else 0.0

    @property
    def throughput(self) -> float:
        """Candidates handled per second by this process."""
        handled = self.evaluated + self.failed_proposals + self.duplicates
        return handled / self.elapsed if self.elapsed > 0 else 0.0
