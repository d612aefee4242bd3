"""Which `a * b` in a compiled candidate cannot repeat a list or a string, so it may stay a plain `*`.

numba_semantics turns `a * b` into a call of `evoforge_mul`, which checks a repetition's length (`seq * n`). A call
ends numba's fusion of array expressions: `-(bins * (1 - 0.475 * (bins - item)))` then allocates a temporary per
product and compiles a function per product, which on bin packing (5 x 5000 items) took the compile from 0.05 s
to 0.28 s and the run from 0.15 s to 0.22 s. A product needs the check only where one side may be a sequence and
the other a large integer, so it stays `*` where

- one side is a float or complex literal, an integer literal up to SMALL_REPEAT, a comparison (a bool: at most one
  repetition) or a true division (a float): neither a sequence nor a large count; or
- both sides are numeric: literals, the evolved function's own parameters whose declared type (the compiled
  harness's signature) is a number or an array of numbers and which nothing in the program rebinds, and operators,
  subscripts and conditionals of numeric values, and calls of numpy or of an array's methods whose arguments are all
  numeric or tuples of numerics (numba's versions may return what they were given: its `np.sort` of a list is a
  list; and numpy makes arrays of text from text, an item of which, times an integer, numba repeats as a string).

Names are judged only inside the evolved function that declares them (a helper's parameter of the same name, or a
global, may be a list), only when the name is bound exactly once in the whole program (as that parameter), and
only in a function the program never calls itself: the harness calls it with the declared types alone, where a call
from the candidate's own code could compile it for others (a list where an array was declared).
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Collection, Mapping

SMALL_REPEAT = 1 << 16  # x * n with a literal n this small stays `*`: x would need 2**47 items to wrap


def numeric_names(tree: ast.Module, declared: Mapping[str, Collection[int]],
                  numpy_globals: Collection[str] = ()) -> dict[str, frozenset[str]]:
    """For each evolved function (by name), the names that hold only numbers or arrays inside it: its parameters at
    the `declared` positions and its locals that only plain assignments of numeric values bind, where nothing else
    in the program binds them; and numpy itself (`numpy_globals`, names of the numpy module nothing in the program
    rebinds, or that only `import numpy as ...` binds), whose functions return no list or string when given numbers
    and arrays (`_argument`). A function defined twice, or named anywhere in the program but its `def`, gets none."""
    bindings = _bindings(tree)
    read = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store)}
    imported = Counter((a.asname or a.name) for node in ast.walk(tree) if isinstance(node, ast.Import)
                       for a in node.names if a.name == "numpy")
    numpy = frozenset(name for name in set(numpy_globals) | set(imported) if bindings[name] == imported[name])
    found: dict[str, frozenset[str]] = {}
    for node in tree.body:
        if (not isinstance(node, ast.FunctionDef) or node.name not in declared or bindings[node.name] != 1
                or node.name in read):
            continue
        positional = [*node.args.posonlyargs, *node.args.args]
        params = {positional[i].arg for i in declared[node.name]
                  if i < len(positional) and bindings[positional[i].arg] == 1}
        found[node.name] = _with_locals(node, params | numpy, bindings) | numpy
    return found


def _with_locals(func: ast.FunctionDef, known: set[str], bindings: Counter[str]) -> frozenset[str]:
    """`known` and the locals of `func` bound only by `name = value` or `name op= value` in its own body (never in
    a nested function or elsewhere) whose every value is numeric: the largest such set (a loop's `r = r * 2`
    keeps r numeric when r's other assignments are)."""
    values: dict[str, list[ast.expr]] = {}
    for node in _own_scope(func):
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            for target in node.targets:
                values.setdefault(target.id, []).append(node.value)  # type: ignore[attr-defined]
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            values.setdefault(name, []).append(ast.BinOp(ast.Name(name, ast.Load()), node.op, node.value))
    local = {name for name, assigned in values.items() if bindings[name] == len(assigned) and name not in known}
    while True:
        names = known | local
        kept = {name for name in local if all(_numeric(v, names, "") for v in values[name])}
        if kept == local:
            return frozenset(names)
        local = kept


def _own_scope(func: ast.FunctionDef) -> list[ast.AST]:
    """The nodes of func's body that belong to its own scope: not those of nested functions, lambdas, classes or
    comprehensions."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        found.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef | ast.ListComp
                          | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            stack.extend(ast.iter_child_nodes(node))
    return found


def _bindings(tree: ast.AST) -> Counter[str]:
    """How many times each name is bound anywhere in the program (assigned, deleted, a parameter, imported, caught,
    matched, defined or declared global or nonlocal)."""
    names: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names[node.id] += 1
        elif isinstance(node, ast.arg):
            names[node.arg] += 1
        elif isinstance(node, ast.alias):
            names[(node.asname or node.name).split(".")[0]] += 1
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] += 1
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            names[node.name] += 1
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names[node.rest] += 1
    return names


def stays_plain(node: ast.BinOp, numeric: Collection[str], pow_name: str) -> bool:
    """Whether the product `node` (its operands already adjusted) cannot repeat a sequence past an intp's length;
    `numeric`: the numeric parameters of the function it is in; `pow_name`: numba_semantics' power call, whose
    result is numeric where its operands are."""
    if _not_a_count(node.left) or _not_a_count(node.right):
        return True
    return _numeric(node.left, numeric, pow_name) and _numeric(node.right, numeric, pow_name)


def small_int(node: ast.expr) -> bool:
    """A literal int too small to repeat anything that fits in memory past an intp's length. `(0,) * 3` stays as
    written: numba repeats a tuple only by a constant, which a call's argument no longer is."""
    return isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) <= SMALL_REPEAT


def _not_a_count(node: ast.expr) -> bool:
    """Neither a sequence nor an integer larger than SMALL_REPEAT, whatever the names in it are bound to."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (float, complex) or small_int(node)
    return isinstance(node, ast.Compare) or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div))


def _numeric(node: ast.expr, numeric: Collection[str], pow_name: str) -> bool:
    """A number or an array, never a list, tuple or string."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float, complex, bool)
    if isinstance(node, ast.Name):
        return node.id in numeric
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.UnaryOp):
        return _numeric(node.operand, numeric, pow_name)
    if isinstance(node, ast.BinOp):
        return _numeric(node.left, numeric, pow_name) and _numeric(node.right, numeric, pow_name)
    if isinstance(node, ast.BoolOp):
        return all(_numeric(value, numeric, pow_name) for value in node.values)
    if isinstance(node, ast.IfExp):
        return _numeric(node.body, numeric, pow_name) and _numeric(node.orelse, numeric, pow_name)
    if isinstance(node, ast.Subscript | ast.Attribute):  # an array's items, views, members (shape: a tuple, which
        return _numeric(node.value, numeric, pow_name)  # numba repeats by a literal count only)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # numpy's functions, arrays' methods
        return _numeric(node.func.value, numeric, pow_name) and all(
            _argument(arg, numeric, pow_name) for arg in [*node.args, *(k.value for k in node.keywords)])
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == pow_name
            and not node.keywords):
        return all(_numeric(arg, numeric, pow_name) for arg in node.args)
    return False


def _argument(node: ast.expr, numeric: Collection[str], pow_name: str) -> bool:
    """An argument after which a numpy function or an array's method returns a number or an array: numeric, or a
    tuple of numerics (a shape). numba's versions may return what they were given: `np.sort` of a list is a list."""
    if isinstance(node, ast.Tuple):
        return all(_numeric(item, numeric, pow_name) for item in node.elts)
    return _numeric(node, numeric, pow_name)
