"""Where numba's nopython mode computes other numbers than Python and numpy, the candidate's source is adjusted
for compiling, or not compiled at all (it then runs as Python), so that compiled and Python scores are the same.

- `x ** 3` with an integer exponent: numba multiplies (two roundings), Python and numpy call pow() on a float
  exponent (one rounding); a quarter of the results differ in the last bit, enough to flip a tie. The compiled
  source calls `evoforge_pow`, which numba lowers to `x ** float(3)` where the base is a float or a float array.
- In-place operators on overlapping views (`s[1:] -= s[:-1]`): numpy buffers the right side, numba's loop reads
  what it already wrote. Such a candidate is not compiled.
- Python's `random`: numba's has a seeding of its own (`random.seed(3)` starts another sequence) and, unseeded, a
  state of its own in each process, so compiled draws differ from Python's and between runs. Code that uses it
  is not compiled (`refuse_python_random`); np.random draws the same numbers compiled, and is seeded in the sandbox.
- `seq * n` for a list or a string: numba computes the length in arithmetic that wraps and copies past what it
  allocated (`[x] * 7 * 7905747460161236407` is one item long and writes seven). The compiled source calls
  `evoforge_mul`, which refuses a length past an intp as Python does (MemoryError for a list, OverflowError for a
  string or bytes; an item of an array of text, `np.asarray('abc')[()]`, is repeated as a string), and `seq *= n`
  checks the same first (`evoforge_fit`). A product that cannot repeat a sequence (a float or small literal on one
  side, numbers and the harness's numeric arguments on both) stays `*`, so that numba still fuses array
  expressions (plain_products.py).
- Text of a number (`str(n)`, `repr(n)`, an f-string): numba sizes an integer's text by `floor(log10(n))` in
  floating point, one character too long where the float rounds up to a power of ten (`str(10**17 - 1)`), and
  leaves that first character as the allocator left it (in the harness's process); `str(-2**63)` asks for a
  negative length and `str(1.5)` is a placeholder ('<object type:float64>'). Code that makes such text is not
  compiled (`_refuse_number_text`).
- Memory: compiled code runs inside the harness's process, next to the inputs, and numba checks only plain
  indexing (`boundscheck`); parts of its library read and write past an array's end (`a.flat[i]`,
  `np.take_along_axis`, `np.bincount` of negatives, a ufunc's positional `out`, `np.round(scalar, 0, out)` into
  an empty view that points past an array, `a += b` with shapes that do not broadcast). So compiled code may use
  only attributes and functions of `COMPILED_NAMES`, which are bounds-checked (tests/test_hostile_trust.py tries
  each door above); anything else runs as Python, where numpy checks. A ufunc, and any compiled function with an
  `out` parameter (`OUTPUT_AFTER`), is compiled only when called directly without it, and every in-place operator
  checks first that its right side broadcasts to the target's shape (`evoforge_fit`), as numpy does.
"""

from __future__ import annotations

import ast
import math
import random
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
from numba.core import types
from numba.core.types.containers import Bytes, List, ListType
from numba.core.types.misc import UnicodeType
from numba.core.types.npytypes import CharSeq, UnicodeCharSeq
from numba.extending import overload, register_jitable

from evoforge.evaluators.inside.plain_products import numeric_names, stays_plain

POW = "evoforge_pow"
FIT = "evoforge_fit"
MUL = "evoforge_mul"
UNSAFE_NAMES = frozenset({"numba", "ctypes", "ctypeslib", "cffi", "carray", "farray", "as_strided", "stride_tricks",
                          "lib", "objmode", "literally", "address_as_void_pointer", POW, FIT, MUL})
