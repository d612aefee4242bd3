"""Settings of the island model, validated when built so that a bad value fails before a run starts."""

from __future__ import annotations

import math
from dataclasses import dataclass


class IslandConfigError(ValueError):
    """An `IslandConfig` field has an unusable value; the message names the field and the fix.

    `field` and `problem` (the message after the field's name) let a caller name the setting as its user knows it,
    e.g. the command-line flag, without rewriting the text."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"IslandConfig.{field} {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class IslandConfig:
    """How the population is split, how parents are sampled and how often weak islands restart."""

    num_islands: int = 4
    """Independent sub-populations. More islands keep more diversity; 1 disables resets (no worst half)."""

    parents_per_prompt: int = 2
    """k: parents shown in one prompt, drawn from distinct clusters while the island has enough of them."""

    temperature_init: float = 0.1
    """Cluster-sampling temperature at the start of each period, on scores normalised to [0, 1] per island."""

    temperature_period: int = 30_000
    """Registrations on one island after which its temperature returns to `temperature_init` (FunSearch's saw-tooth:
    T = init * (1 - (n % period) / period), so selection sharpens as an island grows, then loosens again)."""

    reset_period: int = 400
    """After this many `register` calls (all islands together) `needs_reset()` turns true: the worst half restarts."""

    length_temperature: float = 1.0
    """Temperature of the within-cluster choice; lower prefers the shortest program of a cluster more strongly."""

    selection: str = "clusters"
    """How a cluster is drawn: "clusters" (FunSearch: softmax of normalised scores over the temperature) or
    "power_law" (ShinkaEvolve: rank r, best = 1, drawn with weight r ** -power_alpha, scale-free in the scores)."""

    power_alpha: float = 1.0
    """The exponent of "power_law" selection; higher exploits the top ranks more."""

    offspring_penalty: float = 0.0
    """With "power_law": a cluster's weight is divided by (1 + children of its programs) ** offspring_penalty, so
    parents that were tried often give way to fresh ones (0: off)."""

    elite_share: float = 0.5
    """Chance that a prompt's best parent is the island's best program (exploitation of the elite; 0: never, as
    FunSearch). 0.5 was best in benchmarks/QUALITY.md."""

    elite_member: str = "first"
    """Which program of the island's best behaviour is the elite: "first" (the earliest program with the best score,
    the seed until something beats it) or "any" (any program of the best program's cluster, drawn uniformly, so the
    elite's prompts spread over the variants that behave like it instead of re-mutating one program)."""

    elite_scope: str = "island"
    """Whose best program is the elite: "island" (the prompt's own island's) or "all" (the best of every island, so
    an improvement found on one island is exploited by all of them at once instead of after the next reset)."""

    def __post_init__(self) -> None:
        _positive_int("num_islands", self.num_islands)
        _positive_int("parents_per_prompt", self.parents_per_prompt)
        _positive_float("temperature_init", self.temperature_init)
        _positive_int("temperature_period", self.temperature_period)
        _positive_int("reset_period", self.reset_period)
        _positive_float("length_temperature", self.length_temperature)
        if self.selection not in SELECTIONS:
            raise IslandConfigError("selection", f"must be one of {SELECTIONS}, got {self.selection!r}")
        _positive_float("power_alpha", self.power_alpha)
        _share("offspring_penalty", self.offspring_penalty, upper=math.inf)
        if self.offspring_penalty > 0 and self.selection != "power_law":
            raise IslandConfigError("offspring_penalty", "only applies to selection='power_law'; set "
                                    "selection='power_law' or offspring_penalty=0")
        _share("elite_share", self.elite_share, upper=1.0)
        if self.elite_member not in ELITE_MEMBERS:
            raise IslandConfigError("elite_member", f"must be one of {ELITE_MEMBERS}, got "
                                    f"{self.elite_member!r}")
        if self.elite_scope not in ELITE_SCOPES:
            raise IslandConfigError("elite_scope", f"must be one of {ELITE_SCOPES}, got {self.elite_scope!r}")


SELECTIONS = ("clusters", "power_law")
ELITE_MEMBERS = ("first", "any")
ELITE_SCOPES = ("island", "all")


def _share(name: str, value: object, *, upper: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= upper \
            or math.isnan(value):
        raise IslandConfigError(name, f"must be a number in [0, {upper}], got {value!r}")


def _positive_int(name: str, value: object) -> None:
    # bool is an int subclass; `num_islands=True` is a typo, not a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise IslandConfigError(
            name, f"must be an int, got {type(value).__name__} {value!r}; pass a whole number >= 1"
        )
    if value < 1:
        raise IslandConfigError(name, f"must be >= 1, got {value}; pass a whole number >= 1")


def _positive_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise IslandConfigError(
            name, f"must be a number, got {type(value).__name__} {value!r}; pass a finite number > 0"
        )
    if not math.isfinite(value) or value <= 0:
        raise IslandConfigError(name, f"must be finite and > 0, got {value!r}; pass e.g. 0.1")
