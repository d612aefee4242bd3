"""Where an offline edit happens and how it is written: statements, their exact source lines, expression sites.

An edit replaces whole source lines of the best parent (one statement, or an if/while/for header), so the SEARCH
section of the answer is the parent's own text and comments elsewhere survive. Expression sites carry whether a
number there is a count or index (kept an integer) and whether names there may be local to a lambda.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass

INT_FUNCS = {"range", "len", "zeros", "ones", "empty", "full", "arange", "reshape", "int", "round", "repeat",
              "tile", "product", "combinations", "permutations", "islice", "choice", "integers", "randint",
              "partition", "argpartition", "roll", "take"}
_INT_KEYWORDS = {"axis", "k", "n", "repeat", "shape", "size", "dtype", "decimals"}
SCOPES = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class Edit:
    """Replace code lines [start, end) (0-based) with `new`; `function` is where the edit happens."""

    start: int
    end: int
    new: list[str]
    function: str


@dataclass
class Site:
    node: ast.AST
    parent: ast.AST | None
    int_ctx: bool  # a count, shape or index: keep it an integer
    inner: bool  # inside a lambda or comprehension, where names may be local to it
    stmt: ast.stmt



def _byte_prefix(line: str, col: int) -> str:
    return line.encode()[:col].decode(errors="replace")


def _byte_suffix(line: str, col: int) -> str:
    return line.encode()[col:].decode(errors="replace")


def end_of(node: ast.stmt | ast.expr) -> tuple[int, int]:
    """Where a node ends: its last line and the byte column after it (ast.parse always sets both)."""
    assert node.end_lineno is not None and node.end_col_offset is not None
    return node.end_lineno, node.end_col_offset


def span_of(stmt: ast.stmt, lines: list[str]) -> tuple[int, int] | None:
    """Lines [start, end) that hold exactly this statement (for if/while/for: its header), else None."""
    first = lines[stmt.lineno - 1]
    if _byte_prefix(first, stmt.col_offset).strip():
        return None
    if isinstance(stmt, (ast.If, ast.While, ast.For)):
        head = stmt.test if isinstance(stmt, (ast.If, ast.While)) else stmt.iter
        end, end_col = end_of(head)
        tail = _byte_suffix(lines[end - 1], end_col).strip()
        if not re.match(r"^\)*\s*:\s*(#.*)?$", tail) or stmt.body[0].lineno <= end:
            return None
        return stmt.lineno - 1, end
    end, end_col = end_of(stmt)
    tail = _byte_suffix(lines[end - 1], end_col).strip()
    if tail and not tail.startswith("#"):
        return None
    return stmt.lineno - 1, end


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _render(stmt: ast.stmt, lines: list[str], span: tuple[int, int]) -> list[str]:
    """Source lines for a mutated statement (or just its header for if/while/for), at the original indentation."""
    indent = indent_of(lines[span[0]])
    if isinstance(stmt, (ast.If, ast.While, ast.For)):
        head = copy.copy(stmt)
        head.body, head.orelse = [ast.Pass()], []
        text = ast.unparse(head).split("\n")[:-1]
        if lines[span[0]].lstrip().startswith("elif"):
            text[0] = "el" + text[0]
    else:
        text = ast.unparse(stmt).split("\n")
    return [indent + line for line in text]


def statements_of(func: ast.FunctionDef) -> list[ast.stmt]:
    body = func.body
    skip = body[0] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else None
    return [n for n in ast.walk(func) if isinstance(n, ast.stmt) and n is not func and n is not skip
            and not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def loop_progress(func: ast.FunctionDef) -> set[int]:
    """The ids of what makes a `while` loop end: the loop itself (its test) and the statements in its body that
    assign a name the test reads (`i += 1` under `while i < n`). Deleting one, putting it under a condition,
    changing its step or replacing the test's `i` by a number turns a loop that ends into one that never does, and
    such a child costs the whole time limit to learn nothing; the offline proposer leaves them as they are (the
    rest of the body stays open to its edits)."""
    found: set[int] = set()
    for loop in (n for n in ast.walk(func) if isinstance(n, ast.While)):
        found.add(id(loop))
        read = {n.id for n in ast.walk(loop.test) if isinstance(n, ast.Name)}
        for stmt in (n for body in loop.body for n in ast.walk(body) if isinstance(n, ast.stmt)):
            if not isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)) and read & {
                    n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}:
                found.add(id(stmt))
    return found


def owned_exprs(stmt: ast.stmt) -> list[ast.expr]:
    if isinstance(stmt, (ast.Return, ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return [stmt.value] if stmt.value is not None else []
    if isinstance(stmt, (ast.If, ast.While)):
        return [stmt.test]
    if isinstance(stmt, ast.For):
        return [stmt.iter]
    return []


def call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def walk_sites(node: ast.AST, parent: ast.AST | None, int_ctx: bool, inner: bool, stmt: ast.stmt):
    yield Site(node, parent, int_ctx, inner, stmt)
    if isinstance(node, ast.Subscript):
        yield from walk_sites(node.value, node, int_ctx, inner, stmt)
        yield from walk_sites(node.slice, node, True, inner, stmt)
    elif isinstance(node, ast.Call):
        counts = int_ctx or call_name(node) in INT_FUNCS
        for arg in node.args:
            yield from walk_sites(arg, node, counts, inner, stmt)
        for keyword in node.keywords:
            yield from walk_sites(keyword.value, node, counts or keyword.arg in _INT_KEYWORDS, inner, stmt)
    elif isinstance(node, ast.Attribute):
        return  # `np` in `np.pi`, `x` in `x.shape`: not numbers to change
    elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
        for side in [node.left, *node.comparators]:  # `x == 2` compares with an exact value: keep it an integer
            yield from walk_sites(side, node, True, inner, stmt)
    else:
        inside = inner or isinstance(node, SCOPES)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.expr_context, ast.operator, ast.cmpop, ast.boolop, ast.unaryop)):
                continue
            yield from walk_sites(child, node, int_ctx, inside, stmt)


def sites_of(func: ast.FunctionDef, lines: list[str]) -> list[tuple[Site, tuple[int, int]]]:
    found: list[tuple[Site, tuple[int, int]]] = []
    progress = loop_progress(func)
    for stmt in statements_of(func):
        span = span_of(stmt, lines)
        if span is None or id(stmt) in progress:
            continue
        for root in owned_exprs(stmt):
            found.extend((site, span) for site in walk_sites(root, stmt, False, False, stmt))
    return found


class _Swap(ast.NodeTransformer):
    """Replace one node (found by identity) with another."""

    def __init__(self, old: ast.AST, new: ast.AST) -> None:
        self.old, self.new = old, new

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.old:
            return self.new
        return self.generic_visit(node)


def replace_node(stmt: ast.stmt, old: ast.AST, new: ast.AST) -> None:
    _Swap(old, new).visit(stmt)


def edit_for(stmt: ast.stmt, lines: list[str], span: tuple[int, int], func: ast.FunctionDef) -> Edit:
    return Edit(span[0], span[1], _render(stmt, lines, span), func.name)


def common_ends(a: Sequence[str], b: Sequence[str]) -> tuple[int, int]:
    """How many lines two versions share at the start, and then at the end (never overlapping the start)."""
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return head, tail