MAX_ITEMS = (1 << 63) - 1  # the most items a list or string can have (an intp)
# The most characters numba's string allocation holds: it asks for (length + 1) * 4 bytes for 4-byte characters
# in arithmetic that wraps, so `'\U0001F600' * 2**62` allocated 4 bytes and copied past them.
MAX_TEXT = MAX_ITEMS // 4 - 1
# Builtins that make text of a value, and so of a number (see the module docstring); f-strings do the same.
TEXT_OF = frozenset({"str", "repr", "format", "ascii"})
# Attributes and imported names compiled code may use: numpy functions and array members whose numba versions
# check their memory accesses (np.random's draws among them), the scalar functions of math, and containers' methods.
_NUMPY = """
zeros ones full empty zeros_like ones_like full_like empty_like arange linspace array asarray copy concatenate stack
hstack vstack where nonzero flatnonzero argwhere sum prod cumsum cumprod mean median std var min max amin amax argmin
argmax sort argsort unique diff count_nonzero all any isnan isinf isfinite clip round around dot outer interp
searchsorted percentile quantile nan_to_num isin abs absolute sign sqrt square cbrt exp exp2 expm1 log log1p log2
log10 power sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh floor ceil rint trunc
minimum maximum fmin fmax add subtract multiply divide true_divide floor_divide mod remainder negative hypot
logical_and logical_or logical_not logical_xor greater greater_equal less less_equal equal not_equal pi e inf nan
int64 int32 int16 int8 uint64 uint32 uint16 uint8 float64 float32 bool_ intp complex128 linalg norm random
rand randn randint uniform normal seed choice shuffle permutation exponential standard_normal poisson binomial
shape size ndim dtype T real imag reshape ravel flatten fill transpose astype
append pop insert extend index count reverse keys values items get remove clear update discard
"""
COMPILED_NAMES = frozenset(_NUMPY.split()) | frozenset(name for name in dir(math) if not name.startswith("_"))
# A ufunc's inputs: more positional arguments than that are its `out`, which numba does not check.
UFUNC_INPUTS = {name: getattr(np, name).nin for name in COMPILED_NAMES
                if isinstance(getattr(np, name, None), np.ufunc)}
# The other compiled functions that take an `out` after these many positional arguments. numba's np.round of a
# scalar writes out[0] unchecked, so an empty view whose data pointer lies past an array (`x[::k][len:]`) writes
# anywhere in the harness's process; the others check `out` in this numba, but a positional out stays refused.
OUTPUT_AFTER = {**UFUNC_INPUTS, "round": 2, "around": 2, "clip": 3, "outer": 2, "dot": 2}


class Divergent(ValueError):
    """The candidate uses something compiled code would compute differently, or must not reach."""


def evoforge_pow(base, exponent):  # unannotated: the overload must match it exactly
    """`base ** exponent` as Python and numpy compute it (see the module docstring); compiled only."""
    return base ** exponent


@overload(evoforge_pow)
def _pow(base, exponent):  # unannotated: numba wants the plain signature of evoforge_pow
    floats = isinstance(base, types.Float) or (isinstance(base, types.Array) and isinstance(base.dtype, types.Float))
    if floats and isinstance(exponent, types.Integer):
        return lambda base, exponent: base ** float(exponent)
    return lambda base, exponent: base ** exponent


def evoforge_mul(left, right):  # unannotated: the overload must match it exactly
    """`left * right`, where a list or string repeated is first checked to have a length an intp holds; compiled
    only."""
    return left * right


# What numba repeats by an integer, by kind: a list (MemoryError past an intp, as Python), text (an item of an array
# of text, `np.asarray('abc')[()]`, is a UnicodeCharSeq, which numba repeats as a str) and bytes (OverflowError).
_LISTS, _TEXT, _BYTES = (List, ListType), (UnicodeType, UnicodeCharSeq), (CharSeq, Bytes)
_REPEATED = (*_LISTS, *_TEXT, *_BYTES)


def _kind(seq: Any) -> int:
    """_check_repeat's kind of a repeated type: 0 a list, 1 text, 2 bytes."""
    return 1 if isinstance(seq, _TEXT) else 2 if isinstance(seq, _BYTES) else 0


@overload(evoforge_mul)
def _mul(left, right):  # unannotated: numba wants the plain signature of evoforge_mul
    if isinstance(left, _REPEATED) and isinstance(right, types.Integer):
        kind = _kind(left)

        def repeat(left, right):
            _check_repeat(len(left), right, kind)
            return left * right
        return repeat
    if isinstance(left, types.Integer) and isinstance(right, _REPEATED):
        return lambda left, right: evoforge_mul(right, left)  # n * seq is seq * n, checked as above
    return lambda left, right: left * right


@register_jitable
def _check_repeat(length, times, kind):  # unannotated: compiled inside the overloads
    """numba computes a repetition's length as length * times in wrapping arithmetic, allocates that many items
    and copies `length` items per repetition: a product that wraps to a small number (7 * 7905747460161236407 is
    1 modulo 2**64) writes past the allocation, into the harness's memory; a string's bytes wrap before its
    length does (MAX_TEXT). Refuse it as Python does (`kind`: see _kind)."""
    if times > 0 and length > MAX_ITEMS // times:
        if kind == 1:
            raise OverflowError("repeated string is too long")
        if kind == 2:
            raise OverflowError("repeated bytes are too long")
        raise MemoryError("repeated sequence is too long")
    if kind != 0 and times > 0 and length > MAX_TEXT // times:  # Python cannot allocate that much either
        raise MemoryError("repeated string is too long")


