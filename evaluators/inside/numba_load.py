"""Define a candidate's functions for numba in the harness's process without running any of its Python code.

numba compiles a function object, and running the candidate's module to make one runs its load-time code (default
arguments, decorators, annotations, top-level statements) in the harness's process, next to the problem module and
the inputs. Here each top-level `def` becomes a function object built from its code object alone; its defaults
must be constants. Imports are bound by the restricted namespace's own import (no code of the candidate's runs),
and a top-level name is bound only to a constant expression evaluated here (numbers, strings, tuples, arithmetic,
a number read from an imported module). A program with anything else at load time (a decorator, a call, a class,
a loop) is not compiled: it runs as Python, in its own process, like every Python candidate.
"""

from __future__ import annotations

import ast
import operator
import types
from collections.abc import Callable
from typing import Any

from evoforge.evaluators.inside.numba_semantics import MUL, POW, Divergent

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_EXPONENT = 64  # `2 ** 10 ** 9` must not take the harness's time
_SPELLED = {POW: ast.Pow, MUL: ast.Mult}  # the calls numba_semantics writes for these operators
MAX_DIGITS = 400  # nor a chain of large products


def define(source: str, filename: str, scope: dict[str, Any]) -> list[str]:
    """Bind the program's imports, constants and functions in scope, in program order; return the functions'
    names. Raises Divergent where the program has load-time code that would have to run."""
    defined: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            scope[node.name] = _function(node, filename, scope)
            defined.append(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([node], []), filename, "exec"), scope)  # only the namespace's import runs
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            value = _constant(node.value, scope)
            for target in node.targets:
                scope[target.id] = value  # type: ignore[attr-defined]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            scope[node.target.id] = _constant(node.value, scope)
        elif isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            continue
        else:
            raise _load_time(node, f"a top-level {type(node).__name__}")
    return list(dict.fromkeys(defined))


def _function(node: ast.FunctionDef, filename: str, scope: dict[str, Any]) -> types.FunctionType:
    if node.decorator_list:
        raise _load_time(node, f"a decorator on {node.name}")
    # The module's code, which would evaluate defaults and annotations, never runs: only the function's own code
    module = compile(ast.Module([node], []), filename, "exec")
    code = next(c for c in module.co_consts if isinstance(c, types.CodeType) and c.co_name == node.name)
    defaults = tuple(_constant(d, scope) for d in node.args.defaults) or None
    function = types.FunctionType(code, scope, node.name, defaults)
    keyword = {arg.arg: _constant(d, scope) for arg, d in zip(node.args.kwonlyargs, node.args.kw_defaults)
               if d is not None}
    if keyword:
        function.__kwdefaults__ = keyword
    return function


def _constant(node: ast.expr, scope: dict[str, Any]) -> Any:
    """The value of a constant expression, computed without running anything of the candidate's."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, complex, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_constant(e, scope) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _number(_UNARY[type(node.op)](_number(_constant(node.operand, scope), node)), node)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(type(node.op), _constant(node.left, scope), _constant(node.right, scope), node)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SPELLED
            and len(node.args) == 2 and not node.keywords):  # numba_semantics' spelling of ** and *
        return _binary(_SPELLED[node.func.id], _constant(node.args[0], scope), _constant(node.args[1], scope), node)
    if isinstance(node, ast.Name) and isinstance(scope.get(node.id), (int, float, complex, str, tuple)):
        return scope[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        module = scope.get(node.value.id)
        if isinstance(module, types.ModuleType):
            return _number(getattr(module, node.attr, None), node)
    raise _load_time(node, "a top-level value that is not a constant")


def _binary(op: type[ast.operator], left: Any, right: Any, node: ast.AST) -> Any:
    if op is ast.Add and isinstance(left, tuple) and isinstance(right, tuple):
        return left + right
    left, right = _number(left, node), _number(right, node)
    if op is ast.Pow and (not isinstance(right, (int, float)) or abs(right) > MAX_EXPONENT):
        raise _load_time(node, "a large power at top level")
    try:
        return _number(_BINARY[op](left, right), node)
    except (ArithmeticError, ValueError) as exc:  # Python raises it at load time: the Python run reports it
        raise _load_time(node, f"{type(exc).__name__} at top level") from None


def _number(value: Any, node: ast.AST) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
        raise _load_time(node, "a top-level value that is not a constant")
    if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3:
        raise _load_time(node, "a very large top-level number")
    return value


def _load_time(node: ast.AST, what: str) -> Divergent:
    return Divergent(f"line {getattr(node, 'lineno', '?')}: {what} would run the program's code at load time; "
                     "it runs as Python in its own process")
