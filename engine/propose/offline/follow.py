"""A walk's moves of single points followed up: an accepted move is made again from the child, twice as long; a
refused one is mirrored from the point it was made from.

Why: the walk's moves are blind draws, and on a construction whose score is set by its extreme terms (a largest and
a smallest distance, many of them equal) most draws are refused. But a move that was accepted says which way the
point may go: going on that way, further, is accepted far more often than a fresh draw (an edge point moved outwards
on a plateau can move further; a point moved into room keeps finding room) until another term binds. And a move of
a number that made the score worse mostly makes it better reversed, where the score is locally linear in it
(mirrored sampling). On a hand-run walk of single coordinates over the 4 x 4 grid of the distance ratio (360 moves,
24 seeds, not part of the suite), following moves this way lowered the median from 17.82 to 17.14.

A move is written as text, `function index:delta ...` (the changes of the offsets of `literals.shift`), and kept
in the proposal's details, so a resumed run replays it.
"""

from __future__ import annotations

import ast

from evoforge.engine.propose.offline.literals import OFFSETS, offset_lines, offsets_of
from evoforge.engine.propose.offline.locate import Edit, indent_of, span_of, statements_of

GROW = 2.0  # how much longer an accepted move is made again: the walk covers a long way in a few moves


def _offsets(func: ast.FunctionDef) -> tuple[str, list[float], ast.stmt] | None:
    """The array's name, the offsets and the statement of `func`'s (first) offsets statement, else None."""
    for stmt in statements_of(func):
        found = offsets_of(stmt)
        if found is not None:
            return found[0], found[1], stmt
    return None


def _function(code: str, name: str) -> ast.FunctionDef | None:
    return next((n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def between(before: str, after: str, function: str) -> str | None:
    """The move that turned `before` into `after`, as text: the change of each offset of `function` (where its
    parent had none, from zeros, as `shift` starts there); None where there was no change of the offsets."""
    old_func, new_func = _function(before, function), _function(after, function)
    if old_func is None or new_func is None:
        return None
    old, new = _offsets(old_func), _offsets(new_func)
    if new is None:
        return None
    start = old[1] if old is not None else [0.0] * OFFSETS
    deltas = [f"{i}:{b - a!r}" for i, (a, b) in enumerate(zip(start, new[1])) if b != a]
    if len(start) != len(new[1]) or not deltas:
        return None
    return " ".join([function, *deltas])


def scaled(move: str, factor: float) -> str:
    """The same move times `factor` (-1: mirrored)."""
    function, *deltas = move.split(" ")
    parts = [(i, float(d)) for i, d in (x.split(":") for x in deltas)]
    return " ".join([function, *(f"{i}:{d * factor!r}" for i, d in parts)])


def function_of(move: str) -> str:
    """The function a move changes."""
    return move.split(" ", 1)[0]


def made(func: ast.FunctionDef, lines: list[str], move: str) -> Edit | None:
    """The edit that makes `move` on `func`'s offsets; None where it has none (a mirrored move from a point without
    them would have to create them) or fewer than the move changes."""
    found = _offsets(func)
    span = None if found is None else span_of(found[2], lines)
    if found is None or span is None:
        return None
    name, values, _ = found
    new = list(values)
    for i, d in (x.split(":") for x in move.split(" ")[1:]):
        if int(i) >= len(new):
            return None
        new[int(i)] += float(d)
    return Edit(span[0], span[1], offset_lines(indent_of(lines[span[0]]), name, new), func.name)
