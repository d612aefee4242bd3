"""Expression-level mutations of one statement: perturb a constant, swap an operator, add a term, add a thresholded
adjustment before a return. Each returns an `Edit` of the parent's lines, or None when the function offers no site.

Names used as values come from the function's arguments and its own sub-expressions; a builtin (`float`, `len`)
or a module (`np`) is never one of them, since `float ** 2` is no number. Where the function holds numpy arrays
(`array_names`), values that read them are preferred and their thresholds may lie in their own range (`_cut`): a
priority used through argmax ignores whatever moves all its elements alike.
"""

from __future__ import annotations

import ast
import builtins
import copy
import math
import re
from collections.abc import Callable, Collection
from typing import cast

import numpy as np

from evoforge.engine.propose.offline.locate import (
    Edit,
    Site,
    call_name,
    edit_for,
    indent_of,
    owned_exprs,
    replace_node,
    sites_of,
    span_of,
    statements_of,
    walk_sites,
)

BUILTIN_NAMES = frozenset(dir(builtins))
_NUMERIC_CALLS = {"abs", "min", "max", "float", "sum", "pow", "round"}
MODULES = frozenset({"np", "numpy", "math"})
NUMERIC_METHODS = frozenset({"astype", "sum", "mean", "max", "min", "copy", "ravel", "flatten", "cumsum", "clip",
                             "round", "std", "prod", "reshape", "dot"})
_CALL_SWAPS = {"minimum": "maximum", "maximum": "minimum", "min": "max", "max": "min", "argmin": "argmax",
               "argmax": "argmin", "floor": "ceil", "ceil": "floor", "amin": "amax", "amax": "amin"}
_BIN_SWAPS: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
                                ast.FloorDiv: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
_CMP_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.Gt, ast.GtE), ast.LtE: (ast.Lt, ast.GtE, ast.Gt), ast.Gt: (ast.GtE, ast.Lt, ast.LtE),
    ast.GtE: (ast.Gt, ast.LtE, ast.Lt), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,)}
_NUMERIC_ANNOTATION = re.compile(r"^(int|float|complex|bool|(np|numpy)\.\w+|ndarray|Number|Real)$")
_SEQUENCE_ANNOTATION = re.compile(r"^(typing\.)?(tuple|list|Tuple|List|Sequence|Iterable)\b")
_ARRAY_ANNOTATION = re.compile(r"^((np|numpy|npt)\.)?(ndarray|NDArray)\b")


# --- numbers ---------------------------------------------------------------------------------------------------

def number(value: float | int) -> ast.expr:
    """A literal; negatives as unary minus so that `x ** -0.5` and `-2 ** 2` unparse as meant."""
    if value < 0:
        return ast.UnaryOp(op=ast.USub(), operand=ast.Constant(-value))
    return ast.Constant(value)


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def _coefficient(rng: np.random.Generator, g: ast.expr | None = None) -> float:
    # A square grows fast, so its useful coefficients are small (best fit -r becomes -r + 0.01 * r ** 2).
    square = isinstance(g, ast.BinOp) and isinstance(g.op, ast.Pow)
    return _round3(10 ** (rng.uniform(-3, -0.5) if square else rng.uniform(-2, 0.5)))


def _threshold(rng: np.random.Generator, allow_zero: bool = True) -> float:
    if allow_zero and rng.random() < 0.15:
        return 0.0
    return _round3(10 ** rng.uniform(-1, 2))


def _step_coefficient(rng: np.random.Generator) -> float:
    # The c of a step factor `x * (1 + c * (v < t))` is a ratio whatever the scale of x: from 0.03 (a nudge) to 20
    # (the elements past t fall far behind or ahead; above 1 with a minus, they change sign).
    return _round3(10 ** rng.uniform(-1.5, 1.3))


def array_names(func: ast.FunctionDef) -> frozenset[str]:
    """The names that hold arrays in `func`, by their annotations: the arguments annotated as numpy arrays, and
    the names assigned from an expression that reads one of them."""
    names = {a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs
             if a.annotation is not None and _ARRAY_ANNOTATION.match(ast.unparse(a.annotation))}
    for stmt in sorted(statements_of(func), key=lambda n: (n.lineno, n.col_offset)):
        if isinstance(stmt, ast.Assign) and names and reads_any(stmt.value, names):
            names |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    return frozenset(names)


