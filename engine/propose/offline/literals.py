"""Local search over a program's numeric literals, steered by the trusted score through `observe`.

A single random constant change rarely helps a construction whose numbers are computed (a grid, a polygon) or
symmetric (many equal extreme distances or triangles): one point moved changes one of many equal terms. Four edits:

- `shift`, for a construction (a function whose arguments are all integers, so its output is one fixed set of
  numbers such as coordinates): the first time, it gives the array the function builds explicit offsets,
  `x = x + np.bincount(np.arange(64) % x.size, np.array([...]), x.size).reshape(x.shape)`, so every coordinate
  becomes a literal of the program (offset i moves element i modulo the size: every offset moves something, and
  the program need not know its size); after that it moves those offsets, one short run of them (one point) or
  all of them at once, by Gaussian steps.
- `transform`: gives the built array one linear map near the identity and a translation (six numbers for a plane)
  and moves them, so every distance and triangle changes at once (a stretch into unused room, a rotation).
- `walk_step` (the kind `step`): moves one offset, one coordinate; offered only on the proposer's walk (`walk`),
  where a run of neutral single-coordinate moves is what leaves a plateau such as the grid of the distance ratio.
- `relocate`: puts one point of a construction that has offsets somewhere else in the box its points span
  (offered on the walk only): the long move a walk of small steps cannot make.
- `tune`: moves every float literal of one statement by a relative Gaussian step, written with six significant
  digits (a random constant change keeps three, which cannot fine-tune a fitted curve).

The proposer offers them on constructions only (see `proposer`). Each lineage (a program and the children that
were accepted from it) keeps its own step size, adapted by the 1/5 success rule of evolution strategies
(`StepSizes`; a child that ties is accepted and keeps the step, and `step` aims at one in ten, as few moves on a
plateau are neutral): with the walk's point, these edits are a (1+1) evolution strategy over the literals. Only the
programs' code and their trusted scores are used, never the problem.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable

import numpy as np

from evoforge.engine.program.source import normalize_code
from evoforge.engine.propose.offline.locate import (
    Edit,
    call_name,
    edit_for,
    indent_of,
    replace_node,
    sites_of,
    span_of,
    statements_of,
)
from evoforge.engine.propose.offline.mutations import constant_value, number
from evoforge.engine.propose.offline.statements import builds_array, built_array

OFFSETS = 64  # offsets a construction gets: offset i moves element i % size (elements past 64 stay)
_JOINT = 0.15  # how often a shift moves every offset at once (with a quarter of the step) instead of one point


def key_of(code: str) -> str:
    """A short name for a program's lineage entry: the hash of its normalized code."""
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()[:16]


class StepSizes:
    """Step sizes per lineage, adapted by the 1/5 success rule: a success multiplies the step by `grow` (and the
    accepted child starts from it), a failure by grow**-0.25, so steps settle where about one in five succeeds
    (`rate` sets another share: a walk on a plateau, where few moves are neutral, wants a lower one).
    A program with no entry of its own starts from the step that worked last anywhere."""

    def __init__(self, start: float, low: float, high: float, grow: float = 1.5, rate: float = 0.2) -> None:
        self.low, self.high, self.grow = low, high, grow
        self.shrink = grow ** (-rate / (1 - rate))
        self.recent = start
        self._by_program: dict[str, float] = {}

    def step(self, program: str) -> float:
        """The step for children of `program` (its key, `key_of`)."""
        return self._by_program.get(program, self.recent)

    def observe(self, parent: str, child: str, step: float, improved: bool, tied: bool = False) -> None:
        """The trusted outcome of a child made with `step` from `parent`. A child that tied its parent is accepted,
        as the head of a walk on the plateau (`walk`), and leaves the step as it was: counted as failures, a
        plateau's ties would shrink the step to its floor, where a walk hardly moves; counted as successes, they
        grew it to most of a grid spacing on the distance ratio's plateau, where a move that long mostly worsens
        (benchmarks/RESULTS.md)."""
        accepted = improved or tied
        factor = self.grow if improved else 1.0 if tied else self.shrink
        new = min(self.high, max(self.low, step * factor))
        self._by_program[child if accepted else parent] = new
        self.recent = new


