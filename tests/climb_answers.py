"""A responder for the climb problem (tests/fixtures/climb_problem.py) that reads its prompt as a model would.

It answers with the value of the version the prompt asks to change (Parent A of a crossover, else the last version)
plus a step taken from the prompt and from how often that prompt was asked, so some children beat their parent and
some do not, and a run asks and gets the same as another with the same seed (each with a fresh responder; a resume
keeps its run's responder, as it would keep its model).
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter

_SHOWN = re.compile(r"^## (Version \d+|Parent A)[^\n]*\n```python\n.*?return (-?[\d.]+)", re.S | re.M)


class Climbing:
    """The responder; one per run."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, request: dict) -> str:
        prompt = request["messages"][-1]["content"]
        with self._lock:
            self._seen[prompt] += 1
            occurrence = self._seen[prompt]
        shown = dict(_SHOWN.findall(prompt))
        value = float(shown["Parent A"] if "Parent A" in shown else list(shown.values())[-1])
        step = (zlib.crc32(prompt.encode()) + occurrence) % 7 - 2
        return f"```python\ndef value() -> float:\n    return {value + step + 0.5:.1f}\n```"