def reads_any(node: ast.AST, names: Collection[str]) -> bool:
    """Whether the expression reads one of `names`."""
    return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in names for n in ast.walk(node))


def _cut(v: ast.expr, arrays: frozenset[str], rng: np.random.Generator) -> ast.expr:
    """A threshold to compare v with. Where v reads an array, half the time a point of its own range,
    `np.min(v) + q * (np.max(v) - np.min(v))`: it lies among v's elements whatever their scale, where a number
    drawn on a log scale mostly misses them, and a comparison that is the same for every element changes no ranking
    (a priority used through argmax gave a behavioural twin). Otherwise, or for a scalar, a number. The spread is
    spelled max - min, not `np.ptp`, which the sandbox does not compile (evaluators/numba_semantics.py)."""
    if reads_any(v, arrays) and rng.random() < 0.5:
        q = _round3(rng.uniform(0.05, 0.95))
        spread = ast.BinOp(left=_np("max", copy.deepcopy(v)), op=ast.Sub(), right=_np("min", copy.deepcopy(v)))
        return ast.BinOp(left=_np("min", copy.deepcopy(v)), op=ast.Add(),
                         right=ast.BinOp(left=ast.Constant(q), op=ast.Mult(), right=spread))
    return number(_threshold(rng))


def constant_value(node: ast.AST) -> float | int | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return cast("float | int", node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = constant_value(node.operand)
        return None if inner is None else -inner
    return None


def _new_constant(value: float | int, int_ctx: bool, rng: np.random.Generator) -> float | int:
    if isinstance(value, int) and (int_ctx or rng.random() < 0.6):
        if abs(value) < 4 or rng.random() < 0.5:
            new = value + int(rng.choice([-2, -1, 1, 2]))
        else:
            new = int(round(value * math.exp(rng.normal(0, 0.4))))
        if int_ctx and value >= 0:
            new = max(new, 0)
        return new if new != value else value + 1
    x = float(value)
    roll = rng.random()
    if roll < 0.1 and x != 0:
        moved = -x
    elif roll < 0.6 and x != 0:
        moved = x * math.exp(rng.normal(0, 0.5))
    else:
        moved = x + rng.normal(0, 0.3) * max(abs(x), 1.0)
    moved = _round3(moved)
    return moved if moved != x else _round3(x + 0.1)


# --- mutations -------------------------------------------------------------------------------------------------

def constant_targets(func: ast.FunctionDef, lines: list[str]) -> list[tuple[Site, tuple[int, int], float | int]]:
    """The constants a `constant` mutation may change, in source order, with their values."""
    targets = []
    for site, span in sites_of(func, lines):
        value = constant_value(site.node)
        if value is None or isinstance(site.parent, ast.UnaryOp) and constant_value(site.parent) is not None:
            continue  # `-1` is mutated as one constant, not as the 1 inside it
        targets.append((site, span, value))
    return targets


def _mutate_constant(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    targets = constant_targets(func, lines)
    if not targets:
        return None
    site, span, value = targets[int(rng.integers(len(targets)))]
    new = _new_constant(value, site.int_ctx, rng)
    replace_node(site.stmt, site.node, number(new))
    return edit_for(site.stmt, lines, span, func)


def repeat_constant(func: ast.FunctionDef, lines: list[str], index: int, before: float,
                    after: float) -> Edit | None:
    """Move constant `index` on as a move from `before` to `after` did: by the same ratio where both have one
    sign, else by the same difference (an integer stays one). None where the constant is gone or would not change."""
    targets = constant_targets(func, lines)
    if not 0 <= index < len(targets):
        return None
    site, span, value = targets[index]
    if value != after:
        return None  # another edit moved it since
    if isinstance(value, int) and float(before).is_integer():
        new: float | int = value + int(after - before)
        if site.int_ctx and new < 0:
            return None
    elif before * after > 0:
        new = _round3(after * (after / before))
    else:
        new = _round3(after + (after - before))
    if new == value:
        return None
    replace_node(site.stmt, site.node, number(new))
    return edit_for(site.stmt, lines, span, func)


def _mutate_operator(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    targets = []
    for site, span in sites_of(func, lines):
        node = site.node
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and (
                site.int_ctx or isinstance(node.right, (ast.Compare, ast.BoolOp))):
            continue  # `/` would make a count fractional, or divide by a condition that can be False (zero)
        if isinstance(node, ast.BinOp) and not (site.int_ctx and isinstance(node.op, ast.Div)):
            if type(node.op) in _BIN_SWAPS or isinstance(node.op, ast.Pow):
                targets.append((site, span))
        elif isinstance(node, (ast.Compare, ast.BoolOp)):
            targets.append((site, span))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)) \
                and constant_value(node) is None:
            targets.append((site, span))
        elif isinstance(node, ast.Call) and call_name(node) in _CALL_SWAPS:
            targets.append((site, span))
    if not targets:
        return None
    site, span = targets[int(rng.integers(len(targets)))]
    node = site.node
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            current = constant_value(node.right)
            powers = [p for p in (0.5, 2, 3, 1.5) if p != current]
            node.right = number(powers[int(rng.integers(len(powers)))])
        elif not site.int_ctx and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)) and rng.random() < 0.3:
            power = (2, 3, 0.5)[int(rng.integers(3))]  # raise one operand to a small power instead
            side = "left" if rng.random() < 0.5 else "right"
            setattr(node, side, ast.BinOp(left=getattr(node, side), op=ast.Pow(), right=number(power)))
        else:
            node.op = _BIN_SWAPS[type(node.op)]()
    elif isinstance(node, ast.Compare):
        i = int(rng.integers(len(node.ops)))
        choices = _CMP_SWAPS[type(node.ops[i])]
        node.ops[i] = choices[int(rng.integers(len(choices)))]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        replace_node(site.stmt, node, node.operand)
    else:
        assert isinstance(node, ast.Call)  # the only other kind of target
        func_node = node.func
        if isinstance(func_node, ast.Attribute):
            func_node.attr = _CALL_SWAPS[func_node.attr]
        else:
            assert isinstance(func_node, ast.Name)  # a call target is a name or an attribute (call_name)
            func_node.id = _CALL_SWAPS[func_node.id]
    return edit_for(site.stmt, lines, span, func)


