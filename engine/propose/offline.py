"""The offline proposer: real program mutations with no LLM, written as the SEARCH/REPLACE answer an LLM would give.

It keeps the whole loop working (and tested) on a machine with no network and no key. Each proposal edits one
statement of the best parent with `ast`: perturb a constant, swap an operator, add a term `c * g(v)` built from a
small vocabulary that works on numpy arrays and scalars alike, add a thresholded adjustment before a `return`, or
take a statement from another parent. The SEARCH section is the statement's exact source lines, so comments
elsewhere survive, and every answer is checked with `apply_response` before it is returned.

The vocabulary uses `np` where the problem module imports numpy as np, as the bundled problems do. Given the
problem module's global names, a mutation that would use a name the candidate cannot see (`np` in a problem that
does not import numpy) is discarded and another one tried, so every proposal at least resolves its names.
"""

from __future__ import annotations

import ast
import builtins
import copy
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from evoforge.engine.program.patching import apply_response
from evoforge.engine.program.source import PatchError, normalize_code

__all__ = ["KINDS", "NoMutationFound", "OfflineProposal", "AstMutator"]

# Mutation kinds and how often each is tried; operator swaps have few outcomes, so they get less weight.
KINDS = ("constant", "operator", "insert", "condition", "recombine")
_BUILTIN_NAMES = frozenset(dir(builtins))
_WEIGHTS = {"constant": 4.0, "operator": 1.0, "insert": 4.0, "condition": 2.0, "recombine": 2.0}
_SAYS = {
    "constant": "perturb a numeric constant",
    "operator": "swap an operator",
    "insert": "add a new term",
    "condition": "add a thresholded adjustment",
    "recombine": "take a statement from another parent",
}
# Calls whose arguments are counts, shapes or indices: their constants stay integers, their operators stay put.
_INT_FUNCS = {"range", "len", "zeros", "ones", "empty", "full", "arange", "reshape", "int", "round", "repeat",
              "tile", "product", "combinations", "permutations", "islice", "choice", "integers", "randint",
              "partition", "argpartition", "roll", "take"}
_INT_KEYWORDS = {"axis", "k", "n", "repeat", "shape", "size", "dtype", "decimals"}
_NUMERIC_CALLS = {"abs", "min", "max", "float", "sum", "pow", "round"}
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
_SCOPES = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class NoMutationFound(RuntimeError):
    """The offline proposer found no valid new program from these parents within its tries."""


@dataclass(frozen=True)
class OfflineProposal:
    """One offline answer: the mutation kind, the SEARCH/REPLACE text, and the program it produces."""

    kind: str
    response: str
    code: str


@dataclass
class _Edit:
    """Replace code lines [start, end) (0-based) with `new`; `function` is where the edit happens."""

    start: int
    end: int
    new: list[str]
    function: str


@dataclass
class _Site:
    node: ast.AST
    parent: ast.AST | None
    int_ctx: bool  # a count, shape or index: keep it an integer
    inner: bool  # inside a lambda or comprehension, where names may be local to it
    stmt: ast.stmt


