"""Running totals of a search, for the progress bar, the summary and the throughput benchmark."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field


def valid_rate(valid: int, evaluated: int) -> float:
    """The valid rate, one definition for the progress bar, `runs`, `show` and the pages: of the candidates the
    search proposed and evaluated, the share that came out valid (status ok). Duplicates (never evaluated) and the
    seed and people's programs (never proposed) are left out."""
    return valid / evaluated if evaluated else 0.0


@dataclass
class RunStats:
    """Counts and time split of the candidates this process has handled (plus the run's earlier totals)."""

    budget: int
    attempts: int = 0  # proposals started, the budget's unit (including those made before a resume)
    done: int = 0  # proposals finished and recorded (including those made before a resume)
    done_before: int = 0  # proposals a resumed run had finished before this process started
    evaluated: int = 0  # proposed candidates evaluated in a sandbox (including before a resume)
    valid: int = 0  # of those, status ok (including before a resume)
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
    offline: int = 0  # proposals the offline proposer answered beside a model (including before a resume)
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
        return valid_rate(self.valid, self.evaluated)

    @property
    def throughput(self) -> float:
        """Candidates handled per second by this process (a resumed run's earlier ones are not its work)."""
        handled = self.done - self.done_before
        return handled / self.elapsed if self.elapsed > 0 else 0.0
