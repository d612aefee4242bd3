"""Sandbox side of compiled evaluation: compile a problem's harnesses and a candidate's functions with numba, and
load earlier compilations from payloads the engine keeps (`evaluators.compile_store`).

numba's own on-disk cache needs a folder the compiling process can write, which in a sandbox is also a folder a
candidate could write. Here a compilation is a payload instead (numba's serialised compile result, base64): the
process that compiled it reports it, and the engine decides whether to keep it; a process loads only payloads the
engine hands it. A candidate's payload is kept only when it was compiled before any of the candidate's code ran
(the harness compiles it eagerly, right after the `def`s), so a candidate cannot forge another's compilation.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import pickle
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba.core import serialize
from numba.core.caching import _Cache
from numba.core.compiler import CompileResult
from numba.core.errors import TypingError

from evoforge.evaluators.channel import CandidateError
from evoforge.evaluators.inside import numba_load, numba_overflow, numba_semantics
from evoforge.evaluators.inside.namespace import module_copy
from evoforge.evaluators.problem_api import COMPILED_MARK, evolved_signatures, harnesses

MAX_PAYLOAD_BYTES = 8 * 1024 * 1024  # one compilation; a larger one is not kept
# Part of every payload key (candidates' and harnesses'): raise it when a change to what compiled code may do
# (numba_overflow, a check numba_semantics adds) leaves the adjusted source unchanged, so that no payload compiled
# without it loads.
CHECKS_VERSION = 8

numba_overflow.install()  # here, so that it precedes every compilation in the sandbox


class PayloadCache(_Cache):
    """numba's cache interface over payloads: `load_overload` finds one by key, `save_overload` reports a new one."""

    def __init__(self, name: str, entries: dict[str, str], on_save: Callable[[str, str], None]):
        self.name = name
        self.entries = entries
        self.on_save = on_save

    @property
    def cache_path(self) -> None:
        return None

    def key(self, sig: Any, target_context: Any) -> str:
        text = f"{self.name}|{sig}|{target_context.codegen().magic_tuple()}|{numba.__version__}|{sys.version}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        data = self.entries.get(self.key(sig, target_context))
        if data is None:
            return None
        try:
            return CompileResult._rebuild(target_context, *pickle.loads(base64.b64decode(data)))
        except Exception:  # a payload from another numba or machine that slipped through: compile instead
            return None

    def save_overload(self, sig: Any, cres: Any) -> None:
        if any(not lifted.can_cache for lifted in cres.lifted) or cres.library.has_dynamic_globals:
            return
        data = serialize.dumps(cres._reduce())
        if len(data) <= MAX_PAYLOAD_BYTES:
            self.on_save(self.key(sig, cres.target_context), base64.b64encode(data).decode())

    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass

    def flush(self) -> None:
        pass


def parse_signature(text: str, extra: dict[str, Any] | None = None) -> Any:
    """A numba signature from a problem file's string: numba type names, and evolved functions' names for their
    first-class function types. The string is the problem author's (trusted), never a candidate's."""
    namespace: dict[str, Any] = {name: value for name, value in vars(numba.types).items() if not name.startswith("_")}
    namespace.update(extra or {})
    try:
        sig = eval(text, {"__builtins__": {}}, namespace)  # noqa: S307 - the problem file's own text
    except Exception as exc:
        raise ValueError(f"numba signature {text!r}: {type(exc).__name__}: {exc}") from None
    return sig


def function_types(namespace: dict[str, Any]) -> dict[str, Any]:
    """The first-class function type of each evolved function a harness takes."""
    return {name: numba.types.FunctionType(parse_signature(sig))
            for name, sig in evolved_signatures(namespace).items()}


def compile_harnesses(namespace: dict[str, Any], entries: dict[str, str]) -> dict[str, str]:
    """Compile every compiled harness of a problem module (or load it from entries); return the new payloads."""
    found = harnesses(namespace)
    if not found:
        return {}
    new: dict[str, str] = {}
    ftypes = function_types(namespace)
    for name, harness in found.items():
        sig = parse_signature(harness.signature, ftypes)
        dispatcher = numba.njit(harness.py_func)
        dispatcher._cache = PayloadCache(f"harness:{name}:checks{CHECKS_VERSION}", entries, new.__setitem__)
        try:
            dispatcher.compile(sig)
        except Exception as exc:
            raise RuntimeError(f"the compiled harness {name} does not compile with numba{_where(exc, harness.py_func)}"
                               f": {type(exc).__name__}: {_first_lines(exc)}\n  fix: write it in what numba's "
                               "nopython mode compiles (numpy arrays, scalars, loops; no Python objects)") from None
        dispatcher.disable_compile()  # a call with other types is an error, never a silent recompilation
        harness.dispatcher = dispatcher
    return new


def _where(exc: BaseException, func: Callable[..., Any]) -> str:
    """' at FILE:LINE', the last line of `func`'s file that numba's error points to (its first lines, which the
    message keeps, name numba's own files), else ''."""
    path = func.__code__.co_filename
    lines = [line for file, line in re.findall(r'File "([^"]+)", line (\d+):', str(exc))
             if Path(file).name == Path(path).name]
    return f" at {path}:{lines[-1]}" if lines else ""