def numeric_like(node: ast.AST) -> bool:
    """An expression that plausibly holds a number or a numeric array (so `+ c * g(v)` makes sense on it)."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.BinOp):
        return not any(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(node))
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.USub, ast.UAdd))
    if isinstance(node, ast.Name):  # a builtin (`float` in `x.astype(float)`) or a module is no value
        return isinstance(node.ctx, ast.Load) and node.id not in BUILTIN_NAMES and node.id not in MODULES
    if isinstance(node, ast.Subscript):
        return isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in MODULES:
            return True
        if isinstance(func, ast.Attribute):  # `degree.astype(float)`, `x.sum()`: an array's numeric methods
            return func.attr in NUMERIC_METHODS and numeric_like(func.value)
        return isinstance(func, ast.Name) and func.id in _NUMERIC_CALLS
    return False


def _np(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Attribute(value=ast.Name("np", ast.Load()), attr=name, ctx=ast.Load()),
                    args=list(args), keywords=[])


def _argument_values(func: ast.FunctionDef, rng: np.random.Generator) -> list[ast.expr]:
    """Numeric values made from the function's arguments, judged by their annotations."""
    values: list[ast.expr] = []
    for arg in func.args.posonlyargs + func.args.args + func.args.kwonlyargs:
        text = ast.unparse(arg.annotation) if arg.annotation is not None else ""
        name = ast.Name(arg.arg, ast.Load())
        if not text or _NUMERIC_ANNOTATION.match(text):
            values.append(name)
        elif _SEQUENCE_ANNOTATION.match(text):
            k = int(rng.integers(3))
            values.extend([
                _np("sum", name),
                ast.Call(func=ast.Name("len", ast.Load()), args=[name], keywords=[]),
                _np("count_nonzero", ast.Compare(left=_np("asarray", name), ops=[ast.Eq()],
                                                 comparators=[ast.Constant(k)])),
            ])
    return values