SCALARS = frozenset({"float", "int", "bool", "complex"})


def is_construction(func: ast.FunctionDef) -> bool:
    """Whether every argument is annotated `int` (sizes only), so the function returns one fixed construction,
    and it is not declared to return one number: `priority(time: int, weight: int, due: int) -> float` scores
    each of many inputs (a heuristic), and walking its constants as if they were points only narrows the search."""
    a = func.args
    returns = ast.unparse(func.returns) if func.returns is not None else None
    return a.vararg is None and a.kwarg is None and returns not in SCALARS and all(
        arg.annotation is not None and ast.unparse(arg.annotation) == "int"
        for arg in a.posonlyargs + a.args + a.kwonlyargs)


def walkable(func: ast.FunctionDef) -> bool:
    """Whether a walk can move the construction's points: it is a construction that builds a numpy array (or
    already has the walk's offsets or map). A construction built another way (a Golomb ruler grown as a list of
    ints) has no points for `shift`, `transform` or `step` to move, so its proposals must use the other kinds."""
    return is_construction(func) and (builds_array(func) or any(
        offsets_of(s) is not None or map_of(s) is not None for s in statements_of(func)))


def offsets_of(stmt: ast.stmt) -> tuple[str, list[float]] | None:
    """The array name and the offsets of a statement
    `x = x + np.bincount(np.arange(64) % x.size, np.array([...]), x.size).reshape(x.shape)`, else None."""
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
        return None
    name, value = stmt.targets[0].id, stmt.value
    if not (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) and isinstance(value.left, ast.Name)
            and value.left.id == name and isinstance(value.right, ast.Call) and call_name(value.right) == "reshape"
            and isinstance(value.right.func, ast.Attribute) and isinstance(value.right.func.value, ast.Call)
            and call_name(value.right.func.value) == "bincount" and len(value.right.func.value.args) == 3):
        return None
    inner = value.right.func.value.args[1]
    if not (isinstance(inner, ast.Call) and call_name(inner) == "array" and len(inner.args) == 1
            and isinstance(inner.args[0], ast.List)):
        return None
    values = [constant_value(e) for e in inner.args[0].elts]
    if not values or any(v is None for v in values):
        return None
    return name, [float(v) for v in values if v is not None]


def _literal(x: float) -> str:
    text = f"{x:.6g}"
    if text in ("-0", "0"):
        return "0.0"
    return text if any(c in text for c in ".en") else text + ".0"


def offset_lines(indent: str, name: str, values: list[float]) -> list[str]:
    """`name = name + np.bincount(np.arange(k) % name.size, np.array([...]), name.size).reshape(name.shape)`,
    eight offsets a line."""
    rows = [", ".join(_literal(v) for v in values[i:i + 8]) for i in range(0, len(values), 8)]
    body = [f"{indent}    {row}," for row in rows]
    return ([f"{indent}{name} = {name} + np.bincount(np.arange({len(values)}) % {name}.size, np.array(["] + body
            + [f"{indent}]), {name}.size).reshape({name}.shape)"])


def _moved(values: list[float], rng: np.random.Generator, step: float) -> list[float]:
    """All offsets by a quarter step each (sometimes), else a run of one to three of them (one point) by a step."""
    new = list(values)
    step *= float(np.exp(rng.normal(0, 1.5)))  # spread over scales: a jump into empty space, or a fine move
    if rng.random() < _JOINT:
        return [v + float(rng.normal(0, step / 4)) for v in new]
    start, length = int(rng.integers(len(new))), int(rng.integers(1, 4))
    for i in range(start, min(len(new), start + length)):
        new[i] += float(rng.normal(0, step))
    return new


