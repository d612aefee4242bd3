"""Crossover: take a statement, or a sub-expression (subtree crossover), of another parent into the best one, where
every name it reads exists there."""

from __future__ import annotations

import ast
import copy

import numpy as np

from evoforge.engine.propose.offline.locate import (
    SCOPES,
    Edit,
    edit_for,
    end_of,
    indent_of,
    owned_exprs,
    replace_node,
    sites_of,
    span_of,
    statements_of,
    walk_sites,
)
from evoforge.engine.propose.offline.mutations import numeric_like


def _body(func: ast.FunctionDef) -> list[ast.stmt]:
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        return body[1:]
    return body


def _stored(node: ast.AST) -> set[str]:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names | {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}


def _loaded(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _targets(stmt: ast.Assign | ast.AugAssign) -> list[str]:
    return [ast.dump(t) for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])]


def _bound_inside(stmt: ast.stmt) -> set[str]:
    """Names a statement binds for its own use: comprehension and lambda variables, and a compound's own locals."""
    if isinstance(stmt, (ast.If, ast.While, ast.For, ast.With, ast.Try)):
        return _stored(stmt)
    return set().union(*(_stored(n) for n in ast.walk(stmt) if isinstance(n, SCOPES)))


def recombine_edit(func: ast.FunctionDef, lines: list[str], donor_code: str, rng: np.random.Generator) -> Edit | None:
    donor = next((n for n in ast.parse(donor_code).body
                  if isinstance(n, ast.FunctionDef) and n.name == func.name), None)
    if donor is None:
        return None
    donor_locals = _stored(donor)
    pairs = []
    for i, mine in enumerate(_body(func)):
        span = span_of(mine, lines) if not isinstance(mine, (ast.If, ast.While, ast.For)) else (
            mine.lineno - 1, end_of(mine)[0])
        if span is None:
            continue
        before = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
        for earlier in _body(func)[:i]:
            before |= _stored(earlier)
        for j, theirs in enumerate(_body(donor)):
            if ast.dump(mine) == ast.dump(theirs):
                continue
            both_return = isinstance(mine, ast.Return) and isinstance(theirs, ast.Return)
            same_target = isinstance(mine, (ast.Assign, ast.AugAssign)) and type(mine) is type(theirs) \
                and _targets(mine) == _targets(theirs)
            same_place = i == j and type(mine) is type(theirs)
            if not (both_return or same_target or same_place):
                continue
            needed = (_loaded(theirs) & donor_locals) - _bound_inside(theirs)
            if needed <= before:  # the statement only uses names that exist at this point of our function
                pairs.append((mine, span, theirs))
    if not pairs:
        return None
    mine, span, theirs = pairs[int(rng.integers(len(pairs)))]
    new = copy.deepcopy(theirs)
    if (isinstance(mine, ast.Return) and isinstance(new, ast.Return)  # a Return pairs only with a Return
            and mine.value is not None and new.value is not None and rng.random() < 0.5):
        w = round(float(rng.uniform(0.1, 0.9)), 2)  # blend the two return values
        new.value = ast.BinOp(left=ast.BinOp(left=ast.Constant(round(1 - w, 2)), op=ast.Mult(), right=mine.value),
                              op=ast.Add(), right=ast.BinOp(left=ast.Constant(w), op=ast.Mult(), right=new.value))
    indent = indent_of(lines[span[0]])
    return Edit(span[0], span[1], [indent + line for line in ast.unparse(new).split("\n")], func.name)




def crossover_edit(func: ast.FunctionDef, lines: list[str], donor_code: str, rng: np.random.Generator) -> Edit | None:
    """Replace a numeric sub-expression of the best parent by one of the donor's same-named function."""
    donor = next((n for n in ast.parse(donor_code).body
                  if isinstance(n, ast.FunctionDef) and n.name == func.name), None)
    if donor is None:
        return None
    donor_locals = _stored(donor)
    pieces = [s.node for stmt in statements_of(donor) for root in owned_exprs(stmt)
              for s in walk_sites(root, stmt, False, False, stmt)
              if not s.int_ctx and not s.inner and isinstance(s.node, (ast.BinOp, ast.Call, ast.UnaryOp))
              and numeric_like(s.node)]
    sites = [(site, span) for site, span in sites_of(func, lines)
             if not site.int_ctx and not site.inner and numeric_like(site.node)]
    if not pieces or not sites:
        return None
    for _ in range(10):
        site, span = sites[int(rng.integers(len(sites)))]
        piece = pieces[int(rng.integers(len(pieces)))]
        needed = _loaded(piece) & donor_locals
        before = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
        before |= set().union(*(_stored(s) for s in ast.walk(func) if isinstance(s, ast.stmt) and s is not func
                                and end_of(s)[0] < site.stmt.lineno))
        if needed <= before and ast.dump(piece) != ast.dump(site.node):
            replace_node(site.stmt, site.node, copy.deepcopy(piece))
            return edit_for(site.stmt, lines, span, func)
    return None
