"""Load and validate a problem file: the one thing a user writes.

A problem file is trusted code written by the user. It is loaded in the engine (to build inputs and run the
trusted `score`) and, separately, inside every sandbox (to run the untrusted `solve` with a candidate's functions).
Every mistake in it is reported as one `ProblemError` naming the file, the line and the fix. Files written before
evoforge 0.2 (`from engine import evolve`) still load: the old name is given to them alone while they load.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import hashlib
import importlib.util
import inspect
import logging
import math
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from evoforge.evaluators.problem import EvolvedFunction, Problem, line_in_file
from evoforge.evaluators.problem_api import (
    EVOLVE_MARK,
    CompiledHarness,
    HarnessError,
    Project,
    Settings,
    Stage,
    declared_arity,
    evolve,
    evolved_signatures,
    harnesses,
)
from evoforge.evaluators.problem_names import closest, reached_from, undefined, unseen_by_candidate
from evoforge.evaluators.project import ProjectError, ProjectSource, read_project
from evoforge.evaluators.validator import module_allowed, runs_at_definition


class ProblemError(Exception):
    """A problem file is unusable; the message names the file, the line and what to change."""


def _assigned_at(path: Path, name: str) -> int | None:
    """The line of the module-level assignment to name (SETTINGS, CASCADE, PARAMS), to point an error at it."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return node.lineno
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node.lineno
    return None


def _error(path: Path, line: int | None, what: str, fix: str) -> ProblemError:
    where = f"{path}:{line}" if line else str(path)
    return ProblemError(f"{where}: {what}\n  fix: {fix}")


def _coerce(key: str, raw: str, default: Any, path: Path) -> Any:
    """Turn a `--set` string into the type of the default it replaces."""
    try:
        if key == "bound":  # a setting whose default may be None
            return None if raw.strip().lower() in ("", "none") else float(raw)
        if isinstance(default, bool) or key == "numba":
            lowered = raw.strip().lower()
            if key == "numba" and lowered == "auto":
                return "auto"
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {raw!r}")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, str) or default is None:
            return raw
        try:
            value = ast.literal_eval(raw)
        except (SyntaxError, ValueError):
            value = None  # not a Python literal at all: said below
        if not isinstance(value, type(default)):
            raise ValueError(f"expected a Python {type(default).__name__} literal such as {default!r}, got {raw!r}")
        return value
    except ValueError as exc:
        kind = "true, false or auto" if key == "numba" else f"a value of type {type(default).__name__}"
        raise _error(path, None, f"--set {key}={raw}: {exc}", f"give {key} {kind} (default {default!r})") from None


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse `key=value` strings from the command line into a dict, refusing malformed ones."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ProblemError(f"--set {pair!r}: expected key=value, e.g. --set time_limit_s=5")
        result[key.strip()] = value
    return result


# What a problem file imports from evoforge: a NameError near one of them is most likely a misspelling.
_API_NAMES = ["evolve", "Settings", "Stage", "Scored", "Project", "batch", "compiled_harness"]


def _exec_module(path: Path, source: str) -> ModuleType:
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise _error(path, exc.lineno, f"syntax error: {exc.msg}",
                     "correct the Python syntax on that line") from None
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    name = f"evoforge_problem_{path.stem}_{digest}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        with _legacy_engine_name(path, source):
            exec(code, module.__dict__)
    except Exception as exc:
        line = line_in_file(exc, path)
        sys.modules.pop(name, None)
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            raise _error(path, line, f"importing the problem file raised {type(exc).__name__}: {exc}",
                         f"install it where evoforge runs: `{sys.executable} -m pip install {exc.name}` "
                         "(the package name may differ from the module's)") from None
        api = difflib.get_close_matches(getattr(exc, "name", None) or "", _API_NAMES, n=1, cutoff=0.75)
        hint = f"; did you mean evoforge's {api[0]!r} (`from evoforge import {api[0]}`)?" if isinstance(
            exc, NameError) and api else ""
        raise _error(path, line, f"importing the problem file raised {type(exc).__name__}: {exc}{hint}",
                     "correct that line; check that the file imports cleanly with "
                     f"`{sys.executable} -c 'import runpy; runpy.run_path(\"{path}\")'`") from None
    return module


