"""Global names a problem file's functions use that they will not find when they run.

A name missing at load time is a NameError only when the line runs: in the sandbox, as the seed's `error`, far
from the mistake. Reading each function's global loads at load time names the mistake at once: the evolved code
calling a helper of the file that EXPOSE does not name (the candidate's namespace holds only its arguments, the
allowed modules and EXPOSE), or `solve` calling the evolved function by a misspelt name. The same reading follows
`solve` through the file's functions to the evolved ones it reaches (`reached_from`): one it never reaches would
evolve for nothing.
"""

from __future__ import annotations

import builtins
import difflib
import dis
import functools
import inspect
from collections.abc import Iterator
from types import CodeType, ModuleType
from typing import Any


def global_names(func: Any) -> list[str]:
    """The global names a function (and the functions, lambdas and comprehensions inside it) loads, in order."""
    code = getattr(inspect.unwrap(func), "__code__", None)
    found: dict[str, None] = {}
    for inner in _codes(code) if isinstance(code, CodeType) else ():
        for ins in dis.get_instructions(inner):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str):
                found[ins.argval] = None
    return list(found)


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const)


def unseen_by_candidate(func: Any, visible: set[str]) -> list[str]:
    """Names the evolved function (or an exposed helper) uses that its namespace will not hold."""
    return [n for n in global_names(func) if n not in visible and not hasattr(builtins, n)]


def undefined(module: ModuleType, func: Any) -> list[str]:
    """Names a function of the problem file uses that neither the file nor the builtins define."""
    return [n for n in global_names(func) if n not in vars(module) and not hasattr(builtins, n)]


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate that `name` most likely misspells, if any."""
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return found[0] if found else None


# Builtins that find a function by a string at run time: past one of them, what solve reaches cannot be read.
_DYNAMIC = frozenset({"globals", "vars", "getattr", "eval", "exec", "locals", "__import__"})


def reached_from(module: ModuleType, start: str) -> set[str] | None:
    """The global names that the function `start`, and the module's functions it reaches, load, plus the names of
    those functions. It follows calls, functions kept in containers or partials, the file's classes and compiled
    harnesses (their `py_func`). None when it reaches code it cannot read (a callable object, a lookup by string),
    so nothing is known."""
    names = vars(module)
    todo, seen, reached = [names[start]], set(), set()
    while todo:
        func = inspect.unwrap(todo.pop())
        if id(func) in seen:
            continue
        seen.add(id(func))
        reached.add(func.__name__)  # reached through a container ([f]) rather than by its name
        for name in global_names(func):
            reached.add(name)
            if name in _DYNAMIC:
                return None
            inner = _functions_in(names.get(name), module.__name__)
            if inner is None:
                return None
            todo.extend(inner)
    return reached


def _functions_in(value: Any, module_name: str) -> list[Any] | None:
    """The functions whose code `value` runs when used, or None if that cannot be read."""
    value = getattr(value, "py_func", value)  # a compiled harness or a numba function: its Python source
    if inspect.isfunction(value):
        return [value]
    if isinstance(value, functools.partial):
        return _functions_in(value.func, module_name)
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        items = value.values() if isinstance(value, dict) else value
        return [item for item in items if inspect.isfunction(item)]
    if inspect.isclass(value):
        mine = value.__module__ == module_name
        return [f for f in vars(value).values() if inspect.isfunction(f)] if mine else []
    if value is None or isinstance(value, ModuleType) or inspect.isbuiltin(value) or not callable(value):
        return []
    return None