# A compiled candidate is only ever called by compiled harnesses, through its native entry point: it needs neither
# the wrapper that lets Python call it nor the C one (about a third of a small function's compile time). Indexing
# is bounds-checked: without it, an index past the end would read the harness's memory (the inputs to come).
CANDIDATE_OPTIONS = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True, "boundscheck": True}
class CompiledFunction:
    """Stands for a compiled evolved function in the problem module: harnesses take its dispatcher (the mark),
    and a direct call from `solve` runs the candidate as Python (a harness-less call has no compiled entry)."""

    def __init__(self, python: Any, dispatcher: Any):
        self.python = python
        setattr(self, COMPILED_MARK, dispatcher)
        self.__name__ = getattr(python, "__name__", "candidate")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.python(*args, **kwargs)


def _no_cfunc_wrapper() -> int:
    """The C wrapper address numba asks for when a dispatcher becomes a first-class function value. Candidates
    have none: calls go through the native entry point, which numba prefers whenever it has one."""
    return 1


def numeric_arguments(signatures: dict[str, str]) -> dict[str, frozenset[int]]:
    """For each evolved function, the positions of the arguments its declared signature types as a number or an
    array of numbers (numba_semantics keeps products of those as plain `*`; an item of an array of text or records
    may be text, which numba repeats)."""
    numbers = (numba.types.Number, numba.types.Boolean)
    return {name: frozenset(i for i, arg in enumerate(parse_signature(text).args)
                            if isinstance(arg.dtype if isinstance(arg, numba.types.Array) else arg, numbers))
            for name, text in signatures.items()}


def numpy_names(namespace: dict[str, Any]) -> list[str]:
    """The names under which the namespace holds numpy: the module itself, or the candidates' view of it
    (`namespace.module_copy`), which is what the sandbox's restricted namespace holds."""
    views = (np, module_copy("numpy"))
    return [name for name, value in namespace.items() if any(value is view for view in views)]


def candidate_cache_name(source: str, name: str, options: dict[str, Any]) -> str:
    """What a candidate function's compilations are keyed by: its name, the options, and the whole source as adjusted
    for numba, so a compilation is loaded only for the very code it was compiled from (not for a program planted
    under another's name, nor after evoforge changed how it adjusts programs)."""
    return (f"candidate:{name}:{sorted(options.items())}:{hashlib.sha256(source.encode()).hexdigest()[:16]}"
            f":checks{CHECKS_VERSION}")


def jitted(code: str, namespace: dict[str, Any], entries: dict[str, str], on_save: Callable[[str, str], None],
           options: dict[str, Any], signatures: dict[str, str] | None = None) -> dict[str, Any]:
    """A copy of the namespace where each function of the candidate is a numba dispatcher (not compiled yet) of its
    source as numba_semantics adjusts it, so that they call each other compiled; raises Divergent where the
    candidate must run as Python. Defining the functions runs none of the candidate's code (`numba_load`).
    `signatures`: the evolved functions' declared signatures, where the harness declares them."""
    source = numba_semantics.for_numba(code, numeric_arguments(signatures or {}), numpy_names(namespace))
    jit_ns = dict(namespace)
    jit_ns[numba_semantics.POW] = numba_semantics.evoforge_pow
    jit_ns[numba_semantics.FIT] = numba_semantics.evoforge_fit
    jit_ns[numba_semantics.MUL] = numba_semantics.evoforge_mul
    tree = ast.parse(source)
    defined = numba_load.define(source, "<compiled candidate>", jit_ns)
    numba_semantics.refuse_python_random({node.id: jit_ns.get(node.id) for node in ast.walk(tree)
                                          if isinstance(node, ast.Name)})
    for name in defined:
        dispatcher = numba.njit(**options)(jit_ns[name])
        dispatcher._cache = PayloadCache(candidate_cache_name(source, name, options), entries, on_save)
        jit_ns[name] = dispatcher
    return jit_ns


def compile_candidate(code: str, namespace: dict[str, Any], entries: dict[str, str],
                      on_save: Callable[[str, str], None], scope: dict[str, Any] | None = None) -> list[str]:
    """Compile the candidate's evolved functions that a harness takes, to their declared signatures, and put a
    `CompiledFunction` for each in its place in `namespace` (where the candidate's Python functions are); return
    their names. Raises (numba_semantics.Divergent, or what numba raised) if they cannot be compiled to compute
    what Python computes; nothing in the namespace is replaced then."""
    signatures = evolved_signatures(namespace)
    # `scope`: what the compiled code may see besides its arguments (numba freezes each global it reads as a
    # constant), where a restricted namespace for candidates is built; by default the namespace the code was run in
    jit_ns = jitted(code, namespace if scope is None else scope, entries, on_save, CANDIDATE_OPTIONS, signatures)
    compiled = {}
    for name, text in signatures.items():
        dispatcher = jit_ns.get(name)
        if not isinstance(dispatcher, numba.core.registry.CPUDispatcher):
            raise TypeError(f"{name} is not a function of the candidate")
        try:
            dispatcher.compile(parse_signature(text))
        except TypingError as exc:
            returned = _NONE_RETURNED.search(str(exc))
            if returned is None:
                raise
            raise TypeError(f"{name} returns None on some path (a branch that ends without `return`?), but the "
                            f"compiled harness declares it as {text}: return a {returned.group(1)} on every "
                            "path") from None
        dispatcher.disable_compile()
        dispatcher.__wrapper_address__ = _no_cfunc_wrapper
        compiled[name] = CompiledFunction(namespace[name], dispatcher)
    namespace.update(compiled)
    return list(compiled)