def _one_moved(values: list[float], rng: np.random.Generator, step: float) -> list[float]:
    """One offset (one coordinate) by a Gaussian step, spread log-normally over scales as `_moved`'s are."""
    new = list(values)
    new[int(rng.integers(len(new)))] += float(rng.normal(0, step * np.exp(rng.normal(0, 1.0))))
    return new


def shift(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator, step: float) -> Edit | None:
    """Move the offsets of a construction, giving its built array explicit offsets first if it has none."""
    return _offsets_edit(func, lines, rng, step, _moved)


def walk_step(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator, step: float) -> Edit | None:
    """Move one coordinate of a construction (`shift`'s offsets): the move a walk on a plateau is made of, since
    a single coordinate can move away from all the tied extreme terms at once more often than a point can."""
    return _offsets_edit(func, lines, rng, step, _one_moved)


def _offsets_edit(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator, step: float,
                  move: Callable[[list[float], np.random.Generator, float], list[float]]) -> Edit | None:
    if not is_construction(func):
        return None
    found = _offsets_statement(func, lines)
    if found is not None:
        (name, values), (start, end) = found
        return Edit(start, end, offset_lines(indent_of(lines[start]), name, move(values, rng, step)), func.name)
    picked = built_array(func, lines, rng)
    if picked is None:
        return None
    return _after_built(picked, lines, func, offset_lines, move([0.0] * OFFSETS, rng, step))


def relocate(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> Edit | None:
    """Put one point of a construction that has offsets (`shift`) somewhere else, drawn uniformly from the box
    its points span, widened by a fifth on each side; the line goes before the offsets, which then fine-tune the
    point there. Moving a point a long way (into a gap, or into room no point uses) is what a walk of small steps
    cannot do: it settles in the nearest local optimum. The box is read from the array when the program runs, so
    no scale of the problem is assumed."""
    found = _offsets_statement(func, lines) if is_construction(func) else None
    if found is None:
        return None
    (name, _), (start, end) = found
    where = ", ".join(_literal(float(f"{u:.3g}")) for u in rng.uniform(-0.2, 1.2, 2))
    line = (f"{indent_of(lines[start])}{name}[{int(rng.integers(OFFSETS))} % len({name})] = {name}.min(axis=0) + "
            f"np.resize(np.array([{where}]), {name}.shape[1:]) * ({name}.max(axis=0) - {name}.min(axis=0))")
    return Edit(start, end, [line, *lines[start:end]], func.name)


def _offsets_statement(func: ast.FunctionDef, lines: list[str]
                       ) -> tuple[tuple[str, list[float]], tuple[int, int]] | None:
    """The construction's offsets statement (`shift`'s): the array's name and the offsets, and its lines."""
    for stmt in statements_of(func):
        found = offsets_of(stmt)
        span = span_of(stmt, lines) if found else None
        if found and span:
            return found, span
    return None


def _constant_lists(stmt: ast.stmt) -> list[list[float]]:
    lists = []
    in_order = sorted((n for n in ast.walk(stmt) if isinstance(n, ast.List)), key=lambda n: (n.lineno, n.col_offset))
    for node in in_order:
        if node.elts:
            values = [constant_value(e) for e in node.elts]
            if all(v is not None for v in values):
                lists.append([float(v) for v in values if v is not None])
    return lists


def map_of(stmt: ast.stmt) -> tuple[str, list[float]] | None:
    """The array name and the six numbers of `x = x @ (np.eye(k) + np.resize(np.array([a, b, c, d]), (k, k)))
    + np.resize(np.array([e, f]), k)` (k = x.shape[-1]), else None."""
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
        return None
    name, value = stmt.targets[0].id, stmt.value
    if not (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) and isinstance(value.left, ast.BinOp)
            and isinstance(value.left.op, ast.MatMult) and isinstance(value.left.left, ast.Name)
            and value.left.left.id == name):
        return None
    lists = _constant_lists(stmt)
    if [len(x) for x in lists] != [4, 2]:
        return None
    return name, lists[0] + lists[1]


