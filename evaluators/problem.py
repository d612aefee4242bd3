"""A loaded problem: its seed, settings and inputs, and the trusted scoring around its `score` and `aggregate`.

`evaluators.loader.load_problem` builds a `Problem` from a problem file; the engine scores with it, and the
sandbox server runs candidates against the same object.
"""

from __future__ import annotations

import hashlib
import math
import traceback
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from evoforge.evaluators.problem_api import InvalidOutput, Scored, Settings, Stage
from evoforge.evaluators.project import ProjectSource

FEEDBACK_CHARS = 2000  # of score()'s feedback kept for one evaluation (and shown to the children's model)


@dataclass(frozen=True)
class InputScore:
    """What the trusted score said about one output: the primary score, the named metrics, the feedback text."""

    value: float
    metrics: dict[str, float]
    feedback: str


def escape_controls(text: str) -> str:
    """Text with control and format characters (newline and tab kept) written as escapes (`\\x1b`, `\\u202e`), so
    that it cannot drive a terminal or reorder what a page shows."""
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
                   else repr(ch)[1:-1] for ch in text)


def bounded(text: str, limit: int = FEEDBACK_CHARS) -> str:
    """Text cut to `limit` characters, saying so when cut."""
    text = escape_controls(text)
    if len(text) <= limit:
        return text
    return text[: limit - 20] + " [... cut]"


@dataclass(frozen=True)
class EvolvedFunction:
    """One `@evolve` function: its name and seed source (the `def` without decorators)."""

    name: str
    source: str
    lineno: int


