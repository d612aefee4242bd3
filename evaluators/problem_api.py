"""The problem-file API: what a problem file imports (`from evoforge import evolve, Settings, Stage, Scored,
compiled_harness`), and `InvalidOutput`, what a rejected output raises.

Problem files are loaded inside every sandbox, so this module imports nothing beyond a few small modules of the
standard library (numba included: it is imported only where a harness is compiled): importing it must stay cheap.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EVOLVE_MARK = "__evoforge_evolve__"
COMPILED_MARK = "__evoforge_compiled__"  # holds a compiled candidate's dispatcher (see inside.jit_compile)
NUMBA_FALLBACKS = ("python", "refuse")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
DEFAULT_JUDGE_CRITERIA = (
    "readability: clear names and structure, no dead code",
    "generality: it would work as well on inputs it was not tuned to, with no hard-coded answers",
    "no signs of gaming the score: it computes its result from its arguments, not from the scorer's quirks",
)


def evolve(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a function as the one evolution rewrites; its body in the problem file is the seed program."""
    setattr(fn, EVOLVE_MARK, True)
    return fn


@dataclass(frozen=True)
class Stage:
    """A cascade stage: evaluate these inputs first, and go on only if their aggregate score reaches threshold.

    Cheap inputs in an early stage let a weak candidate be culled before the expensive inputs run. Inputs named in
    no stage form the last stage, which has no threshold.
    """

    inputs: tuple[str, ...]
    threshold: float


@dataclass(frozen=True)
class Settings:
    """Per-problem evaluation settings; every field can be overridden with `--set field=value`."""

    maximize: bool = True  # higher score is better; False for costs such as excess bins
    time_limit_s: float = 30.0  # wall-clock limit for solve() on one input
    memory_limit_mb: int = 2048  # address-space limit of the sandboxed process
    # Compile the evolved functions with numba.njit (falling back to Python if it cannot): True compiles at the
    # first call; "auto" runs them as Python until they have used about what a compilation costs, then compiles,
    # so that only candidates evaluated over large inputs pay for numba; False never compiles.
    numba: bool | str = False
    # Where numba refuses a candidate (nopython mode cannot compile it): "python" runs it as Python (the reason is
    # printed in its output), "refuse" ends it with status error and the reason (only with numba=True).
    numba_fallback: str = "python"
    # The best score an honest program can reach (an L1 lower bound, a noise floor, accuracy 1.0): a program that
    # reaches it or goes past it is SUSPECT, held out of selection until a person accepts or rejects it.
    bound: float | None = None
    # Several metrics: when score() returns a mapping (or Scored with one), the metric that drives selection.
    primary_metric: str = "score"
    # Direction of each other metric (True: higher is better); a metric not named here follows `maximize`.
    metrics_maximize: Mapping[str, bool] = field(default_factory=dict)
    # Metrics to keep at or under a limit (a time or memory budget): ranked as a constraint, so a program over
    # any limit ranks after every program within all of them.
    constraints: Mapping[str, float] = field(default_factory=dict)
    # What the reviewer model (--judge-model) grades a program that improved on, 0-10 overall; it also says whether
    # the program games the score (such a program is SUSPECT, like one past `bound`).
    judge_criteria: tuple[str, ...] = DEFAULT_JUDGE_CRITERIA

    def __new__(cls, *args: Any, **kwargs: Any) -> Settings:
        # A misspelt keyword (`maximise=False`) would otherwise be Python's bare TypeError, naming no setting.
        names = [f.name for f in dataclasses.fields(cls)]
        for key in kwargs:
            if key not in names:
                near = difflib.get_close_matches(key, names, n=1, cutoff=0.7)
                meant = f"did you mean {near[0]!r}? " if near else ""
                raise TypeError(f"Settings({key}=...): no such setting; {meant}the settings are {names}")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if not isinstance(self.maximize, bool):
            raise ValueError(f"Settings(maximize={self.maximize!r}): use True or False (not a string)")
        for name in ("time_limit_s", "memory_limit_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"Settings({name}={value!r}): use a positive number")
        if self.numba not in (True, False, "auto"):
            raise ValueError(f"Settings(numba={self.numba!r}): use True, False or 'auto'")
        if self.numba_fallback not in NUMBA_FALLBACKS:
            raise ValueError(f"Settings(numba_fallback={self.numba_fallback!r}): use 'python' or 'refuse'")
        if self.numba_fallback == "refuse" and self.numba is not True:
            # False compiles nothing, so nothing is refused; "auto" compiles a candidate only once its calls have
            # taken a compilation's time, so whether it is refused would follow the machine's speed
            raise ValueError(f"Settings(numba_fallback='refuse') needs numba=True, not {self.numba!r}: only there "
                             "is every candidate compiled, so that a refusal does not depend on how long it ran")
        if self.bound is not None and (isinstance(self.bound, bool) or not isinstance(self.bound, (int, float))
                                       or not math.isfinite(self.bound)):
            raise ValueError(f"Settings(bound={self.bound!r}): use a finite number, or None for no bound")
        if not isinstance(self.primary_metric, str) or not self.primary_metric:
            raise ValueError(f"Settings(primary_metric={self.primary_metric!r}): use the name of a metric")
        if not isinstance(self.metrics_maximize, Mapping) or not all(
                isinstance(k, str) and isinstance(v, bool) for k, v in self.metrics_maximize.items()):
            raise ValueError(f"Settings(metrics_maximize={self.metrics_maximize!r}): use a dict of metric name -> "
                             "True (higher is better) or False")
        if not isinstance(self.constraints, Mapping) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in self.constraints.items()):
            raise ValueError(f"Settings(constraints={self.constraints!r}): use a dict of metric name -> the finite "
                             "number it must stay at or under")

        if (not isinstance(self.judge_criteria, (tuple, list)) or not self.judge_criteria
                or len(self.judge_criteria) > 12 or not all(
                    isinstance(c, str) and c.strip() and len(c) <= 300 for c in self.judge_criteria)):
            raise ValueError(f"Settings(judge_criteria={self.judge_criteria!r}): use a tuple of 1 to 12 short "
                             "texts, each what the reviewer model should grade (e.g. 'readability')")
        object.__setattr__(self, "judge_criteria", tuple(self.judge_criteria))

    def beyond_bound(self, score: float) -> bool:
        """Whether a score reaches or passes what an honest program can reach (always False without a bound)."""
        if self.bound is None:
            return False
        return score >= self.bound if self.maximize else score <= self.bound


