"""Show a search's progress: a live bar on a terminal, plain periodic lines in a log."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

from evoforge.engine.run.stats import RunStats

if TYPE_CHECKING:  # rich loads only when a terminal shows the bar
    from rich.progress import Progress, TaskID


def format_score(score: float | None) -> str:
    return "-" if score is None else f"{score:.6g}"


def status_line(stats: RunStats) -> str:
    """One line: best score, valid rate, throughput and cost so far; with a model, the calls (and how many failed
    after their retries, so a dead server shows) and the proposals answered offline beside it, so that a budget
    that is not all calls reads as such."""
    parts = [f"{stats.calls} calls"] if stats.calls else []
    if stats.failed_calls:
        parts.append(f"{stats.failed_calls} failed")
    if 0 < stats.offline < stats.done:  # beside a model; a run with no model is offline throughout
        parts.append(f"{stats.offline} offline")
    spend = f"${stats.cost:.4f}" + (f" ({', '.join(parts)})" if parts else "")
    valid = f"{stats.valid_rate:.0%}" if stats.evaluated else "-"  # duplicates only: nothing failed yet either
    return (f"best {format_score(stats.best_score)} | valid {valid} | "
            f"{stats.throughput:.2f} cand/s | {spend}")


class ProgressDisplay:
    """Context manager fed with RunStats after every candidate."""

    def __init__(self, name: str, stats: RunStats, *, enabled: bool = True) -> None:
        self._name = name
        self._enabled = enabled
        self._live = enabled and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_logged = -1
        self._every = max(1, stats.budget // 10)

    def __enter__(self) -> ProgressDisplay:
        if self._live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[line]}"), TimeElapsedColumn(),
                                      console=Console(stderr=True))
            self._progress.__enter__()
            self._task = self._progress.add_task(self._name, total=None, line="")
        return self

    def update(self, stats: RunStats) -> None:
        if not self._enabled:
            return
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=stats.done, total=stats.budget, line=status_line(stats))
        elif stats.done // self._every != self._last_logged:
            self._last_logged = stats.done // self._every
            print(f"[{self._name}] {stats.done}/{stats.budget} candidates | {status_line(stats)}",
                  file=sys.stderr, flush=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