class AstMutator:
    """Proposes mutations of the best parent as SEARCH/REPLACE text; deterministic for a given rng state."""

    def __init__(self, *, max_tries: int = 50, global_names: Collection[str] | None = None) -> None:
        """``global_names``: the names the evolved functions can see besides builtins (the problem module's
        globals); None trusts every name, as for the bundled problems, which import numpy as np."""
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        self.max_tries = max_tries
        self.global_names = None if global_names is None else frozenset(global_names) | _BUILTIN_NAMES

    def propose(self, parents: Sequence[str], evolved_names: Sequence[str], rng: np.random.Generator) -> str:
        """A SEARCH/REPLACE answer that changes the last (best) parent; parents are ordered worst to best."""
        return self.propose_detailed(parents, evolved_names, rng).response

    def propose_detailed(self, parents: Sequence[str], evolved_names: Sequence[str],
                         rng: np.random.Generator) -> OfflineProposal:
        """Like `propose`, also returning the mutation kind and the resulting program."""
        if not parents:
            raise ValueError("propose needs at least one parent program")
        parents = [p.replace("\r\n", "\n") for p in parents]
        best = parents[-1]
        best_normal = _normal_or_none(best)
        if best_normal is None:
            raise NoMutationFound("the best parent does not parse, so it cannot be mutated")
        known = {n for n in map(_normal_or_none, parents) if n is not None}
        donors = [p for p in parents[:-1] if _normal_or_none(p) not in (None, best_normal)]
        kinds = [k for k in KINDS if k != "recombine" or donors]
        weights = np.array([_WEIGHTS[k] for k in kinds])
        weights = weights / weights.sum()
        for _ in range(self.max_tries):
            kind = kinds[int(rng.choice(len(kinds), p=weights))]
            tree = ast.parse(best)
            functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in evolved_names]
            if not functions:
                raise NoMutationFound(f"the best parent defines none of {list(evolved_names)}")
            func = functions[int(rng.integers(len(functions)))]
            lines = best.split("\n")
            if kind == "recombine":
                edit = _recombine(func, lines, donors[int(rng.integers(len(donors)))], rng)
            else:
                edit = _MUTATORS[kind](func, lines, rng)
            if edit is None:
                continue
            proposal = _emit(kind, edit, best, lines, evolved_names)
            if proposal is None:
                continue
            normal = normalize_code(proposal.code)
            tree = ast.parse(proposal.code)
            if normal in known or _divides_by_zero(tree) or self._unresolved(tree, best):
                continue
            return proposal
        raise NoMutationFound(f"no valid new program from {len(parents)} parent(s) in {self.max_tries} tries")


    def _unresolved(self, tree: ast.Module, parent: str) -> bool:
        """Whether the new program reads a global name that neither the module nor the parent provides."""
        if self.global_names is None:
            return False
        known = self.global_names | _names(ast.parse(parent), read=True) | _names(tree, read=False)
        return any(n.id not in known for n in ast.walk(tree) if isinstance(n, ast.Name))