@dataclass
class Problem:
    """A loaded problem: description, seed, settings, inputs and the trusted scoring functions."""

    path: Path
    name: str
    description: str
    source: str
    evolved: tuple[EvolvedFunction, ...]
    settings: Settings
    params: dict[str, Any]
    inputs: dict[str, Any]
    held_out: dict[str, Any]
    module: ModuleType = field(repr=False)
    overrides: dict[str, str] = field(default_factory=dict)
    cascade: tuple[Stage, ...] = ()  # early stages; the inputs they do not name are evaluated last
    warnings: tuple[str, ...] = ()  # likely mistakes that do not stop the problem from loading
    # What the evolved functions see besides their arguments (see evaluators.inside.namespace): the allowed modules the
    # file imported (alias -> module, e.g. np -> numpy), and the helpers (name -> source) and constants it EXPOSEs.
    candidate_modules: dict[str, str] = field(default_factory=dict)
    exposed_helpers: dict[str, str] = field(default_factory=dict)
    exposed_constants: dict[str, Any] = field(default_factory=dict)
    # A problem that evolves the marked blocks of a project folder (PROJECT = Project(...)) instead of @evolve
    # functions: its program is the set of blocks (see evaluators.project).
    project: ProjectSource | None = None

    @property
    def seed_code(self) -> str:
        """The starting program: the evolved functions' seed sources in file order, or the project's blocks."""
        if self.project is not None:
            return self.project.seed_program()
        return "\n\n".join(f.source for f in self.evolved) + "\n"

    @property
    def evolved_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.evolved)

    @property
    def source_hash(self) -> str:
        """The problem file's hash, and its project's files' too: a sandbox must run what the engine loaded."""
        digest = hashlib.sha256(self.source.encode()).hexdigest()
        if self.project is None:
            return digest
        return hashlib.sha256(f"{digest}{self.project.source_hash}".encode()).hexdigest()

    def score_output(self, input_value: Any, output: Any) -> float:
        """The primary score of one output (see `score_input`)."""
        return self.score_input(input_value, output).value

    def score_input(self, input_value: Any, output: Any) -> InputScore:
        """Run the trusted score on one output; raise InvalidOutput unless it accepts it with finite numbers.

        score() returns a number, a dict of named metrics holding `Settings.primary_metric`, or `Scored` (either of
        those with feedback text).
        """
        try:
            value = self.module.score(input_value, output)
        except Exception as exc:  # the trusted check rejecting an output is the normal way to say "invalid"
            line = line_in_file(exc, self.path)
            where = f" (raised at {self.path.name}:{line})" if line else ""
            returned = "solve() returned None; " if output is None else ""
            raise InvalidOutput(f"{returned}score() rejected the output: {type(exc).__name__}: {exc}{where}") from exc
        feedback = ""
        if isinstance(value, Scored):
            if not isinstance(value.feedback, str):
                raise InvalidOutput(self._where(f"score() returned Scored(feedback={type(value.feedback).__name__}), "
                                                "not text"))
            feedback, value = value.feedback, value.value
        if isinstance(value, Mapping):
            metrics = {}
            for name, number in value.items():
                if not isinstance(name, str):
                    raise InvalidOutput(self._where(f"score() returned a metric named {name!r}; name metrics with "
                                                    "strings"))
                metrics[name] = self._number(number, f"metric {name!r}")
            primary = self.settings.primary_metric
            if primary not in metrics:
                raise InvalidOutput(self._where(
                    f"score() returned metrics {sorted(metrics)} without the primary metric {primary!r}; return it, "
                    "or name another with Settings(primary_metric=...)"))
            return InputScore(metrics[primary], metrics, feedback)
        return InputScore(self._number(value, "the score"), {}, feedback)

    def _number(self, value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            hint = ("; does a path of score() end without `return`?" if value is None else
                    "; return one number, a dict of named metrics, or Scored(value, feedback=...) (from evoforge) "
                    "for a number with text" if isinstance(value, (tuple, list)) else "")
            raise InvalidOutput(self._where(f"score() returned {type(value).__name__} as {what}, not a number{hint}"))
        try:
            value = float(value)
        except Exception as exc:  # a numpy array of several values, an object whose __float__ raises
            shape = getattr(value, "shape", None)
            held = f" of shape {tuple(shape)}" if shape is not None else ""
            raise InvalidOutput(self._where(f"score() returned {type(value).__name__}{held} as {what}, not a number "
                                            f"({exc}); return one float")) from None
        if not math.isfinite(value):
            raise InvalidOutput(self._where(f"score() returned {value} as {what}, not a finite number"))
        return value

    def _where(self, what: str) -> str:
        """A message about what score() returned, pointing at score's definition in the problem file."""
        line = getattr(getattr(self.module.score, "__code__", None), "co_firstlineno", None)
        return f"{what} ({self.path.name}:{line})" if line else what

    def aggregate(self, scores: Mapping[str, float], inputs: Mapping[str, Any]) -> float:
        """Combine per-input scores into the program's score (the problem's `aggregate`, else the mean)."""
        custom = getattr(self.module, "aggregate", None)
        names = list(scores)
        if custom is None:
            return float(sum(scores[n] for n in names) / len(names))
        return float(custom([scores[n] for n in names], [inputs[n] for n in names]))

    def aggregate_metrics(self, per_input: Mapping[str, Mapping[str, float]], inputs: Mapping[str, Any]
                          ) -> dict[str, float]:
        """Each named metric over the inputs that reported it, combined as the score is (`aggregate`, else mean)."""
        names: dict[str, None] = {}
        for metrics in per_input.values():
            names.update(dict.fromkeys(metrics))
        return {metric: self.aggregate({n: m[metric] for n, m in per_input.items() if metric in m}, inputs)
                for metric in names}

    def seed_bound_warning(self, score: float) -> str | None:
        """Why a seed scoring at or past Settings(bound) is most likely a mistake, or None when it is not."""
        settings = self.settings
        if not settings.beyond_bound(score):
            return None
        side = "above" if settings.maximize else "below"
        return (f"{self.path}: the seed scores {score:.6g}, at or {side} Settings(bound={settings.bound:g}), the "
                "best an honest program can reach: every program that beats it would be held SUSPECT (out of "
                "selection) until a person accepts it; check score() and aggregate(), the direction "
                f"(maximize={settings.maximize}) and the bound")

    def passes(self, stage: Stage, score: float) -> bool:
        """Whether an aggregate score over a stage's inputs is good enough to go on to the next stage."""
        return score >= stage.threshold if self.settings.maximize else score <= stage.threshold

    def is_better(self, a: float, b: float | None) -> bool:
        """True if score a beats score b under this problem's direction (anything beats None)."""
        if b is None:
            return True
        return a > b if self.settings.maximize else a < b


def line_in_file(exc: BaseException, path: Path) -> int | None:
    """The deepest traceback line that lies in the problem file, to point the user at it."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return line
