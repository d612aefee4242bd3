"""Statement-level edits: delete, swap, duplicate, wrap in a condition or a loop, call another function of the same
module (`np.max` -> `np.median`), and nudge one element of an array a program builds.

Expression mutations cannot move a program that has no constant or operator to change (a grid of points, a
`return degree.astype(float)`); these edits change its structure instead. A nudge adds `x.flat[j % x.size] += c`
after an array is built, which turns a rigid construction into coordinates that constant mutations then tune:
with selection on the trusted score, that is a local search over the program's numeric literals. Each edit keeps
every name bound where it is read, so the child at least resolves its names.
"""

from __future__ import annotations

import ast
import math
import re

import numpy as np

from evoforge.engine.propose.offline.locate import (
    Edit,
    edit_for,
    end_of,
    indent_of,
    loop_progress,
    sites_of,
    span_of,
)

# Calls of one module that take the same arguments and return the same kind of value.
CALL_GROUPS = (("max", "min", "mean", "median", "sum"), ("amax", "amin"), ("floor", "ceil", "round", "trunc"),
               ("sqrt", "cbrt", "log1p"), ("exp", "expm1"), ("sin", "cos"), ("argmax", "argmin"),
               ("maximum", "minimum"))
_MODULES = {"np": np, "numpy": np, "math": math}
_SIMPLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)
_SCALAR = re.compile(r"^(int|float|bool)$")


def _blocks(func: ast.FunctionDef) -> list[list[ast.stmt]]:
    """Every statement list of the function (its body without the docstring, and each nested body)."""
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    found = [body]
    for node in ast.walk(func):
        if node is not func and isinstance(node, (ast.If, ast.For, ast.While, ast.With)):
            found.append(node.body)
            orelse = getattr(node, "orelse", None)  # a `with` has none
            if orelse:
                found.append(orelse)
    return [b for b in found if b]


def _stored(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}


