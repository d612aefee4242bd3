"""Where numba's nopython mode computes other numbers than Python and numpy, the candidate's source is adjusted
for compiling, or not compiled at all (it then runs as Python), so that compiled and Python scores are the same.

- `x ** 3` with an integer exponent: numba multiplies (two roundings), Python and numpy call pow() on a float
  exponent (one rounding); a quarter of the results differ in the last bit, enough to flip a tie. The compiled
  source calls `evoforge_pow`, which numba lowers to `x ** float(3)` where the base is a float or a float array.
- In-place operators on overlapping views (`s[1:] -= s[:-1]`): numpy buffers the right side, numba's loop reads
  what it already wrote. Such a candidate is not compiled.
- Names that reach raw memory or the interpreter from compiled code (`ctypes`, `carray`, `as_strided`, `numba`,
  ...): compiled code runs inside the harness's process, so a candidate that uses them is not compiled.
"""

from __future__ import annotations

import ast

from numba.core import types
from numba.extending import overload

POW = "evoforge_pow"
UNSAFE_NAMES = frozenset({"numba", "ctypes", "ctypeslib", "cffi", "carray", "farray", "as_strided", "stride_tricks",
                          "lib", "objmode", "literally", "address_as_void_pointer", POW})


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


def for_numba(code: str) -> str:
    """The candidate's source as it is compiled; raises Divergent where it must run as Python instead."""
    tree = ast.parse(code)
    unsafe = sorted({name for node in ast.walk(tree) for name in [_name_of(node)] if name in UNSAFE_NAMES})
    if unsafe:
        raise Divergent(f"compiled code may not use {', '.join(unsafe)}")
    _refuse_overlapping_updates(tree)
    return ast.unparse(ast.fix_missing_locations(_PowCalls().visit(tree)))


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


class _PowCalls(ast.NodeTransformer):
    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            return ast.copy_location(ast.Call(ast.Name(POW, ast.Load()), [node.left, node.right], []), node)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            raise Divergent(f"line {node.lineno}: `**=` is not compiled; write x = x ** y")
        return node
