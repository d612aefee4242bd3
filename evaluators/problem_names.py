"""Global names a problem file's functions use that they will not find when they run.

A name missing at load time is a NameError only when the line runs: in the sandbox, as the seed's `error`, far
from the mistake. Reading each function's global loads at load time names the mistake at once: the evolved code
calling a helper of the file that EXPOSE does not name (the candidate's namespace holds only its arguments, the
allowed modules and EXPOSE), or `solve` calling the evolved function by a misspelt name.
"""

from __future__ import annotations

import builtins
import difflib
import dis
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