def _loaded(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _bound_before(func: ast.FunctionDef, stmt: ast.stmt) -> set[str]:
    """Names bound before `stmt` starts: the arguments and whatever earlier lines assign."""
    names = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    for node in ast.walk(func):
        if isinstance(node, ast.stmt) and node is not func and end_of(node)[0] < stmt.lineno:
            names |= _stored(node)
    return names


def _simple(stmt: ast.stmt, lines: list[str]) -> tuple[int, int] | None:
    """The lines of a simple statement (not a docstring), or None."""
    if not isinstance(stmt, _SIMPLE) or isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return None
    return span_of(stmt, lines)


def _rebinds(func: ast.FunctionDef, stmt: ast.stmt) -> bool:
    """Whether skipping the statement leaves every name it binds still bound (it only updates them)."""
    return _stored(stmt) <= _bound_before(func, stmt)


def _pick(items: list, rng: np.random.Generator):
    return items[int(rng.integers(len(items)))] if items else None


def delete(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    """Remove a statement that only updates names that exist without it (never a while loop's progress)."""
    progress = loop_progress(func)
    choices = [(s, span) for block in _blocks(func) if len(block) > 1 for s in block
               if (span := _simple(s, lines)) is not None and _rebinds(func, s) and id(s) not in progress]
    picked = _pick(choices, rng)
    return None if picked is None else Edit(picked[1][0], picked[1][1], [], func.name)


def swap(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    """Exchange two neighbouring statements that do not read or write what the other writes."""
    choices = []
    for block in _blocks(func):
        for a, b in zip(block, block[1:]):
            sa, sb = _simple(a, lines), _simple(b, lines)
            if sa is None or sb is None:
                continue
            if _stored(a) & (_loaded(b) | _stored(b)) or _stored(b) & _loaded(a):
                continue
            if _loaded(a) == _loaded(b) and ast.dump(a) == ast.dump(b):
                continue
            choices.append((sa, sb))
    picked = _pick(choices, rng)
    if picked is None:
        return None
    (a0, a1), (b0, b1) = picked
    return Edit(a0, b1, lines[b0:b1] + lines[a1:b0] + lines[a0:a1], func.name)


def duplicate(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    """Apply an update twice (`x *= 2`, `x = x + d`): a statement that reads what it writes."""
    choices = [span for block in _blocks(func) for s in block
               if isinstance(s, (ast.AugAssign, ast.Assign)) and (span := _simple(s, lines)) is not None
               and (isinstance(s, ast.AugAssign) or _stored(s) & _loaded(s.value))]
    span = _pick(choices, rng)
    return None if span is None else Edit(span[0], span[1], lines[span[0]:span[1]] * 2, func.name)


def _scalar_conditions(func: ast.FunctionDef, rng: np.random.Generator) -> list[str]:
    """Conditions a statement can be wrapped in: a scalar argument, or an array argument's length, vs a threshold."""
    found = []
    for arg in func.args.posonlyargs + func.args.args + func.args.kwonlyargs:
        text = ast.unparse(arg.annotation) if arg.annotation is not None else ""
        op = (">", "<")[int(rng.integers(2))]
        if _SCALAR.match(text):
            found.append(f"{arg.arg} {op} {round(float(10 ** rng.uniform(-1, 2)), 3)}")
        elif text:
            found.append(f"len({arg.arg}) {op} {int(rng.integers(1, 30))}")
    return found


def wrap(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    """Put an update inside `if <condition>:` or `for _ in range(2):` (never a while loop's progress)."""
    progress = loop_progress(func)
    choices = [(s, span) for block in _blocks(func) for s in block
               if (span := _simple(s, lines)) is not None and _rebinds(func, s) and id(s) not in progress]
    picked = _pick(choices, rng)
    if picked is None:
        return None
    stmt, (start, end) = picked
    conditions = _scalar_conditions(func, rng)
    loop = isinstance(stmt, ast.AugAssign) and (not conditions or rng.random() < 0.3)
    if not loop and not conditions:
        return None
    head = "for _ in range(2):" if loop else f"if {_pick(conditions, rng)}:"
    indent = indent_of(lines[start])
    return Edit(start, end, [indent + head] + ["    " + line for line in lines[start:end]], func.name)


def swap_call(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    """Call another function of the same module with the same arguments (`np.max` -> `np.median`)."""
    choices = []
    for site, span in sites_of(func, lines):
        node = site.node
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in _MODULES:
            module = _MODULES[node.func.value.id]
            group = next((g for g in CALL_GROUPS if node.func.attr in g), ())
            others = [name for name in group if name != node.func.attr and hasattr(module, name)]
            if others:
                choices.append((site, span, others))
    picked = _pick(choices, rng)
    if picked is None:
        return None
    site, span, others = picked
    site.node.func.attr = _pick(others, rng)
    return edit_for(site.stmt, lines, span, func)


def _array_like(value: ast.expr) -> bool:
    """An expression that builds a numpy array: `np.<f>(...)`, possibly sliced."""
    while isinstance(value, ast.Subscript):
        value = value.value
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
        and isinstance(value.func.value, ast.Name) and value.func.value.id in ("np", "numpy")


def builds_array(func: ast.FunctionDef) -> bool:
    """Whether the function assigns or returns a numpy array it builds (what `built_array` can pick)."""
    return any(isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
               and _array_like(s.value) or isinstance(s, ast.Return) and s.value is not None
               and _array_like(s.value) for block in _blocks(func) for s in block)


def built_array(func: ast.FunctionDef, lines: list[str],
                rng: np.random.Generator) -> tuple[ast.Assign | ast.Return, tuple[int, int], str] | None:
    """An array the function builds (`x = np.<f>(...)`, or a returned one), its lines and the name it has or gets
    (a fresh local for a returned array); mostly one built before the return, which is what the rest uses."""
    choices: list[tuple[ast.Assign | ast.Return, tuple[int, int], str | None]] = []
    for block in _blocks(func):
        for s in block:
            span = span_of(s, lines)
            if span is None:
                continue
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) \
                    and _array_like(s.value):
                choices.append((s, span, s.targets[0].id))
            elif isinstance(s, ast.Return) and s.value is not None and _array_like(s.value):
                choices.append((s, span, None))
    built = [c for c in choices if c[2] is not None]
    picked = _pick(built if built and rng.random() < 0.8 else choices, rng)
    if picked is None:
        return None
    stmt, span, name = picked
    if name is not None:
        return stmt, span, name
    used = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)} | {a.arg for a in ast.walk(func.args)
                                                                           if isinstance(a, ast.arg)}
    local, i = "built", 1
    while local in used:
        local, i = f"built_{i}", i + 1
    return stmt, span, local


def nudge(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator, scale: float = 0.01) -> Edit | None:
    """Move one element of a built array by a small literal step (its index wraps, so any size works)."""
    picked = built_array(func, lines, rng)
    if picked is None:
        return None
    stmt, (start, end), name = picked
    indent = indent_of(lines[start])
    step = float(f"{scale * math.exp(rng.normal(0, 1)) * (1 if rng.random() < 0.5 else -1):.3g}")
    j = int(rng.integers(64))
    if isinstance(stmt, ast.Assign):
        return Edit(start, end, lines[start:end] + [f"{indent}{name}.flat[{j} % {name}.size] += {step}"], func.name)
    assert stmt.value is not None  # built_array picks only returns of a value
    value = ast.unparse(stmt.value)
    return Edit(start, end, [f"{indent}{name} = {value}", f"{indent}{name}.flat[{j} % {name}.size] += {step}",
                             f"{indent}return {name}"], func.name)
