"""What recently improved the scores: a short summary for the prompt, computed by the engine (--meta-summary K).

ShinkaEvolve has a model write a meta-scratchpad of what worked; here the engine writes it from what the controller
already holds when a child beats its parent (the two programs' code and scores), so it costs no call, is the same
under a seed, and a resume rebuilds it exactly from the record. It is bounded: the last K improvements, each shown
as at most CHANGE_LINES changed lines of at most LINE_CHARS characters.
"""

from __future__ import annotations

import difflib
from collections import deque
from dataclasses import dataclass

CHANGE_LINES = 8  # changed lines shown per improvement; the rest are counted
LINE_CHARS = 120  # a longer changed line is cut here


@dataclass(frozen=True)
class Improvement:
    """One child that beat its parent: the two scores and the lines that changed ("- old", "+ new")."""

    program_id: int
    parent_id: int
    before: float
    after: float
    change: tuple[str, ...]


def changed_lines(old: str, new: str) -> tuple[str, ...]:
    """The lines a change removed ("- ") and added ("+ "), without indentation, bounded as the module says."""
    lines = [f"{line[0]} {line[1:].strip()}" for line in difflib.unified_diff(old.splitlines(), new.splitlines(),
                                                                             lineterm="", n=0)
             if line[:1] in "+-" and not line.startswith(("---", "+++")) and line[1:].strip()]
    shown = [line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 3] + "..." for line in lines[:CHANGE_LINES]]
    if len(lines) > CHANGE_LINES:
        shown.append(f"... and {len(lines) - CHANGE_LINES} more changed lines")
    return tuple(shown)


class ImprovementLog:
    """The last `size` improvements in the order they were recorded; a program a person rejected is hidden, not
    removed, so the log holds the same entries whether it was built live or replayed from the record on resume."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"ImprovementLog: size must be >= 1, got {size}")
        self._entries: deque[Improvement] = deque(maxlen=size)
        self._hidden: set[int] = set()

    @property
    def size(self) -> int:
        """How many improvements it keeps."""
        return self._entries.maxlen or 0

    def add(self, improvement: Improvement) -> None:
        self._entries.append(improvement)
        self._hidden &= {e.program_id for e in self._entries}  # only marks of entries still held are kept

    def hide(self, program_id: int) -> None:
        """Leave a program a person rejected out of the prompt (a rejected program is no lesson to learn from)."""
        if any(e.program_id == program_id for e in self._entries):
            self._hidden.add(program_id)

    def recent(self) -> tuple[Improvement, ...]:
        """The improvements to show, oldest first."""
        return tuple(e for e in self._entries if e.program_id not in self._hidden)