def _names(tree: ast.AST, *, read: bool) -> set[str]:
    """The names a program binds (assignments, arguments, functions, imports), and with ``read`` those it reads."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and (read or not isinstance(n.ctx, ast.Load))}
    names |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef))}
    names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import,
              ast.ImportFrom)) for a in n.names}
    return names


def _normal_or_none(code: str) -> str | None:
    try:
        return normalize_code(code)
    except PatchError:
        return None


def _emit(kind: str, edit: _Edit, best: str, lines: list[str], names: Sequence[str]) -> OfflineProposal | None:
    """Write the edit as a SEARCH/REPLACE answer, widening SEARCH upwards until it matches only its own place."""
    start, new = edit.start, list(edit.new)
    expected = _tidy("\n".join(lines[:edit.start] + edit.new + lines[edit.end:]))
    for _ in range(5):
        search = lines[start:edit.end]
        response = (f"Offline mutation ({kind}): {_SAYS[kind]} in {edit.function}.\n\n<<<<<<< SEARCH\n"
                    + "\n".join(search) + "\n=======\n" + "\n".join(new) + "\n>>>>>>> REPLACE\n")
        try:
            code = apply_response(response, best, names)
        except PatchError:
            code = None
        if code is not None and _tidy(code) == expected:
            return OfflineProposal(kind=kind, response=response, code=code)
        if start == 0:
            return None
        start -= 1
        new.insert(0, lines[start])
    return None


def _tidy(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.rstrip("\n").split("\n"))


def _divides_by_zero(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            right = node.right
            while isinstance(right, ast.UnaryOp) and isinstance(right.op, (ast.USub, ast.UAdd)):
                right = right.operand
            if isinstance(right, ast.Constant) and isinstance(right.value, (int, float)) and right.value == 0:
                return True
    return False


# --- locating statements and expressions -------------------------------------------------------------------------

def _byte_prefix(line: str, col: int) -> str:
    return line.encode()[:col].decode(errors="replace")


def _byte_suffix(line: str, col: int) -> str:
    return line.encode()[col:].decode(errors="replace")


def _end(node: ast.stmt | ast.expr) -> tuple[int, int]:
    """Where a node ends: its last line and the byte column after it (ast.parse always sets both)."""
    assert node.end_lineno is not None and node.end_col_offset is not None
    return node.end_lineno, node.end_col_offset


def _span(stmt: ast.stmt, lines: list[str]) -> tuple[int, int] | None:
    """Lines [start, end) that hold exactly this statement (for if/while/for: its header), else None."""
    first = lines[stmt.lineno - 1]
    if _byte_prefix(first, stmt.col_offset).strip():
        return None
    if isinstance(stmt, (ast.If, ast.While, ast.For)):
        head = stmt.test if isinstance(stmt, (ast.If, ast.While)) else stmt.iter
        end, end_col = _end(head)
        tail = _byte_suffix(lines[end - 1], end_col).strip()
        if not re.match(r"^\)*\s*:\s*(#.*)?$", tail) or stmt.body[0].lineno <= end:
            return None
        return stmt.lineno - 1, end
    end, end_col = _end(stmt)
    tail = _byte_suffix(lines[end - 1], end_col).strip()
    if tail and not tail.startswith("#"):
        return None
    return stmt.lineno - 1, end


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _render(stmt: ast.stmt, lines: list[str], span: tuple[int, int]) -> list[str]:
    """Source lines for a mutated statement (or just its header for if/while/for), at the original indentation."""
    indent = _indent(lines[span[0]])
    if isinstance(stmt, (ast.If, ast.While, ast.For)):
        head = copy.copy(stmt)
        head.body, head.orelse = [ast.Pass()], []
        text = ast.unparse(head).split("\n")[:-1]
        if lines[span[0]].lstrip().startswith("elif"):
            text[0] = "el" + text[0]
    else:
        text = ast.unparse(stmt).split("\n")
    return [indent + line for line in text]


def _statements(func: ast.FunctionDef) -> list[ast.stmt]:
    body = func.body
    skip = body[0] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else None
    return [n for n in ast.walk(func) if isinstance(n, ast.stmt) and n is not func and n is not skip
            and not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _owned(stmt: ast.stmt) -> list[ast.expr]:
    if isinstance(stmt, (ast.Return, ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return [stmt.value] if stmt.value is not None else []
    if isinstance(stmt, (ast.If, ast.While)):
        return [stmt.test]
    if isinstance(stmt, ast.For):
        return [stmt.iter]
    return []


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _walk(node: ast.AST, parent: ast.AST | None, int_ctx: bool, inner: bool, stmt: ast.stmt):
    yield _Site(node, parent, int_ctx, inner, stmt)
    if isinstance(node, ast.Subscript):
        yield from _walk(node.value, node, int_ctx, inner, stmt)
        yield from _walk(node.slice, node, True, inner, stmt)
    elif isinstance(node, ast.Call):
        counts = int_ctx or _call_name(node) in _INT_FUNCS
        for arg in node.args:
            yield from _walk(arg, node, counts, inner, stmt)
        for keyword in node.keywords:
            yield from _walk(keyword.value, node, counts or keyword.arg in _INT_KEYWORDS, inner, stmt)
    elif isinstance(node, ast.Attribute):
        return  # `np` in `np.pi`, `x` in `x.shape`: not numbers to change
    elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
        for side in [node.left, *node.comparators]:  # `x == 2` compares with an exact value: keep it an integer
            yield from _walk(side, node, True, inner, stmt)
    else:
        inside = inner or isinstance(node, _SCOPES)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.expr_context, ast.operator, ast.cmpop, ast.boolop, ast.unaryop)):
                continue
            yield from _walk(child, node, int_ctx, inside, stmt)


def _sites(func: ast.FunctionDef, lines: list[str]) -> list[tuple[_Site, tuple[int, int]]]:
    found: list[tuple[_Site, tuple[int, int]]] = []
    for stmt in _statements(func):
        span = _span(stmt, lines)
        if span is None:
            continue
        for root in _owned(stmt):
            found.extend((site, span) for site in _walk(root, stmt, False, False, stmt))
    return found


class _Swap(ast.NodeTransformer):
    """Replace one node (found by identity) with another."""

    def __init__(self, old: ast.AST, new: ast.AST) -> None:
        self.old, self.new = old, new

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.old:
            return self.new
        return self.generic_visit(node)


def _replace(stmt: ast.stmt, old: ast.AST, new: ast.AST) -> None:
    _Swap(old, new).visit(stmt)


def _edit_for(stmt: ast.stmt, lines: list[str], span: tuple[int, int], func: ast.FunctionDef) -> _Edit:
    return _Edit(span[0], span[1], _render(stmt, lines, span), func.name)


# --- numbers ---------------------------------------------------------------------------------------------------

def _num(value: float | int) -> ast.expr:
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


def _constant_value(node: ast.AST) -> float | int | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return cast("float | int", node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant_value(node.operand)
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

def _mutate_constant(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> _Edit | None:
    targets = []
    for site, span in _sites(func, lines):
        value = _constant_value(site.node)
        if value is None or isinstance(site.parent, ast.UnaryOp) and _constant_value(site.parent) is not None:
            continue  # `-1` is mutated as one constant, not as the 1 inside it
        targets.append((site, span, value))
    if not targets:
        return None
    site, span, value = targets[int(rng.integers(len(targets)))]
    new = _new_constant(value, site.int_ctx, rng)
    _replace(site.stmt, site.node, _num(new))
    return _edit_for(site.stmt, lines, span, func)


def _mutate_operator(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> _Edit | None:
    targets = []
    for site, span in _sites(func, lines):
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
                and _constant_value(node) is None:
            targets.append((site, span))
        elif isinstance(node, ast.Call) and _call_name(node) in _CALL_SWAPS:
            targets.append((site, span))
    if not targets:
        return None
    site, span = targets[int(rng.integers(len(targets)))]
    node = site.node
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            current = _constant_value(node.right)
            powers = [p for p in (0.5, 2, 3, 1.5) if p != current]
            node.right = _num(powers[int(rng.integers(len(powers)))])
        elif not site.int_ctx and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)) and rng.random() < 0.3:
            power = (2, 3, 0.5)[int(rng.integers(3))]  # raise one operand to a small power instead
            side = "left" if rng.random() < 0.5 else "right"
            setattr(node, side, ast.BinOp(left=getattr(node, side), op=ast.Pow(), right=_num(power)))
        else:
            node.op = _BIN_SWAPS[type(node.op)]()
    elif isinstance(node, ast.Compare):
        i = int(rng.integers(len(node.ops)))
        choices = _CMP_SWAPS[type(node.ops[i])]
        node.ops[i] = choices[int(rng.integers(len(choices)))]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        _replace(site.stmt, node, node.operand)
    else:
        assert isinstance(node, ast.Call)  # the only other kind of target
        func_node = node.func
        if isinstance(func_node, ast.Attribute):
            func_node.attr = _CALL_SWAPS[func_node.attr]
        else:
            assert isinstance(func_node, ast.Name)  # a call target is a name or an attribute (_call_name)
            func_node.id = _CALL_SWAPS[func_node.id]
    return _edit_for(site.stmt, lines, span, func)


def _numeric_like(node: ast.AST) -> bool:
    """An expression that plausibly holds a number or a numeric array (so `+ c * g(v)` makes sense on it)."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.BinOp):
        return not any(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(node))
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.USub, ast.UAdd))
    if isinstance(node, ast.Name):
        return isinstance(node.ctx, ast.Load) and node.id not in ("True", "False", "None")
    if isinstance(node, ast.Subscript):
        return isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            return isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy", "math")
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
    return [s.node for s in _walk(root, None, False, False, stmt)
            if not s.int_ctx and not s.inner and not isinstance(s.node, ast.Constant) and _numeric_like(s.node)]