_LEGACY_IMPORT = re.compile(r"^\s*(from\s+engine\s+import|import\s+engine\b)", re.MULTILINE)


@contextlib.contextmanager
def _legacy_engine_name(path: Path, source: str) -> Iterator[None]:
    """Let a problem file written before 0.2 (`from engine import evolve`) load, and only while it loads.

    The name `engine` is given to that file alone, as a small module with the problem-file API, and taken back
    afterwards, so it never shadows a user's own `engine` package anywhere else.
    """
    if not _LEGACY_IMPORT.search(source):
        yield
        return
    logging.getLogger("evoforge").info(
        "%s imports `engine`, the name used before evoforge 0.2; loading it with `evoforge` under that name "
        "(write `from evoforge import evolve, Settings, Stage` to silence this)", path)
    legacy = ModuleType("engine", "The problem-file API under its pre-0.2 name, for old problem files only.")
    legacy.evolve, legacy.Settings, legacy.Stage = evolve, Settings, Stage  # type: ignore[attr-defined]
    saved = sys.modules.get("engine")
    sys.modules["engine"] = legacy
    try:
        yield
    finally:
        if saved is None:
            sys.modules.pop("engine", None)
        else:
            sys.modules["engine"] = saved


def _find_evolved(path: Path, source: str, module: ModuleType) -> tuple[EvolvedFunction, ...]:
    tree = ast.parse(source)
    lines = source.splitlines()
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if not getattr(getattr(module, node.name, None), EVOLVE_MARK, False):
            continue
        _check_seed_def(path, node)
        body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        found.append(EvolvedFunction(name=node.name, source=body, lineno=node.lineno))
    if not found:
        raise _error(path, None, "no function is marked @evolve, so there is nothing to evolve",
                     "add `from evoforge import evolve` and put `@evolve` on the function(s) the search should rewrite")
    return tuple(found)


def _check_seed_def(path: Path, node: ast.FunctionDef) -> None:
    """Refuse a seed whose def line no candidate could keep: the program is the def alone (decorators are not part
    of it), and a candidate whose defaults or annotations run code is refused, so with such a seed every mutation
    would fail and the search would stall with nothing said about why."""
    others = [d for d in node.decorator_list  # @evolve, or @evoforge.evolve
              if (d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else None) != "evolve"]
    if others:
        raise _error(path, others[0].lineno, f"the @evolve function {node.name} has the decorator "
                     f"@{ast.unparse(others[0])}, which the search would drop: a program is the def alone",
                     "take the decorator off and do what it does inside the function (or in solve)")
    eager = runs_at_definition(node)
    if eager:
        line, what = eager[0]
        raise _error(path, line, f"the seed {node.name} has {what}; every candidate copies "
                     "the def line, and one whose defaults or annotations run code is refused, so the search "
                     "could change nothing",
                     "give each default a literal value (a number, a string, a tuple of them) and each annotation a "
                     "plain type; compute anything else inside the function")


def _check_harnesses(path: Path, module: ModuleType, evolved: set[str]) -> None:
    """A compiled harness must take evolved functions, each declared with one signature."""
    try:
        evolved_signatures(vars(module))
    except HarnessError as exc:
        raise _error(path, None, str(exc), "give the function the same signature in every compiled harness") from None
    for name, harness in harnesses(vars(module)).items():
        line = getattr(getattr(harness.py_func, "__code__", None), "co_firstlineno", None)
        _check_harness_types(path, line, name, harness)
        unknown = sorted(set(harness.evolved) - evolved)
        if unknown:
            raise _error(path, line, f"the compiled harness {name} declares {', '.join(unknown)}, which "
                         f"{'is' if len(unknown) == 1 else 'are'} not @evolve function(s)",
                         f"name only evolved functions ({', '.join(sorted(evolved))}) in compiled_harness")
        for func_name, declared in harness.evolved.items():  # numba would only say "mismatch of arguments number"
            takes, params = declared_arity(declared), _parameters(getattr(module, func_name, None))
            if takes is not None and params is not None and takes != len(params):
                raise _error(path, line, f"the compiled harness {name} declares {func_name}={declared!r}, which "
                             f"takes {takes} argument(s), but {func_name}({', '.join(params)}) takes {len(params)}",
                             f"give {func_name} one type per parameter in compiled_harness(..., {func_name}=...)")