def _subexpressions(root: ast.AST, stmt: ast.stmt) -> list[ast.expr]:
    return [s.node for s in walk_sites(root, None, False, False, stmt)
            if not s.int_ctx and not s.inner and not isinstance(s.node, ast.Constant) and numeric_like(s.node)]


def _pick_value(func: ast.FunctionDef, root: ast.AST, stmt: ast.stmt, rng: np.random.Generator) -> ast.expr | None:
    """A value for a new term: an argument or a sub-expression. Where the function holds arrays, mostly one that
    reads an array: a term in values alone that are the same for every element (`item` beside `bins`) moves all
    elements alike, which leaves their ranking, and so a priority's choice, as it was."""
    arguments = _argument_values(func, rng)
    subs = _subexpressions(root, stmt)
    pool = subs if subs and (not arguments or rng.random() < 0.5) else arguments
    if not pool:
        return None
    arrays = array_names(func)
    varying = [v for v in pool if reads_any(v, arrays)]
    if varying and len(varying) < len(pool) and rng.random() < 0.8:
        pool = varying
    return copy.deepcopy(pool[int(rng.integers(len(pool)))])


def _vocabulary(v: ast.expr, rng: np.random.Generator, arrays: frozenset[str] = frozenset()) -> ast.expr:
    """g(v) for a term `c * g(v)`: each works on numpy arrays and scalars alike. `arrays`: the names holding
    arrays, whose thresholds may lie in their range (`_cut`)."""
    k = int(rng.integers(8))
    if k == 0:
        return v
    if k == 1:
        return ast.BinOp(left=v, op=ast.Pow(), right=ast.Constant(2))
    if k == 2:
        return _np("sqrt", _np("abs", v))
    if k == 3:
        return _np("log1p", _np("abs", v))
    if k == 4:
        return ast.Compare(left=v, ops=[ast.Gt()], comparators=[_cut(v, arrays, rng)])
    if k == 5:
        return ast.Compare(left=v, ops=[ast.Lt()], comparators=[_cut(v, arrays, rng)])
    if k == 6:
        return _np("minimum", v, _cut(v, arrays, rng))
    return _np("exp", ast.BinOp(left=ast.UnaryOp(op=ast.USub(), operand=_np("abs", v)), op=ast.Div(),
                                right=number(_threshold(rng, allow_zero=False))))


def _term(base: ast.expr, g: ast.expr, rng: np.random.Generator) -> ast.expr:
    """`base + c * g` or `base * (1 + c * g)`, with a random sign; a factor with a comparison g is a step, whose c
    is a ratio (`_step_coefficient`)."""
    c = _coefficient(rng, g)
    sign = ast.Add() if rng.random() < 0.5 else ast.Sub()
    if rng.random() < 0.6:
        return ast.BinOp(left=base, op=sign, right=ast.BinOp(left=ast.Constant(c), op=ast.Mult(), right=g))
    if isinstance(g, ast.Compare):
        c = _step_coefficient(rng)
    scaled = ast.BinOp(left=ast.Constant(c), op=ast.Mult(), right=g)
    return ast.BinOp(left=base, op=ast.Mult(), right=ast.BinOp(left=ast.Constant(1), op=sign, right=scaled))