@dataclass(frozen=True)
class Scored:
    """What score() may return instead of a float: a number or named metrics, and feedback for the next prompts.

    `value` is the score (a number) or a dict of metric name -> number holding `Settings.primary_metric`.
    `feedback` is text for the model that writes the next versions (what failed, on which input, by how much);
    it is shown to the children of this program, so it must never give away an answer.
    """

    value: float | Mapping[str, float]
    feedback: str = ""


class Project:
    """A folder of ordinary Python files next to the problem file, whose marked blocks evolve.

    Every `.py` file under `folder` is part of the project; the regions between `# EVOLVE-BLOCK-START` and
    `# EVOLVE-BLOCK-END` lines are the program, the rest stays byte for byte. `calls` names the functions of the
    project (`"module.function"`, defined outside the blocks) that `solve` may call, with `PROJECT.call(name,
    *args)` or `PROJECT.batch(name, [args, ...])`: in the sandbox they run in the candidate's process, on the
    project's files with the candidate's blocks, and what they return comes back as plain data; outside a sandbox
    (`python` on an exported problem file) they run here, on the files in the folder.
    """

    def __init__(self, folder: str, calls: Sequence[str]):
        if not isinstance(folder, str) or not folder or folder.startswith("/") or ".." in folder.split("/"):
            raise ValueError(f"Project({folder!r}): give the folder as a path relative to the problem file, inside "
                             "its folder (e.g. 'sort_project')")
        if isinstance(calls, str) or not calls or not all(isinstance(c, str) and "." in c for c in calls):
            raise ValueError(f"Project(calls={calls!r}): name the functions solve calls as a list of "
                             "'module.function'")
        self.folder = folder
        self.calls = tuple(calls)
        # Set by the loader (the folder on disk) and, in the sandbox's harness, the channel to the candidate.
        self.root: str | None = None
        self.remote: Callable[[str, tuple[Any, ...], dict[str, Any]], Any] | None = None
        self.remote_batch: Callable[[str, list[tuple[Any, ...]]], list[Any]] | None = None
        self._local: dict[str, Callable[..., Any]] | None = None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the project's function `name` ('module.function', one of `calls`) and return its result."""
        self._known(name)
        if self.remote is not None:
            return self.remote(name, args, kwargs)
        return self._functions()[name](*args, **kwargs)

    def batch(self, name: str, calls: Sequence[Sequence[Any]]) -> list[Any]:
        """`[PROJECT.call(name, *args) for args in calls]` in one round trip to the candidate's process."""
        self._known(name)
        rows = [tuple(c) for c in calls]
        if self.remote_batch is not None:
            return self.remote_batch(name, rows)
        function = self._functions()[name]
        return [function(*row) for row in rows]

    def _known(self, name: str) -> None:
        if name not in self.calls:
            raise ValueError(f"PROJECT.call({name!r}): not among the project's calls {list(self.calls)}; add it "
                             "to Project(calls=...)")

    def _functions(self) -> dict[str, Callable[..., Any]]:
        if self._local is None:
            if self.root is None:
                raise RuntimeError("this Project was not loaded with its problem file (evoforge's loader sets "
                                   "its folder)")
            from pathlib import Path

            from evoforge.evaluators.project import read_files
            from evoforge.evaluators.project_modules import load_functions

            self._local = load_functions(read_files(Path(self.root)), self.calls)
        return self._local

    def __repr__(self) -> str:
        return f"Project({self.folder!r}, calls={list(self.calls)!r})"