def _pick_value(func: ast.FunctionDef, root: ast.AST, stmt: ast.stmt, rng: np.random.Generator) -> ast.expr | None:
    arguments = _argument_values(func, rng)
    subs = _subexpressions(root, stmt)
    pool = subs if subs and (not arguments or rng.random() < 0.5) else arguments
    if not pool:
        return None
    return copy.deepcopy(pool[int(rng.integers(len(pool)))])


def _vocabulary(v: ast.expr, rng: np.random.Generator) -> ast.expr:
    """g(v) for a term `c * g(v)`: each works on numpy arrays and scalars alike."""
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
        return ast.Compare(left=v, ops=[ast.Gt()], comparators=[_num(_threshold(rng))])
    if k == 5:
        return ast.Compare(left=v, ops=[ast.Lt()], comparators=[_num(_threshold(rng))])
    if k == 6:
        return _np("minimum", v, _num(_threshold(rng)))
    return _np("exp", ast.BinOp(left=ast.UnaryOp(op=ast.USub(), operand=_np("abs", v)), op=ast.Div(),
                                right=_num(_threshold(rng, allow_zero=False))))


def _term(base: ast.expr, g: ast.expr, rng: np.random.Generator) -> ast.expr:
    """`base + c * g` or `base * (1 + c * g)`, with a random sign."""
    scaled = ast.BinOp(left=ast.Constant(_coefficient(rng, g)), op=ast.Mult(), right=g)
    sign = ast.Add() if rng.random() < 0.5 else ast.Sub()
    if rng.random() < 0.6:
        return ast.BinOp(left=base, op=sign, right=scaled)
    return ast.BinOp(left=base, op=ast.Mult(), right=ast.BinOp(left=ast.Constant(1), op=sign, right=scaled))