# numba's words for a function that may fall off its end while its signature returns a value.
_NONE_RETURNED = re.compile(r"No conversion from none to (\S+) for '\$\w*return_value")


def _first_lines(exc: BaseException, count: int = 6) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return "\n".join(lines[:count])[:800] or type(exc).__name__


def install(code: str, namespace: dict[str, Any], plan: Any, fallback: str,
            send: Callable[[dict[str, Any]], None], scope: dict[str, Any] | None = None) -> bool:
    """Prepare a candidate for a problem with compiled harnesses. With payloads for it, or with no Python time to
    spend first (numba=True), compile now, before anything of the candidate runs: only such a compilation is
    reported for keeping. Otherwise ("auto") every harness runs as Python until the calls have used
    `plan.compile_after_s`, then compiles and runs compiled. True where it compiled now."""
    if plan.entries or plan.compile_after_s <= 0:
        return compile_now(code, namespace, plan.entries, fallback, send, scope)
    switch = _AutoSwitch(code, namespace, plan, fallback, send, scope)
    for harness in harnesses(namespace).values():
        harness.hook = switch
    return False


def compile_now(code: str, namespace: dict[str, Any], entries: dict[str, str], fallback: str,
                send: Callable[[dict[str, Any]], None], scope: dict[str, Any] | None = None) -> bool:
    """Compile the candidate's functions for the harnesses; False (and the reason printed) if numba refused and
    the problem falls back to Python; raises CandidateError (the reason alone, with no traceback of evoforge's
    own code) if it refuses such candidates."""
    saved: dict[str, str] = {}
    send({"t": "compile", "phase": "begin"})
    try:
        names = compile_candidate(code, namespace, entries, saved.__setitem__, scope)
    except MemoryError:
        raise
    except Exception as exc:
        send({"t": "compile", "phase": "end", "ok": False})
        reason = f"{type(exc).__name__}: {_first_lines(exc)}"
        if fallback == "refuse":
            raise CandidateError(f"numba could not compile the evolved function(s) in nopython mode, and this problem "
                          f"refuses such programs (numba_fallback='refuse'). {reason}") from None
        print(f"[evoforge] numba could not compile the evolved function(s); they ran as plain Python. {reason}",
              file=sys.stderr)
        return False
    for key, data in saved.items():
        send({"t": "jit", "key": key, "data": data})
    send({"t": "compile", "phase": "end", "ok": True, "cached": not saved})
    return bool(names)


class _AutoSwitch:
    """numba="auto" for a compiled harness: harness calls run as Python (and are timed) until they have used about
    what a compilation costs, then the candidate is compiled and the remaining calls run compiled (ski rental)."""

    def __init__(self, code: str, namespace: dict[str, Any], plan: Any, fallback: str,
                 send: Callable[[dict[str, Any]], None], scope: dict[str, Any] | None):
        self.code, self.namespace, self.fallback, self.send, self.scope = code, namespace, fallback, send, scope
        self.left_s = plan.compile_after_s
        self.python = {name: namespace[name] for name in evolved_signatures(namespace)}
        self.decided = False

    def __call__(self, harness: Any, args: tuple[Any, ...]) -> Any:
        if not self.decided and self.left_s <= 0:
            self.decided = True
            compile_now(self.code, self.namespace, {}, self.fallback, self.send, self.scope)
        if self.decided:
            swapped = list(args)
            for name, index in zip(harness.evolved, harness.positions):
                if index < len(args) and args[index] is self.python.get(name):
                    swapped[index] = self.namespace[name]
            compiled = harness.compiled_args(tuple(swapped))
            if compiled is not None:
                return harness.call_compiled(compiled)
            return harness.py_func(*args)
        start = time.perf_counter()
        try:
            return harness.py_func(*args)
        finally:
            self.left_s -= time.perf_counter() - start


def warm_payloads() -> None:
    """Compile a small function, save it as a payload and load it back, so that the modules doing so are imported
    in the server (where the Python install is readable), not in a candidate that may not read it."""
    entries: dict[str, str] = {}
    for _ in range(2):
        namespace: dict[str, Any] = {}
        exec(compile("def warm(x):\n    return x + 1\n", "<evoforge warm-up>", "exec"), namespace)
        dispatcher = numba.njit(namespace["warm"])
        dispatcher._cache = PayloadCache("warm", entries, entries.__setitem__)
        dispatcher.compile((numba.types.int64,))