class InvalidOutput(Exception):
    """The trusted score rejected a candidate's output (or returned something that is not a finite number)."""


class HarnessError(ValueError):
    """A compiled harness is declared wrongly; the message says what to change."""


class HarnessCallError(TypeError):
    """solve called a compiled harness with arguments its declaration does not take; the message names both."""


class CompiledHarness:
    """A problem's harness function, compiled once per sandbox server when numba is on (see `compiled_harness`).

    Called with compiled candidates (objects carrying COMPILED_MARK) where it takes evolved functions, it runs
    compiled; called with anything else (numba off, a candidate numba refused) it runs as the Python function it
    is, so both paths compute the same thing. In the sandbox, `hook` may take the call over (numba="auto").
    """

    def __init__(self, func: Callable[..., Any], signature: str, evolved: dict[str, str]):
        functools.update_wrapper(self, func)
        self.py_func = func
        self.signature = signature
        self.evolved = dict(evolved)
        params = list(inspect.signature(func).parameters)
        missing = [name for name in evolved if name not in params]
        if not evolved or missing:
            raise HarnessError(f"compiled_harness on {func.__name__}: name the evolved function(s) it takes, each a "
                               f"parameter of {func.__name__} (not: {', '.join(missing) or 'none named'})")
        for name, sig in evolved.items():
            if not _NAME.match(name) or not isinstance(sig, str) or "(" not in sig:
                raise HarnessError(f"compiled_harness on {func.__name__}: {name}={sig!r} must be a numba "
                                   "signature string such as 'float64(float64, int64[::1])'")
        if not isinstance(signature, str) or not signature.strip():
            raise HarnessError(f"compiled_harness on {func.__name__}: give its argument types as a string, e.g. "
                               f"'({', '.join(params)})' with numba types for the arguments that are not functions")
        self.positions = tuple(params.index(name) for name in evolved)
        self.params = tuple(params)
        kinds = inspect.signature(func).parameters.values()
        # How many positional arguments a call may pass (None: *args takes any number)
        self.arity = None if any(p.kind is p.VAR_POSITIONAL for p in kinds) else (
            sum(p.default is p.empty for p in kinds), len(params))
        self.types = tuple(_split_types(signature))  # one per argument: a numba type, or an evolved function's name
        self.dispatcher: Any = None  # the compiled harness, set in the sandbox server
        self.hook: Callable[[CompiledHarness, tuple[Any, ...]], Any] | None = None

    def __call__(self, *args: Any) -> Any:
        if self.arity is not None and not self.arity[0] <= len(args) <= self.arity[1]:  # numba's own words
            # ("not enough arguments: expected 2, got 1") name neither the harness nor its parameters
            raise HarnessCallError(f"solve called the compiled harness {self.py_func.__name__} with {len(args)} "
                                   f"argument(s); it takes {len(self.params)}: {self.declared()}")
        if self.hook is not None:
            return self.hook(self, args)
        compiled = self.compiled_args(args)
        if compiled is not None:
            return self.call_compiled(compiled)
        return self.py_func(*args)

    def call_compiled(self, compiled: tuple[Any, ...]) -> Any:
        """Run the compiled harness; arguments of types its declaration does not take are said in solve's terms,
        not as numba's 'No matching definition'."""
        try:
            return self.dispatcher(*compiled)
        except TypeError as exc:
            if not str(exc).startswith("No matching definition"):
                raise
            from numba import typeof  # only here: numba compiled this harness, so it is loaded

            given = ", ".join(name if i in self.positions else f"{name}: {typeof(value)}"
                              for i, (name, value) in enumerate(zip(self.params, compiled)))
            raise HarnessCallError(
                f"solve called the compiled harness {self.py_func.__name__}({given}), but it is declared as "
                f"{self.declared()}; convert the arguments in solve to the declared types (for float64[::1]: "
                "np.ascontiguousarray(x, dtype=np.float64))") from None

    def declared(self) -> str:
        """`name(param: type, ...)` as the declaration gives it."""
        parts = [name if i in self.positions or i >= len(self.types) else f"{name}: {self.types[i]}"
                 for i, name in enumerate(self.params)]
        return f"{self.py_func.__name__}({', '.join(parts)})"

    def compiled_args(self, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The arguments for the compiled harness (each candidate function by its dispatcher), or None where the
        harness is not compiled or a function it takes is not a compiled candidate."""
        if self.dispatcher is None:
            return None
        out = list(args)
        for i in self.positions:
            dispatcher = getattr(args[i], COMPILED_MARK, None) if i < len(args) else None
            if dispatcher is None:
                return None
            out[i] = dispatcher
        return tuple(out)

    def __repr__(self) -> str:
        return f"<compiled harness {self.py_func.__name__}{self.signature}>"


def _split_types(signature: str) -> list[str]:
    """The argument types of a harness declaration "(f, float64[:, ::1], int64)", split at its top-level commas."""
    parts, depth, current = [], 0, ""
    for char in signature.strip().removeprefix("(").removesuffix(")"):
        depth += {"[": 1, "(": 1, "]": -1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()] if current.strip() else parts


def declared_arity(signature: str) -> int | None:
    """How many arguments an evolved function's declared signature takes ("float64[:](float64, float64[::1])": 2);
    None when the text does not end in an argument list."""
    text = signature.strip()
    if not text.endswith(")"):
        return None
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "]": 1, "(": -1, "[": -1}.get(text[i], 0)
        if depth == 0:
            return len(_split_types(text[i:]))
    return None


def compiled_harness(signature: str, **evolved: str) -> Callable[[Callable[..., Any]], CompiledHarness]:
    """Mark the loop that calls the evolved functions for numba: `signature` lists the harness's argument types in
    order, naming an evolved function where that argument is one (`"(priority, float64[::1], float64)"`), and each
    keyword gives an evolved function's signature, which every candidate is compiled to
    (`priority="float64[:](float64, float64[::1])"`). The harness is compiled once per problem; it must compile in
    numba's nopython mode, and it runs as plain Python wherever numba is off."""

    def mark(func: Callable[..., Any]) -> CompiledHarness:
        return CompiledHarness(func, signature, evolved)

    return mark


def harnesses(namespace: dict[str, Any]) -> dict[str, CompiledHarness]:
    """The compiled harnesses a problem module defines, by name."""
    return {name: value for name, value in namespace.items() if isinstance(value, CompiledHarness)}


def evolved_signatures(namespace: dict[str, Any]) -> dict[str, str]:
    """The signature each evolved function is compiled to, from the harnesses that take it; a function two
    harnesses declare differently is an error (a candidate has one compiled form)."""
    found: dict[str, str] = {}
    for harness in harnesses(namespace).values():
        for name, sig in harness.evolved.items():
            if found.setdefault(name, sig).replace(" ", "") != sig.replace(" ", ""):
                raise HarnessError(f"{name} is declared as {found[name]!r} in one compiled harness and {sig!r} in "
                                   "another; declare one signature")
    return found