def _check_harness_types(path: Path, line: int | None, name: str, harness: CompiledHarness) -> None:
    """The declared argument types must be one per parameter, the evolved functions by their names: numba would say
    only "name 'prioity' is not defined" or "Signature mismatch" when the sandbox starts, naming neither."""
    counted = len(harness.types) == len(harness.params)
    meant = "'({})'".format(", ".join(
        p if i in harness.positions else harness.types[i] if counted else f"<type of {p}>"
        for i, p in enumerate(harness.params)))
    if not counted:
        raise _error(path, line, f"the compiled harness {name} declares {len(harness.types)} argument type(s), "
                     f"{harness.signature!r}, but {name}({', '.join(harness.params)}) takes {len(harness.params)}",
                     f"give one type per parameter, in order, the evolved function(s) by name: e.g. {meant}")
    for position in harness.positions:
        func_name = harness.params[position]
        if harness.types[position] != func_name:
            raise _error(path, line, f"the compiled harness {name} declares {harness.types[position]!r} for its "
                         f"parameter {func_name}, which takes the evolved function {func_name}",
                         f"name the evolved function there: {meant}")


def _parameters(func: object) -> list[str] | None:
    """The parameter names of a plain function (the evolved seed), or None for anything else."""
    try:
        return list(inspect.signature(func).parameters) if callable(func) else None
    except (TypeError, ValueError):
        return None


def _require_callable(path: Path, module: ModuleType, name: str, fix: str) -> None:
    if not callable(getattr(module, name, None)):
        near = _near_names(module, name)
        hint = f" (is {near[0]!r} meant to be {name!r}?)" if near else ""
        raise _error(path, None, f"no function `{name}` is defined{hint}", fix)


# The functions a problem file defines, with the parameters the engine calls them with.
_CALLED_AS = {"solve": ("input",), "score": ("input", "output"), "inputs": ("params",),
              "held_out_inputs": ("params",), "aggregate": ("scores", "inputs")}
# Optional names the engine looks up; a near miss of one that is absent is most likely a typo.
_OPTIONAL_NAMES = ("SETTINGS", "PARAMS", "CASCADE", "EXPOSE", "PROJECT", "held_out_inputs", "aggregate")


def _check_signatures(path: Path, module: ModuleType) -> None:
    """Refuse a solve/score/inputs/... that cannot take the arguments the engine passes, naming its line."""
    for name, arguments in _CALLED_AS.items():
        func = getattr(module, name, None)
        if not callable(func):
            continue
        try:
            inspect.signature(func).bind(*arguments)
        except TypeError:
            line = getattr(getattr(func, "__code__", None), "co_firstlineno", None)
            raise _error(path, line, f"{name} cannot be called as {name}({', '.join(arguments)})",
                         f"define it as `def {name}({', '.join(arguments)}):`") from None
        except ValueError:
            continue  # a builtin or C function without a signature: it will tell at run time


def _check_reached(path: Path, module: ModuleType, evolved: tuple[EvolvedFunction, ...]) -> None:
    """Refuse an @evolve function that solve never calls, directly or through the file's functions (the evolved
    ones included): the score would not depend on it, so the search would evolve it for nothing."""
    reached = reached_from(module, "solve") if evolved else None
    if reached is None:  # nothing to evolve here (a project), or solve reaches code that cannot be read
        return
    missed = [f for f in evolved if f.name not in reached]
    if missed:
        names = ", ".join(f.name for f in missed)
        it = "it" if len(missed) == 1 else "them"
        raise _error(path, missed[0].lineno, f"solve never calls the @evolve function {names}, directly or through "
                     f"the functions it calls, so the score would not depend on {it}",
                     f"call {it} from solve (or from a function solve calls), or take @evolve off {it}")