def _mutate_insert(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    targets = []
    for site, span in sites_of(func, lines):
        if site.int_ctx or site.inner or not isinstance(site.stmt, (ast.Return, ast.Assign, ast.AugAssign,
                                                                    ast.AnnAssign)):
            continue
        is_root = site.parent is site.stmt
        operand = isinstance(site.parent, (ast.BinOp, ast.UnaryOp))
        if (is_root or operand or isinstance(site.node, ast.BinOp)) and numeric_like(site.node):
            targets.append((site, span))
    if not targets:
        return None
    site, span = targets[int(rng.integers(len(targets)))]
    v = _pick_value(func, owned_exprs(site.stmt)[0], site.stmt, rng)
    if v is None:
        return None
    assert isinstance(site.node, ast.expr)  # numeric_like holds only for expressions
    new = _term(site.node, _vocabulary(v, rng, array_names(func)), rng)
    replace_node(site.stmt, site.node, new)
    return edit_for(site.stmt, lines, span, func)


def term_lists(func: ast.FunctionDef, lines: list[str]) -> list[tuple[Site, tuple[int, int]]]:
    """Lists of terms handed to a call (`np.stack([a, b], axis=1)`, `np.column_stack([...])`): their elements are
    numeric expressions, outside integer context and comprehensions."""
    return [(site, span) for site, span in sites_of(func, lines)
            if isinstance(site.node, ast.List) and isinstance(site.parent, ast.Call) and not site.int_ctx
            and not site.inner and site.node.elts and all(numeric_like(e) for e in site.node.elts)]


def _mutate_extend(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    """Append a term to a list of terms handed to a call: one of its elements times g(v). Where a caller combines
    the terms (a fitted linear combination, a stack of features), one more term is a new degree of freedom that
    an edit of the existing terms cannot give."""
    targets = term_lists(func, lines)
    if not targets:
        return None
    site, span = targets[int(rng.integers(len(targets)))]
    assert isinstance(site.node, ast.List)  # term_lists finds only lists
    v = _pick_value(func, site.node, site.stmt, rng)
    if v is None:
        return None
    element = site.node.elts[int(rng.integers(len(site.node.elts)))]
    term = ast.BinOp(left=copy.deepcopy(element), op=ast.Mult(), right=_vocabulary(v, rng, array_names(func)))
    replace_node(site.stmt, site.node, ast.List(elts=[*site.node.elts, term], ctx=ast.Load()))
    return edit_for(site.stmt, lines, span, func)


def _fresh(func: ast.FunctionDef, base: str) -> str:
    used = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
    used |= {a.arg for a in ast.walk(func) if isinstance(a, ast.arg)}
    name, i = base, 1
    while name in used:
        name, i = f"{base}_{i}", i + 1
    return name


class _Substitute(ast.NodeTransformer):
    """Replace every expression structurally equal to `pattern` by a name."""

    def __init__(self, pattern: ast.AST, name: str) -> None:
        self.dump, self.name = ast.dump(pattern), name

    def visit(self, node: ast.AST) -> ast.AST:
        if isinstance(node, ast.expr) and ast.dump(node) == self.dump:
            return ast.Name(self.name, ast.Load())
        return self.generic_visit(node)


def _assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign(targets=[ast.Name(name, ast.Store())], value=value, lineno=0)  # unparse reads lineno


def _mutate_condition(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    returns = []
    for s in statements_of(func):
        if isinstance(s, ast.Return) and s.value is not None and numeric_like(s.value):
            span = span_of(s, lines)
            if span is not None:
                returns.append((s, s.value, span))
    if not returns:
        return None
    stmt, value, span = returns[int(rng.integers(len(returns)))]
    v = _pick_value(func, value, stmt, rng)
    if v is None:
        return None
    body: list[ast.stmt] = []
    arrays = array_names(func)
    if not isinstance(v, ast.Name) and any(ast.dump(n) == ast.dump(v) for n in ast.walk(value)):
        local = _fresh(func, "r")  # name the shared subexpression, as a person would
        body.append(_assign(local, v))
        arrays = arrays | {local} if reads_any(v, arrays) else arrays
        value = cast(ast.expr, _Substitute(v, local).visit(copy.deepcopy(value)))  # an expression stays one
        v = ast.Name(local, ast.Load())
    if isinstance(value, ast.Name):
        result = value.id
    else:
        result = _fresh(func, "result")  # not "score": that is the problem's trusted function
        body.append(_assign(result, value))
    op = (ast.Lt, ast.Gt, ast.LtE, ast.GtE)[int(rng.integers(4))]()
    condition = ast.Compare(left=v, ops=[op], comparators=[_cut(v, arrays, rng)])
    adjusted = _term(ast.Name(result, ast.Load()), condition, rng)
    body.append(_assign(result, adjusted))
    body.append(ast.Return(value=ast.Name(result, ast.Load())))
    indent = indent_of(lines[span[0]])
    new = [indent + line for s in body for line in ast.unparse(s).split("\n")]
    return Edit(span[0], span[1], new, func.name)




MUTATORS: dict[str, Callable[[ast.FunctionDef, list[str], np.random.Generator], Edit | None]] = {
    "constant": _mutate_constant,
    "operator": _mutate_operator,
    "insert": _mutate_insert,
    "condition": _mutate_condition,
    "extend": _mutate_extend,
}
