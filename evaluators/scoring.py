"""Trusted scoring of a candidate's outputs as they stream out of the sandbox, with the cascade's early stops.

The sandbox sends each input's output as soon as `solve` returns it. `StreamScorer` decodes and scores it at once
on the trusted side, so an invalid output, or a cascade stage whose aggregate misses its threshold, stops the
candidate while it is still running the expensive inputs. Nothing here trusts the data: decoding is plain JSON
(`evaluators.wire`), and the only code that runs is the problem's own `score` and `aggregate`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evoforge.evaluators.problem import Problem, bounded
from evoforge.evaluators.problem_api import InvalidOutput, Stage
from evoforge.evaluators.statuses import DEFAULT_BEHAVIOUR_INPUTS
from evoforge.evaluators.wire import WireError, decode_value


@dataclass(frozen=True)
class Step:
    """Inputs scored together; `gate` is the cascade stage whose threshold they must reach (None: no gate)."""

    inputs: tuple[str, ...]
    gate: Stage | None


@dataclass(frozen=True)
class Verdict:
    """Why scoring stopped before the end: the status, its reason, and the 1-based cascade stage if one culled."""

    status: str  # invalid | culled | crashed | duplicate
    error: str
    stage: int | None = None
    duplicate_of: int | None = None  # status duplicate: the program with the same behaviour


def plan_steps(problem: Problem, names: Sequence[str], cascade: bool) -> list[Step]:
    """The order to evaluate `names` in: the cascade's stages first, then the rest (one step when no cascade).

    The last step never has a gate: a threshold exists to save the work that follows it, and nothing follows.
    """
    if not cascade or not problem.cascade:
        return [Step(tuple(names), None)]
    steps = [Step(stage.inputs, stage) for stage in problem.cascade]
    staged = {name for stage in problem.cascade for name in stage.inputs}
    rest = tuple(name for name in names if name not in staged)
    if rest:
        steps.append(Step(rest, None))
    steps[-1] = Step(steps[-1].inputs, None)
    return steps


BehaviourProbe = Callable[[str], "int | None"]
"""Given a behaviour digest, the id of a program that behaved the same, or None."""


def behaviour_window(problem: Problem, steps: Sequence[Step],
                     inputs: str = DEFAULT_BEHAVIOUR_INPUTS) -> tuple[str, ...]:
    """The inputs whose outputs fingerprint a candidate: every input planned ("all"), else the first cascade stage,
    else the first input. With "first", two programs that answer the first inputs alike are twins even where they
    answer the others differently; with "all" a twin scores exactly as its original."""
    if inputs == "all":
        return tuple(name for step in steps for name in step.inputs)
    if problem.cascade and len(steps) > 1:
        return steps[0].inputs
    return steps[0].inputs[:1]


class StreamScorer:
    """Scores outputs in the planned order; `add` returns False as soon as the candidate should be stopped.

    It also fingerprints the candidate's behaviour: a digest of its encoded outputs on the first inputs (on every
    input with `behaviour_inputs="all"`). Two programs with the same digest answer those inputs identically; with a
    `probe` the candidate stops there as a near-duplicate of the program the probe names, before the expensive
    inputs run (with "all" nothing is saved, and a twin is a true one).
    """

    def __init__(self, problem: Problem, source: Mapping[str, Any], steps: Sequence[Step], *,
                 probe: BehaviourProbe | None = None, behaviour_inputs: str = DEFAULT_BEHAVIOUR_INPUTS):
        self.problem = problem
        self.source = source
        self.steps = list(steps)
        self.order = [name for step in self.steps for name in step.inputs]
        self.window = behaviour_window(problem, self.steps, behaviour_inputs)
        self.behaviour: str | None = None
        self._probe = probe
        self._digests: list[str] = []
        self.scores: dict[str, float] = {}  # the primary score per input
        self.input_metrics: dict[str, dict[str, float]] = {}  # the named metrics per input (none: a plain score)
        self.metrics: dict[str, float] = {}  # the named metrics over every input, once `final` has run
        self._feedback: list[str] = []
        self.verdict: Verdict | None = None
        self.seconds = 0.0  # time spent in the trusted score/aggregate
        self._step = 0

    def add(self, name: Any, encoded: Any) -> bool:
        """Score one streamed output; False means stop the candidate (a verdict was reached)."""
        if self.verdict is not None:
            return False
        start = time.perf_counter()
        try:
            self._add(name, encoded)
        finally:
            self.seconds += time.perf_counter() - start
        return self.verdict is None

    def _add(self, name: Any, encoded: Any) -> None:
        if len(self.scores) >= len(self.order) or name != self.order[len(self.scores)]:
            self.verdict = Verdict("crashed", f"the sandbox sent an output for {str(name)[:80]!r} out of order")
            return
        try:
            value = decode_value(encoded)
        except (WireError, ValueError, TypeError, OverflowError, MemoryError, RecursionError) as exc:
            # WireError is the decoder's word for a malformed output; anything else it raised is a decoder
            # bug a hostile output found, and must end this candidate, not the engine.
            self.verdict = Verdict("invalid", f"input {name!r}: the output could not be decoded: {exc}")
            return
        try:
            scored = self.problem.score_input(self.source[name], value)
        except InvalidOutput as exc:
            self.verdict = Verdict("invalid", f"input {name!r}: {exc}")
            return
        self.scores[name] = scored.value
        if scored.metrics:
            self.input_metrics[name] = scored.metrics
        if scored.feedback:
            self._feedback.append(f"input {name}: {scored.feedback}")
        if len(self._digests) < len(self.window):
            self._fingerprint(encoded)
            if self.verdict is not None:
                return
        step = self.steps[self._step]
        if not all(n in self.scores for n in step.inputs):
            return
        self._step += 1
        if step.gate is None:
            return
        score = self._aggregate(step.inputs)
        if score is None or self.problem.passes(step.gate, score):
            return
        relation = "below" if self.problem.settings.maximize else "above"
        self.verdict = Verdict("culled", f"culled at cascade stage {self._step}: its score {score:g} on "
                                         f"{', '.join(step.inputs)} is {relation} the threshold "
                                         f"{step.gate.threshold:g}", self._step)

    def _fingerprint(self, encoded: Any) -> None:
        self._digests.append(hashlib.sha256(json.dumps(encoded, sort_keys=True).encode()).hexdigest())
        if len(self._digests) < len(self.window):
            return
        self.behaviour = hashlib.sha256("".join(self._digests).encode()).hexdigest()
        original = self._probe(self.behaviour) if self._probe is not None else None
        if original is not None:
            self.verdict = Verdict("duplicate", f"same outputs as program {original} on {', '.join(self.window)}",
                                   duplicate_of=original)

    def _aggregate(self, names: Sequence[str]) -> float | None:
        """The problem's aggregate over names; None (with an 'invalid' verdict) if it refuses or is not finite."""
        try:
            score = self.problem.aggregate({n: self.scores[n] for n in names}, self.source)
        except Exception as exc:  # the trusted aggregate refusing these scores makes the program invalid
            self.verdict = Verdict("invalid", f"aggregate() raised {type(exc).__name__}: {exc}")
            return None
        if not math.isfinite(score):
            self.verdict = Verdict("invalid", f"aggregate() returned {score}, not a finite number")
            return None
        return score

    def final(self, names: Sequence[str]) -> float | None:
        """The aggregate over every input, in the caller's order (None with a verdict if it is refused)."""
        start = time.perf_counter()
        try:
            self.scores = {name: self.scores[name] for name in names}
            score = self._aggregate(names)
            if score is not None and self.input_metrics:
                score = self._aggregate_metrics(names, score)
            return score
        finally:
            self.seconds += time.perf_counter() - start

    def _aggregate_metrics(self, names: Sequence[str], score: float) -> float | None:
        """Fill `metrics` (the primary is the score itself); None with an 'invalid' verdict if one is refused."""
        per_input = {n: self.input_metrics[n] for n in names if n in self.input_metrics}
        try:
            metrics = self.problem.aggregate_metrics(per_input, self.source)
        except Exception as exc:  # as for the score: the trusted aggregate refusing them makes the program invalid
            self.verdict = Verdict("invalid", f"aggregate() of the metrics raised {type(exc).__name__}: {exc}")
            return None
        refused = [name for name, value in metrics.items() if not math.isfinite(value)]
        if refused:
            self.verdict = Verdict("invalid", f"aggregate() of metrics {refused} is not a finite number")
            return None
        self.metrics = {**metrics, self.problem.settings.primary_metric: score}
        return score

    @property
    def feedback(self) -> str | None:
        """What score() said about the outputs, one line per input that said something, bounded; None if nothing."""
        return bounded("\n".join(self._feedback)) if self._feedback else None

    @property
    def complete(self) -> bool:
        return len(self.scores) == len(self.order)
