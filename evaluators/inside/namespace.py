"""The namespace a candidate's functions are compiled in: nothing of the problem module, only what it may use.

A fresh dict per candidate holding: a builtins dict without the builtins that reach namespaces, files or code
(`evaluators.validator.FORBIDDEN_NAMES`), an `__import__` that hands out only the allowed modules, copies of
those modules that hold their public allowed names only (so `np.lib`, `random._os` or `np.load` are not there to
find, and rebinding a name in a copy changes nothing outside), the problem's exposed helpers compiled afresh from
their source in this namespace (so their `__globals__` is this dict, not the problem module), and its exposed
constants. The problem module, `solve`, the inputs and the scorer are not in it and not reachable from it.
"""

from __future__ import annotations

import builtins
import importlib
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

from evoforge.evaluators.channel import WARM_ROUNDS
from evoforge.evaluators.validator import (
    ALLOWED_MODULES,
    ALLOWED_SUBMODULES,
    FORBIDDEN_NAMES,
    attribute_allowed,
    module_allowed,
)

CANDIDATE_MODULE = "evoforge_candidate"
SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr", "complex", "dict",
    "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hex", "id", "int", "isinstance",
    "issubclass", "iter", "len", "list", "map", "max", "min", "next", "oct", "ord", "pow", "print", "range",
    "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip", "Ellipsis",
    "NotImplemented", "None", "True", "False",
    "ArithmeticError", "AssertionError", "BaseException", "Exception", "FloatingPointError", "IndexError",
    "KeyError", "LookupError", "MemoryError", "NotImplementedError", "OverflowError", "RecursionError",
    "RuntimeError", "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
)

# numpy's constructors of uninitialised arrays hand out memory as the allocator left it: in the harness's process
# (numba) that can hold what the harness freed (the request it decoded, earlier inputs). The views name the
# zero-filling constructors in their place, so `np.empty` (Python or compiled) gives zeros.
ZEROED = {"numpy": {"empty": "zeros", "empty_like": "zeros_like"},
          "numpy.ma": {"empty": "zeros", "empty_like": "zeros_like"}}

_copies: dict[str, types.ModuleType] = {}


def module_copy(dotted: str, real: types.ModuleType | None = None) -> types.ModuleType:
    """The candidate's view of an allowed module: its public allowed names, and its allowed submodules' views."""
    found = _copies.get(dotted)
    if found is not None:
        return found
    if not module_allowed(dotted):
        raise ImportError(f"evolved code may not import {dotted}; allowed: {', '.join(ALLOWED_MODULES)}")
    if real is None:
        parent, _, last = dotted.rpartition(".")
        real = getattr(importlib.import_module(parent), last) if parent else importlib.import_module(dotted)
    copy = types.ModuleType(dotted, real.__doc__)
    _copies[dotted] = copy
    for name in dir(real):
        if not attribute_allowed(name):
            continue
        try:
            value = getattr(real, name)
        except Exception:  # a lazy attribute that cannot load here
            continue
        if isinstance(value, types.ModuleType):
            if module_allowed(f"{dotted}.{name}"):
                setattr(copy, name, module_copy(f"{dotted}.{name}", value))
            continue
        if isinstance(value, type) and issubclass(value, type):
            continue  # a metaclass (typing.ABCMeta) makes classes from a dict: dunder methods by string keys
        setattr(copy, name, value)
    for name, zeroed in ZEROED.get(dotted, {}).items():
        setattr(copy, name, getattr(real, zeroed))
    return copy


def prepare() -> None:
    """Build every module view once (in the process that forks candidates), so a candidate pays nothing for it;
    then build a namespace and run a small program in it a few times, so that the code doing it is already
    specialised here: a forked child that ran it cold would write into the code objects it shares with this
    process, each page so written a copy-on-write fault."""
    for top in ALLOWED_MODULES:
        module_copy(top)
        for sub in ALLOWED_SUBMODULES.get(top, ()):
            module_copy(f"{top}.{sub}")
    for _ in range(WARM_ROUNDS):
        scope = candidate_namespace({"np": "numpy", "math": "math"}, {}, {})
        exec(compile("def f(x):\n    return x\n", "<warm-up>", "exec"), scope)
    sys.modules.pop(CANDIDATE_MODULE, None)


def _import(name: str, globals: Any = None, locals: Any = None, fromlist: Iterable[str] | None = (),
            level: int = 0) -> types.ModuleType:
    if level:
        raise ImportError("relative imports are not available to evolved code")
    if not module_allowed(name):
        # The validator refuses every import statement of another module, so only the interpreter itself gets
        # here (numpy's C code imports its helpers through the current frame's builtins): give it what is loaded.
        loaded = sys.modules.get(name)
        if loaded is not None:
            return loaded
        raise ImportError(f"evolved code may not import {name}; allowed: {', '.join(ALLOWED_MODULES)}")
    return module_copy(name) if fromlist else module_copy(name.partition(".")[0])


def safe_builtins() -> dict[str, Any]:
    table = {name: getattr(builtins, name) for name in SAFE_BUILTINS if name not in FORBIDDEN_NAMES}
    table["__import__"] = _import
    return table


def candidate_namespace(modules: Mapping[str, str], helpers: Mapping[str, str], constants: Mapping[str, Any],
                        restricted: bool = True) -> dict[str, Any]:
    """A fresh namespace: the allowed modules under the names the problem file gave them (`np`), the exposed
    helpers compiled from their source here, and the exposed constants. `restricted=False` (code a person
    vouched for, and the hostile tests of the operating-system layers) gives the full builtins instead."""
    # A module of its own, registered by name: numba finds a cached compilation's globals through its module.
    module = types.ModuleType(CANDIDATE_MODULE)
    sys.modules[CANDIDATE_MODULE] = module
    ns: dict[str, Any] = module.__dict__
    ns["__builtins__"] = safe_builtins() if restricted else builtins.__dict__
    for alias, dotted in modules.items():
        ns[alias] = module_copy(dotted)
    ns.update(constants)
    for name, source in helpers.items():
        exec(compile(source, f"<problem helper {name}>", "exec"), ns)
    return ns