def map_lines(indent: str, name: str, values: list[float]) -> list[str]:
    """`name = name @ (identity + a k x k matrix) + a shift`: a linear map near the identity, then a translation;
    four plus two numbers fit a plane (np.resize repeats them for other dimensions)."""
    matrix, move = ", ".join(_literal(v) for v in values[:4]), ", ".join(_literal(v) for v in values[4:])
    return [f"{indent}{name} = {name} @ (np.eye({name}.shape[-1]) + np.resize(np.array([{matrix}]),",
            f"{indent}    ({name}.shape[-1], {name}.shape[-1]))) + np.resize(np.array([{move}]), {name}.shape[-1])"]


def transform(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator, step: float) -> Edit | None:
    """Move the six numbers of the linear map a construction applies to its built array (all points at once: a
    stretch, shear, rotation or translation), giving it one, near the identity, if it has none. Every triangle's
    area and every distance change together, which a move of single points cannot do to a symmetric set."""
    if not is_construction(func):
        return None
    step *= float(np.exp(rng.normal(0, 1.0)))
    for stmt in statements_of(func):
        found = map_of(stmt)
        span = span_of(stmt, lines) if found else None
        if found and span:
            name, values = found
            moved = [v + float(rng.normal(0, step)) for v in values]
            return Edit(span[0], span[1], map_lines(indent_of(lines[span[0]]), name, moved), func.name)
    fresh = [float(rng.normal(0, step)) for _ in range(6)]
    for stmt in statements_of(func):  # after the offsets, where there are some
        found_offsets = offsets_of(stmt)
        span = span_of(stmt, lines) if found_offsets else None
        if found_offsets and span:
            return Edit(span[0], span[1], lines[span[0]:span[1]]
                        + map_lines(indent_of(lines[span[0]]), found_offsets[0], fresh), func.name)
    picked = built_array(func, lines, rng)
    if picked is None:
        return None
    return _after_built(picked, lines, func, map_lines, fresh)


def _after_built(picked: tuple[ast.Assign | ast.Return, tuple[int, int], str], lines: list[str],
                 func: ast.FunctionDef, render, values: list[float]) -> Edit:
    """Put `render`'s lines after the built array (naming a returned one first, and returning it after)."""
    stmt, (start, end), name = picked
    indent = indent_of(lines[start])
    if isinstance(stmt, ast.Assign):
        return Edit(start, end, lines[start:end] + render(indent, name, values), func.name)
    assert stmt.value is not None  # built_array picks only returns of a value
    return Edit(start, end, [f"{indent}{name} = {ast.unparse(stmt.value)}", *render(indent, name, values),
                             f"{indent}return {name}"], func.name)


def tune(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator, step: float) -> Edit | None:
    """Move every float literal of one statement by a relative Gaussian step (an absolute one for a zero)."""
    by_statement: dict[int, list] = {}
    for site, span in sites_of(func, lines):
        node = site.node
        if isinstance(node, ast.Constant) and type(node.value) is float and not site.int_ctx \
                and offsets_of(site.stmt) is None and map_of(site.stmt) is None:
            by_statement.setdefault(id(site.stmt), []).append((site, span))
    if not by_statement:
        return None
    groups = list(by_statement.values())
    group = groups[int(rng.integers(len(groups)))]
    for site, _ in group:
        value = float(site.node.value)
        # a zero moves by the step itself; any other number by a relative step that keeps its sign (a flip is a
        # different program, which the constant mutation proposes)
        new = float(rng.normal(0, step)) if value == 0 else value * max(0.05, 1 + float(rng.normal(0, step)))
        new = float(f"{new:.6g}")
        inside_minus = isinstance(site.parent, ast.UnaryOp) and isinstance(site.parent.op, ast.USub)
        replace_node(site.stmt, site.node, ast.Constant(abs(new)) if inside_minus else number(new))
    site, span = group[0]
    return edit_for(site.stmt, lines, span, func)