def evoforge_fit(target, value):  # unannotated: the overload must match it exactly
    """The right side of `target op= value`, once it is known to broadcast to target's shape (an array) or to
    repeat to a length an intp holds (`seq *= n`); compiled only."""
    return value


@overload(evoforge_fit)
def _fit(target, value):  # unannotated: numba wants the plain signature of evoforge_fit
    if isinstance(target, _REPEATED) and isinstance(value, types.Integer):
        kind = _kind(target)

        def repeat(target, value):
            _check_repeat(len(target), value, kind)
            return value
        return repeat
    if not (isinstance(target, types.Array) and isinstance(value, types.Array)):
        return lambda target, value: value
    if value.ndim > target.ndim:
        def refuse(target, value):
            raise ValueError("non-broadcastable operand in an in-place operation")
        return refuse
    offset = target.ndim - value.ndim

    def checked(target, value):
        for i in range(value.ndim):
            size = value.shape[i]
            if size != 1 and size != target.shape[offset + i]:
                raise ValueError("non-broadcastable operand in an in-place operation")
        return value
    return checked


def for_numba(code: str, numeric_args: Mapping[str, Collection[int]] | None = None,
              numpy_globals: Collection[str] = ()) -> str:
    """The candidate's source as it is compiled; raises Divergent where it must run as Python instead.
    `numeric_args`: for each evolved function the harness calls, the positions of its arguments whose declared
    type is a number or an array of numbers; `numpy_globals`: the names of numpy in the candidate's namespace
    (both tell plain_products.py where a product may stay `*`)."""
    tree = ast.parse(code)
    unsafe = sorted({name for node in ast.walk(tree) for name in [_name_of(node)] if name in UNSAFE_NAMES})
    if unsafe:
        raise Divergent(f"compiled code may not use {', '.join(unsafe)}")
    _refuse_unchecked_memory(tree)
    _refuse_number_text(tree)
    _refuse_overlapping_updates(tree)
    numeric = numeric_names(tree, numeric_args or {}, numpy_globals)
    tree = _FitInPlace().visit(_OperatorCalls(numeric).visit(tree))
    return ast.unparse(ast.fix_missing_locations(tree))


def _refuse_unchecked_memory(tree: ast.AST) -> None:
    """Divergent unless every attribute and imported name is in COMPILED_NAMES and every ufunc is called with its
    inputs only (see the module docstring)."""
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    annotations = {id(sub) for node in ast.walk(tree) for note in _annotations(node) for sub in ast.walk(note)}
    for node in ast.walk(tree):
        if id(node) in annotations:  # never compiled (numba types the arguments it is given)
            continue
        names: list[str] = []
        if isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
        line = getattr(node, "lineno", "?")
        for name in names:
            if name not in COMPILED_NAMES:
                raise Divergent(f"line {line}: `{name}` is not compiled (numba does not check all of its "
                                "memory accesses)")
            if name in OUTPUT_AFTER and (isinstance(node, ast.ImportFrom) or id(node) not in called):
                raise Divergent(f"line {line}: `{name}` is compiled only where it is called")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in OUTPUT_AFTER
                and (len(node.args) > OUTPUT_AFTER[node.func.attr]
                     or any(isinstance(a, ast.Starred) for a in node.args)
                     or any(k.arg in ("out", None) for k in node.keywords))):
            raise Divergent(f"line {node.lineno}: `{node.func.attr}` with an output argument is not compiled")


