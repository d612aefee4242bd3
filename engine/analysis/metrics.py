"""Ranking a run's programs by any of its named metrics: `best --by METRIC`, `best --pareto A,B`, and constraints.

The settings a run started with say each metric's direction (`metrics_maximize`, the primary follows `maximize`)
and the limits to keep under (`constraints`). A program over any limit, or without a constrained metric, ranks
after every program within all of them; within each group programs rank by the metric, ties to the earlier.
Selection during the search uses the primary score alone; these rankings are for the person reading the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evoforge.db import ProgramInfo, RunInfo
from evoforge.engine.propose.judge import JUDGE_METRIC
from evoforge.evaluators import ProblemError


@dataclass(frozen=True)
class MetricSpec:
    """A run's metrics as its problem declared them when the run started."""

    primary: str
    maximize: bool
    directions: Mapping[str, bool]
    constraints: Mapping[str, float]

    @classmethod
    def of(cls, run: RunInfo) -> MetricSpec:
        settings = run.config["settings"]
        return cls(primary=settings.get("primary_metric", "score"), maximize=bool(settings["maximize"]),
                   directions=dict(settings.get("metrics_maximize") or {}),
                   constraints={k: float(v) for k, v in (settings.get("constraints") or {}).items()})

    def maximized(self, name: str) -> bool:
        if name in (self.primary, "score"):
            return self.maximize
        return self.directions.get(name, True if name == JUDGE_METRIC else self.maximize)

    def value(self, program: ProgramInfo, name: str) -> float | None:
        """The program's value of metric `name`; the primary (also called 'score') is its score."""
        if name in (self.primary, "score"):
            return program.score
        return program.metrics.get(name)

    def over(self, program: ProgramInfo) -> list[str]:
        """The constrained metrics this program is over the limit of (or lacks)."""
        return [name for name, limit in self.constraints.items()
                if (value := self.value(program, name)) is None or value > limit]


def known_metrics(spec: MetricSpec, programs: Sequence[ProgramInfo]) -> list[str]:
    """Every metric name the programs recorded, the primary first."""
    names = dict.fromkeys([spec.primary])
    for p in programs:
        names.update(dict.fromkeys(p.metrics))
    return list(names)


def _check(spec: MetricSpec, programs: Sequence[ProgramInfo], name: str, where: str) -> None:
    known = known_metrics(spec, programs)
    if name not in known and name != "score":
        raise ProblemError(f"{where}: no metric {name!r} in this run\n  fix: use one of {', '.join(known)}")


def rank(spec: MetricSpec, programs: Sequence[ProgramInfo], metric: str | None = None) -> list[ProgramInfo]:
    """Programs best first by `metric` (the primary when None): those within every constraint first."""
    name = metric or spec.primary
    _check(spec, programs, name, f"--by {name}")
    sign = -1.0 if spec.maximized(name) else 1.0

    def key(p: ProgramInfo) -> tuple[Any, ...]:
        value = spec.value(p, name)
        return (bool(spec.over(p)), value is None, 0.0 if value is None else sign * value, p.seq)

    return sorted(programs, key=key)


def pareto(spec: MetricSpec, programs: Sequence[ProgramInfo], a: str, b: str) -> list[ProgramInfo]:
    """The programs no other beats on both `a` and `b` (at least as good on both, better on one), by `a`.

    Only programs within every constraint take part when there are any; programs lacking either metric never do.
    """
    for name in (a, b):
        _check(spec, programs, name, f"--pareto {a},{b}")
    within = [p for p in programs if not spec.over(p)] or list(programs)
    points = [(p, spec.value(p, a), spec.value(p, b)) for p in within]
    signs = (1.0 if spec.maximized(a) else -1.0, 1.0 if spec.maximized(b) else -1.0)
    scored = [(p, signs[0] * x, signs[1] * y) for p, x, y in points if x is not None and y is not None]

    def dominated(x: float, y: float) -> bool:
        return any(u >= x and v >= y and (u > x or v > y) for _, u, v in scored)

    front = [(p, x, y) for p, x, y in scored if not dominated(x, y)]
    return [p for p, _, _ in sorted(front, key=lambda t: (-t[1], -t[2], t[0].seq))]


def parse_pair(text: str) -> tuple[str, str]:
    """'A,B' as two metric names; ProblemError for anything else."""
    names = [n.strip() for n in text.split(",")]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise ProblemError(f"--pareto {text}: name two different metrics, e.g. --pareto score,time_ms")
    return names[0], names[1]
