"""How much an LLM call still in flight may spend, so the spending limits hold with many calls waiting.

A call in flight has not said what it costs. Counting it as large as the largest call so far holds a limit only
while prompts keep their size; but prompts grow during a run (the meta-summary fills up, parents get longer), so
every new call can be larger than any before it, and sixteen such calls in flight overshot a 3,000-token limit by
nearly a third. So each call is admitted with an estimate of its own: the largest call so far, scaled up by how
much more material (the programs, feedback and summaries a prompt shows) its prompt has than that call's had.
Scaling the whole call (fixed text and answer included) by the material errs on the side of the limit. What no
estimate can see is an answer that grows for reasons of its own; the README says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from evoforge.engine.propose.improvements import Improvement
from evoforge.engine.propose.prompts import ParentView


def view_chars(views: Iterable[ParentView]) -> int:
    """The characters a prompt shows of these programs: code, failure, feedback, critique and metrics."""
    return sum(len(v.code) + len(v.error or "") + len(v.feedback or "") + len(v.critique or "")
               + sum(len(name) + 12 for name in v.metrics) for v in views)


def prompt_material(views: Sequence[ParentView], feedback: Iterable[str] = (),
                    improvements: Iterable[Improvement] = ()) -> int:
    """The characters of one prompt that vary from call to call (the rest is the same in every prompt)."""
    return (view_chars(views) + sum(len(line) for line in feedback)
            + sum(40 + sum(len(line) for line in i.change) for i in improvements))


class CallSizes:
    """The largest call so far, and from it what a new call in flight may spend."""

    def __init__(self) -> None:
        self._largest = (0, 0.0, 0)  # the largest call: its tokens, its cost, its prompt's material

    def observe(self, tokens: int, cost: float, material: int) -> None:
        """One call came back: `tokens` and `cost` in all, its prompt's `material` (see prompt_material)."""
        largest_tokens, largest_cost, largest_material = self._largest
        if tokens > largest_tokens:
            largest_tokens, largest_material = tokens, material
        self._largest = (largest_tokens, max(cost, largest_cost), largest_material)

    def largest(self) -> tuple[int, float]:
        """The largest call so far (tokens, cost): what a call whose prompt is not known yet counts as."""
        return self._largest[0], self._largest[1]

    def estimate(self, material: int) -> tuple[int, float]:
        """What a call whose prompt shows `material` characters may spend (tokens, cost): the largest call so far,
        scaled by how much more material this prompt shows than that call's did."""
        tokens, cost, largest_material = self._largest
        scale = max(1.0, material / largest_material) if largest_material > 0 else 1.0
        return math.ceil(tokens * scale), cost * scale