def _mutate_insert(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> _Edit | None:
    targets = []
    for site, span in _sites(func, lines):
        if site.int_ctx or site.inner or not isinstance(site.stmt, (ast.Return, ast.Assign, ast.AugAssign,
                                                                    ast.AnnAssign)):
            continue
        is_root = site.parent is site.stmt
        operand = isinstance(site.parent, (ast.BinOp, ast.UnaryOp))
        if (is_root or operand or isinstance(site.node, ast.BinOp)) and _numeric_like(site.node):
            targets.append((site, span))
    if not targets:
        return None
    site, span = targets[int(rng.integers(len(targets)))]
    v = _pick_value(func, _owned(site.stmt)[0], site.stmt, rng)
    if v is None:
        return None
    assert isinstance(site.node, ast.expr)  # _numeric_like holds only for expressions
    new = _term(site.node, _vocabulary(v, rng), rng)
    _replace(site.stmt, site.node, new)
    return _edit_for(site.stmt, lines, span, func)


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


def _mutate_condition(func: ast.FunctionDef, lines: list[str], rng: np.random.Generator) -> _Edit | None:
    returns = []
    for s in _statements(func):
        if isinstance(s, ast.Return) and s.value is not None and _numeric_like(s.value):
            span = _span(s, lines)
            if span is not None:
                returns.append((s, s.value, span))
    if not returns:
        return None
    stmt, value, span = returns[int(rng.integers(len(returns)))]
    v = _pick_value(func, value, stmt, rng)
    if v is None:
        return None
    body: list[ast.stmt] = []
    if not isinstance(v, ast.Name) and any(ast.dump(n) == ast.dump(v) for n in ast.walk(value)):
        local = _fresh(func, "r")  # name the shared subexpression, as a person would
        body.append(_assign(local, v))
        value = cast(ast.expr, _Substitute(v, local).visit(copy.deepcopy(value)))  # an expression stays one
        v = ast.Name(local, ast.Load())
    if isinstance(value, ast.Name):
        result = value.id
    else:
        result = _fresh(func, "result")  # not "score": that is the problem's trusted function
        body.append(_assign(result, value))
    op = (ast.Lt, ast.Gt, ast.LtE, ast.GtE)[int(rng.integers(4))]()
    condition = ast.Compare(left=v, ops=[op], comparators=[_num(_threshold(rng))])
    adjusted = _term(ast.Name(result, ast.Load()), condition, rng)
    body.append(_assign(result, adjusted))
    body.append(ast.Return(value=ast.Name(result, ast.Load())))
    indent = _indent(lines[span[0]])
    new = [indent + line for s in body for line in ast.unparse(s).split("\n")]
    return _Edit(span[0], span[1], new, func.name)


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
    return set().union(*(_stored(n) for n in ast.walk(stmt) if isinstance(n, _SCOPES)))


def _recombine(func: ast.FunctionDef, lines: list[str], donor_code: str, rng: np.random.Generator) -> _Edit | None:
    donor = next((n for n in ast.parse(donor_code).body
                  if isinstance(n, ast.FunctionDef) and n.name == func.name), None)
    if donor is None:
        return None
    donor_locals = _stored(donor)
    pairs = []
    for i, mine in enumerate(_body(func)):
        span = _span(mine, lines) if not isinstance(mine, (ast.If, ast.While, ast.For)) else (
            mine.lineno - 1, _end(mine)[0])
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
    indent = _indent(lines[span[0]])
    return _Edit(span[0], span[1], [indent + line for line in ast.unparse(new).split("\n")], func.name)


_MUTATORS: dict[str, Callable[[ast.FunctionDef, list[str], np.random.Generator], _Edit | None]] = {
    "constant": _mutate_constant,
    "operator": _mutate_operator,
    "insert": _mutate_insert,
    "condition": _mutate_condition,
}