def _near_names(module: ModuleType, name: str) -> list[str]:
    """Module-level names that look like a misspelling of ``name``."""
    defined = [n for n, value in vars(module).items() if not n.startswith("__") and n != name
               and not isinstance(value, (type, ModuleType))]  # an imported class (Settings) is no typo
    lowered = {n.lower(): n for n in defined}
    return [lowered[n] for n in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.8)]


def _misspellings(module: ModuleType) -> tuple[str, ...]:
    """Warnings for names that look like a misspelt optional name the engine would otherwise silently ignore."""
    found = []
    for name in _OPTIONAL_NAMES:
        if hasattr(module, name):
            continue
        for near in _near_names(module, name):
            found.append(f"{near!r} is not read by evoforge; if it is meant as {name!r}, rename it "
                         f"(without {name}, the engine uses its default)")
    return tuple(found)


def _named_inputs(path: Path, module: ModuleType, func_name: str, params: dict[str, Any]) -> dict[str, Any]:
    from evoforge.evaluators.wire import WireError, encode_value  # numpy: not for commands that only read runs

    func = getattr(module, func_name)
    try:
        value = func(params)
    except Exception as exc:
        fix = f"make {func_name}(params) return the inputs for these parameters"
        if isinstance(exc, KeyError) and exc.args and exc.args[0] not in params:
            near = difflib.get_close_matches(str(exc.args[0]), [str(k) for k in params], n=1)
            fix = (f"params holds the PARAMS keys {sorted(map(str, params))}"
                   + (f"; did you mean {near[0]!r}?" if near else "; add the key to PARAMS"))
        raise _error(path, line_in_file(exc, path), f"{func_name}(params) raised {type(exc).__name__}: {exc}",
                     fix) from None
    if isinstance(value, Mapping):
        named = {str(k): v for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        named = {str(i): v for i, v in enumerate(value)}
    else:
        raise _error(path, func.__code__.co_firstlineno, f"{func_name}(params) returned {type(value).__name__}",
                     "return a dict of name -> input, or a list of inputs")
    for name, input_value in named.items():  # each input is sent to a sandbox as data: refuse what cannot go
        try:
            encode_value(input_value)
        except WireError as exc:
            what = str(exc).removeprefix("solve() returned ")
            raise _error(path, func.__code__.co_firstlineno,
                         f"{func_name}(params) returned input {name!r}, which cannot be sent to the sandbox: {what}",
                         "build each input from numbers, strings, lists, tuples, sets, dicts and numeric numpy "
                         "arrays (a dict in place of an object of your own class)") from None
    return named


def _settings_from(path: Path, module: ModuleType) -> Settings:
    raw = getattr(module, "SETTINGS", None)
    if raw is None:
        return Settings()
    if isinstance(raw, Settings):
        return raw
    if isinstance(raw, Mapping):
        known = {f.name for f in dataclasses.fields(Settings)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise _error(path, _assigned_at(path, "SETTINGS"), f"SETTINGS has unknown key(s) {unknown}",
                         _did_you_mean(unknown, sorted(known)) + f"use only {sorted(known)}")
        try:
            return Settings(**raw)
        except ValueError as exc:
            raise _error(path, _assigned_at(path, "SETTINGS"), f"SETTINGS: {exc}", "correct that value") from None
    raise _error(path, _assigned_at(path, "SETTINGS"), f"SETTINGS is a {type(raw).__name__}",
                 "set SETTINGS = Settings(...) or a dict")


def _did_you_mean(unknown: list[str], known: list[str]) -> str:
    """'did you mean ...? ' for the keys that look like a misspelling of a known one (`size` for `sizes`), else ''."""
    near = [f"{key!r} -> {guess!r}" for key in unknown if (guess := closest(str(key), known)) is not None]
    return f"did you mean {', '.join(near)}? " if near else ""


def _apply_overrides(path: Path, settings: Settings, params: dict[str, Any],
                     overrides: Mapping[str, str]) -> tuple[Settings, dict[str, Any]]:
    setting_names = {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings)}
    new_settings: dict[str, Any] = {}
    params = dict(params)
    for key, raw in overrides.items():
        if key in params:
            params[key] = _coerce(key, raw, params[key], path)
        elif key in setting_names:
            new_settings[key] = _coerce(key, raw, setting_names[key], path)
        else:
            valid = sorted(params) + sorted(setting_names)
            raise _error(path, None, f"--set {key}: no such parameter or setting",
                         _did_you_mean([key], valid) + f"use one of {valid}")
    try:
        return dataclasses.replace(settings, **new_settings), params
    except ValueError as exc:
        raise _error(path, None, f"--set: {exc}", "give the setting a valid value") from None


def _cascade_from(path: Path, module: ModuleType, params: dict[str, Any], inputs: Mapping[str, Any]
                  ) -> tuple[Stage, ...]:
    raw = getattr(module, "CASCADE", ())
    if callable(raw):
        try:
            raw = raw(params)
        except Exception as exc:
            raise _error(path, line_in_file(exc, path), f"CASCADE(params) raised {type(exc).__name__}: {exc}",
                         "make CASCADE(params) return a list of Stage(inputs=(...), threshold=...)") from None
    stages = tuple(raw)
    seen: set[str] = set()

    def bad(number: int, what: str, fix: str) -> ProblemError:
        return _error(path, _assigned_at(path, "CASCADE"), f"CASCADE stage {number} {what}", fix)

    for number, stage in enumerate(stages, 1):
        if not isinstance(stage, Stage):
            raise bad(number, f"is a {type(stage).__name__}",
                      "build each stage with Stage(inputs=(...), threshold=...) from evoforge")
        unknown = [name for name in stage.inputs if name not in inputs]
        if unknown or not stage.inputs:
            raise bad(number, f"names unknown inputs {unknown}" if unknown else "names no inputs",
                      f"use names from inputs(): {list(inputs)}")
        repeated = seen.intersection(stage.inputs)
        if repeated:
            raise bad(number, f"repeats inputs {sorted(repeated)}", "name each input in one stage at most")
        if not math.isfinite(stage.threshold):
            raise bad(number, f"threshold is {stage.threshold}", "give a finite threshold")
        seen.update(stage.inputs)
    return stages


def _candidate_modules(module: ModuleType) -> dict[str, str]:
    """The allowed modules the problem file bound to a name (`np` -> numpy): the evolved code sees them so too."""
    return {alias: value.__name__ for alias, value in vars(module).items()
            if isinstance(value, ModuleType) and not alias.startswith("_") and module_allowed(value.__name__)}


def _exposed(path: Path, source: str, module: ModuleType) -> tuple[dict[str, str], dict[str, Any]]:
    """EXPOSE: the helpers (their `def` source, compiled afresh for the candidate) and constants (plain data)
    the evolved functions may use; nothing else of the module is theirs to see."""
    from evoforge.evaluators.channel import ChannelError, encode  # numpy: not for commands that only read runs

    raw = getattr(module, "EXPOSE", ())
    line = _assigned_at(path, "EXPOSE")
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)) or not all(isinstance(n, str) for n in raw):
        raise _error(path, line, f"EXPOSE is {raw!r}", "set EXPOSE to a list of names: ['helper', 'CONSTANT']")
    defs = {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
    lines = source.splitlines()
    helpers: dict[str, str] = {}
    constants: dict[str, Any] = {}
    for name in raw:
        if not hasattr(module, name):
            raise _error(path, line, f"EXPOSE names {name!r}, which the file does not define",
                         "name only top-level functions and constants of this file")
        if name in defs:
            node = defs[name]
            if node.decorator_list:
                raise _error(path, node.lineno, f"the exposed helper {name!r} is decorated",
                             "expose plain top-level functions only (it is compiled again for the candidate)")
            helpers[name] = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
            continue
        value = getattr(module, name)
        try:
            encode(value)
        except ChannelError as exc:
            raise _error(path, line, f"EXPOSE names {name!r}, which is neither a top-level def nor plain data "
                                     f"({exc})", "expose functions defined in this file, numbers, strings, "
                                                 "tuples, lists, dicts or numeric numpy arrays") from None
        constants[name] = value
    return helpers, constants


def _check_names(path: Path, module: ModuleType, evolved: tuple[EvolvedFunction, ...], modules: dict[str, str],
                 helpers: dict[str, str], constants: dict[str, Any]) -> tuple[str, ...]:
    """Refuse evolved code that uses a name its namespace will not hold (it would fail as a NameError in the
    sandbox); return warnings for names the file's other functions use and nothing defines."""
    names = [f.name for f in evolved]
    visible = set(modules) | set(helpers) | set(constants) | set(names)
    for kind, owners in (("@evolve function", names), ("exposed helper", list(helpers))):
        for owner in owners:
            func = getattr(module, owner)
            for used in unseen_by_candidate(func, visible):
                value = vars(module).get(used)
                if used not in vars(module):
                    guess = closest(used, sorted(visible | set(func.__code__.co_varnames)))
                    what, fix = "which the file does not define", "define it or correct the name" + (
                        f" (is it {guess!r}?)" if guess else "")
                elif isinstance(value, ModuleType):
                    what, fix = (f"the module {value.__name__}, which the evolved code cannot use",
                                 "use only the modules README's 'What the evolved code sees' lists")
                elif callable(value) and not _defined_here(path, value):
                    what, fix = ("an imported function, which the evolved code does not see",
                                 "import its module in the problem file (`import math`) and call it through it "
                                 "(`math.sqrt`): the evolved code sees the allowed modules by the names the file "
                                 "gives them")
                else:
                    what, fix = ("which the evolved code does not see (it sees its arguments, the allowed modules "
                                 "and what EXPOSE names)",
                                 f"add it to EXPOSE: EXPOSE = {[*helpers, *constants, used]!r} (a plain top-level "
                                 "def or plain data), or inline it")
                raise _error(path, func.__code__.co_firstlineno, f"the {kind} {owner} uses {used!r}, {what}", fix)
    warnings = []
    for owner, func in vars(module).items():
        if owner in visible or not _defined_here(path, func):
            continue
        for used in undefined(module, func):
            guess = closest(used, names)
            if guess is not None:
                raise _error(path, func.__code__.co_firstlineno, f"{owner} uses {used!r}, which the file does not "
                             f"define", f"call the @evolve function by its name, {guess!r}")
            warnings.append(f"{owner} (line {func.__code__.co_firstlineno}) uses {used!r}, which the file does not "
                            "define: a NameError when that line runs")
    return tuple(warnings)


def _defined_here(path: Path, value: Any) -> bool:
    """Whether value is a plain function whose def is in this problem file."""
    return inspect.isfunction(value) and value.__code__.co_filename == str(path)


def _project_from(path: Path, module: ModuleType, settings: Settings) -> ProjectSource | None:
    """PROJECT = Project(folder, calls=[...]): the project whose marked blocks evolve, read and checked."""
    raw = getattr(module, "PROJECT", None)
    if raw is None:
        return None
    line = _assigned_at(path, "PROJECT")
    if not isinstance(raw, Project):
        raise _error(path, line, f"PROJECT is a {type(raw).__name__}",
                     "set PROJECT = Project('folder', calls=['module.function']) (from evoforge import Project)")
    if any(getattr(value, EVOLVE_MARK, False) for value in vars(module).values()):
        raise _error(path, line, "the file has @evolve functions and a PROJECT",
                     "evolve either functions of the problem file (@evolve) or a project's marked blocks, not both")
    if settings.numba:
        raise _error(path, line, "numba is on for a PROJECT problem",
                     "set Settings(numba=False): a project's code runs as Python in the candidate's process")
    if getattr(module, "EXPOSE", ()):
        raise _error(path, _assigned_at(path, "EXPOSE"), "EXPOSE in a PROJECT problem",
                     "put what the project's code needs into the project's own files; EXPOSE is for @evolve")
    folder = (path.parent / raw.folder).resolve()
    if not folder.is_relative_to(path.parent):
        raise _error(path, line, f"Project({raw.folder!r}) lies outside the problem file's folder",
                     "keep the project folder next to (below) the problem file")
    try:
        project = read_project(folder, path, raw.calls)
    except ProjectError as exc:
        raise ProblemError(f"{path}:{line}: PROJECT: {exc}") from None
    raw.root = str(folder)
    return project


def _near_file(path: Path) -> str:
    """'is it FILE?' for the file of the same folder whose name is closest to a missing one, else ''."""
    folder = path.parent
    names = sorted(p.name for p in folder.glob("*.py")) if folder.is_dir() else []
    guess = closest(path.name, names)
    return f"is it {folder / guess}? " if guess else ""


def load_problem(path: str | Path, overrides: Mapping[str, str] | None = None, *,
                 with_inputs: bool = True) -> Problem:
    """Load a problem file, apply `--set` overrides, and check that it has everything a search needs.

    `with_inputs=False` (the sandbox) skips inputs() and held_out_inputs(): the engine computes the inputs and
    sends each evaluation only its own, so a sandbox never holds the held-out inputs while it runs training ones.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ProblemError(f"{path}: no such problem file\n  fix: {_near_file(path)}pass the path of a .py "
                           "problem file, or a bundled problem's name (bin_packing)")
    source = path.read_text()
    module = _exec_module(path, source)
    description = (module.__doc__ or "").strip()
    if not description:
        raise _error(path, 1, "the problem file has no module docstring",
                     "start the file with a docstring describing the problem; it goes into every prompt")
    project_marked = isinstance(getattr(module, "PROJECT", None), Project)
    evolved = () if project_marked else _find_evolved(path, source, module)
    _check_harnesses(path, module, {f.name for f in evolved})
    _require_callable(path, module, "solve", "define solve(input) that runs the evolved function(s) on one input "
                      "and returns plain data (numbers, lists, numpy arrays)")
    _require_callable(path, module, "score", "define score(input, output) -> float that checks the output and "
                      "raises on an invalid one")
    _require_callable(path, module, "inputs", "define inputs(params) returning a dict of name -> input")
    raw_params = getattr(module, "PARAMS", {})
    if not isinstance(raw_params, Mapping):
        raise _error(path, _assigned_at(path, "PARAMS"), f"PARAMS is a {type(raw_params).__name__}",
                     "set PARAMS to a dict of defaults")
    _check_signatures(path, module)
    settings, params = _apply_overrides(path, _settings_from(path, module), dict(raw_params), overrides or {})
    project = _project_from(path, module, settings)
    helpers, constants = _exposed(path, source, module)
    modules = _candidate_modules(module)
    warnings = _misspellings(module) + _check_names(path, module, evolved, modules, helpers, constants)
    _check_reached(path, module, evolved)  # after the names: a misspelt call is said as such
    common: dict[str, Any] = dict(
        path=path, name=path.stem, description=description, source=source, evolved=evolved, settings=settings,
        params=params, module=module, overrides=dict(overrides or {}), warnings=warnings,
        candidate_modules=modules, exposed_helpers=helpers, exposed_constants=constants, project=project)
    if not with_inputs:
        return Problem(inputs={}, held_out={}, **common)
    inputs = _named_inputs(path, module, "inputs", params)
    if not inputs:
        used = f" with {', '.join(f'{k}={v!r}' for k, v in params.items())}" if params else ""
        raise _error(path, getattr(module.inputs, "__code__", None) and module.inputs.__code__.co_firstlineno,
                     f"inputs(params) returned no inputs{used}",
                     "return at least one input to score on" + (" (check your --set values)" if overrides else ""))
    held_out = _named_inputs(path, module, "held_out_inputs", params) if callable(
        getattr(module, "held_out_inputs", None)) else {}
    cascade = _cascade_from(path, module, params, inputs)
    return Problem(inputs=inputs, held_out=held_out, cascade=cascade, **common)