def _refuse_number_text(tree: ast.AST) -> None:
    """Divergent where the code makes text of a value (`TEXT_OF`, f-strings): numba's text of a number is not
    Python's, and an integer's can hold a character nothing wrote (see the module docstring). An annotation
    (`word: str`) makes no text and is never compiled."""
    annotations = {id(sub) for node in ast.walk(tree) for note in _annotations(node) for sub in ast.walk(note)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in TEXT_OF and id(node) not in annotations:
            raise Divergent(f"line {node.lineno}: `{node.id}` is not compiled (numba's text of a number differs "
                            "from Python's)")
        if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.FormattedValue) for v in node.values):
            raise Divergent(f"line {node.lineno}: an f-string is not compiled (numba's text of a number differs "
                            "from Python's)")


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _root(node: ast.AST) -> str | None:
    """The variable an expression is a view of, where it may be one (`b`, `b[1:]`, `b.T`, `b.reshape(...)`)."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, (ast.Subscript, ast.Attribute)):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        else:
            return None


def _refuse_overlapping_updates(tree: ast.AST) -> None:
    groups: dict[str, set[str]] = {}

    def group(name: str) -> set[str]:
        return groups.setdefault(name, {name})

    for node in ast.walk(tree):  # every name bound to a possible view of another is one group with it
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            root = _root(node.value)
            if root is not None:
                merged = group(node.targets[0].id) | group(root)
                for name in merged:
                    groups[name] = merged
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and any(k.arg == "out" for k in node.keywords):
            raise Divergent("a ufunc's out= argument is not compiled (numba does not guard against overlap)")
        if not isinstance(node, ast.AugAssign):
            continue
        target = _root(node.target)
        if target is None:
            continue
        aliases = group(target)
        reads_view = any(_root(sub) in aliases for sub in ast.walk(node.value)
                         if isinstance(sub, (ast.Subscript, ast.Attribute, ast.Call)))
        mentions = any(isinstance(sub, ast.Name) and sub.id in aliases for sub in ast.walk(node.value))
        if reads_view or (mentions and isinstance(node.target, ast.Subscript)):
            raise Divergent(f"line {node.lineno}: an in-place update of {target} that reads {target} (or a view of "
                            "it) is not compiled: numba does not buffer overlapping views as numpy does")


def _annotations(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.arg):
        return [node.annotation] if node.annotation is not None else []
    if isinstance(node, ast.FunctionDef):
        return [node.returns] if node.returns is not None else []
    if isinstance(node, ast.AnnAssign):
        return [node.annotation]
    return []


class _FitInPlace(ast.NodeTransformer):
    """`t op= v` becomes `t op= evoforge_fit(t, v)`: numba's in-place operators do not check that v broadcasts."""

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if any(isinstance(sub, ast.Call) for sub in ast.walk(node.target)):
            raise Divergent(f"line {node.lineno}: an in-place update of a target that calls a function is not "
                            "compiled")
        current = _as_load(node.target)
        node.value = ast.copy_location(ast.Call(ast.Name(FIT, ast.Load()), [current, node.value], []), node.value)
        return node


def _as_load(node: ast.expr) -> ast.expr:
    """A copy of an assignment target that reads it."""
    copy = ast.parse(ast.unparse(node), mode="eval").body
    return ast.copy_location(copy, node)


class _OperatorCalls(ast.NodeTransformer):
    """`a ** b` becomes a call of evoforge_pow, and `a * b` of evoforge_mul unless it cannot repeat a sequence
    (plain_products.py; see the module docstring). `numeric`: each evolved function's numeric parameters, which
    count as numbers inside that function only."""

    def __init__(self, numeric: Mapping[str, frozenset[str]]) -> None:
        self._numeric = numeric
        self._inside: frozenset[str] = frozenset()

    def visit_Module(self, node: ast.Module) -> ast.AST:
        for i, statement in enumerate(node.body):  # a top-level function's names hold in it and its nested ones
            self._inside = (self._numeric.get(statement.name, frozenset())
                            if isinstance(statement, ast.FunctionDef) else frozenset())
            node.body[i] = self.visit(statement)
        self._inside = frozenset()
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            return ast.copy_location(ast.Call(ast.Name(POW, ast.Load()), [node.left, node.right], []), node)
        if isinstance(node.op, ast.Mult) and not stays_plain(node, self._inside, POW):
            return ast.copy_location(ast.Call(ast.Name(MUL, ast.Load()), [node.left, node.right], []), node)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            raise Divergent(f"line {node.lineno}: `**=` is not compiled; write x = x ** y")
        return node


def refuse_python_random(bound: dict[str, Any]) -> None:
    """Divergent if a name the compiled code reads is Python's `random` module or one of its draws (see the module
    docstring); `bound` maps the names to what the candidate's namespace binds them to."""
    for name, value in bound.items():
        if (isinstance(value, type(math)) and value.__name__ == "random") or isinstance(
                getattr(value, "__self__", None), random.Random):
            raise Divergent(f"`{name}` is Python's random module (or one of its functions): numba draws other "
                            "numbers from it; use np.random to run compiled")
