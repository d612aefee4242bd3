"""The language a candidate is written in: Python without the parts that reach past a function's own arguments.

Checked on the syntax tree before anything of the candidate runs; a refusal names the line and the rule, so the
model that wrote the code learns it from the error. The rules are structural, not a list of known tricks:
- no attribute whose name starts with `_` (dunders, private members: `__globals__`, `__class__`, `random._os`),
  no attribute of frames, tracebacks, generators, coroutines or code objects (`gi_frame`, `f_back`, `co_consts`),
  none of the few public names that look attributes up by a string (`str.format`, `operator.attrgetter`,
  `functools.update_wrapper`, `singledispatch`) and none of numpy's doors to memory and files (`ctypes`,
  `as_strided`, `load`, `fromfile`, `memmap`, ...), and `.resize` only called directly, never with `refcheck`
  (which frees memory views still use); attributes are never assigned or deleted;
- no name that starts with `__` and none of the builtins that read or write namespaces, run strings as code,
  open files or introspect types (`getattr`, `globals`, `vars`, `eval`, `exec`, `compile`, `open`, `type`);
- imports only of the allowed modules (`ALLOWED_MODULES`); no classes, no `async`.
What is not refused here is still out of reach at run time: the functions are compiled in a namespace of their
own (`evaluators.inside.namespace`) and run in a process that never held the problem's data
(`evaluators.inside.candidate`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

# Modules a candidate may import (and the problem's helpers may use); each is seen through a copy that holds only
# its public, allowed names (see evaluators.inside.namespace).
ALLOWED_MODULES = ("numpy", "math", "cmath", "itertools", "functools", "collections", "heapq", "bisect", "random",
                   "statistics", "fractions", "decimal", "operator", "array", "re", "string", "typing")
ALLOWED_SUBMODULES = {"numpy": ("linalg", "random", "fft", "polynomial", "emath", "ma", "char", "rec"),
                      "collections": ("abc",)}

# Attributes of frames, tracebacks, generators, coroutines and code objects, and of the interpreter's internals.
INTROSPECTION_ATTRIBUTES = frozenset({
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "f_lasti", "f_lineno", "f_trace_lines",
    "f_trace_opcodes", "tb_frame", "tb_next", "tb_lasti", "tb_lineno", "gi_frame", "gi_code", "gi_yieldfrom",
    "gi_running", "gi_suspended", "cr_frame", "cr_code", "cr_await", "cr_origin", "cr_running", "cr_suspended",
    "ag_frame", "ag_code", "ag_await", "ag_running", "func_globals", "func_code", "func_closure", "cell_contents",
    "modules", "builtins", "sys", "os", "gc", "inspect", "importlib", "subprocess", "posix", "socket",
})
# Public names that look an attribute up by a string given at run time, or evaluate a string as code.
STRING_LOOKUP_ATTRIBUTES = frozenset({
    "format", "format_map", "vformat", "get_field", "attrgetter", "methodcaller", "update_wrapper", "wraps",
    "singledispatch", "singledispatchmethod", "get_type_hints", "ForwardRef", "Formatter", "Template",
})
# numpy's doors to raw memory, files and native code.
NUMPY_ESCAPE_ATTRIBUTES = frozenset({
    "ctypes", "ctypeslib", "cffi", "lib", "core", "testing", "f2py", "distutils", "stride_tricks", "as_strided",
    "memmap", "open_memmap", "load", "loads", "save", "savez", "savez_compressed", "savetxt", "loadtxt",
    "genfromtxt", "fromfile", "tofile", "fromregex", "DataSource", "dump", "dumps", "show_config", "show_runtime",
    "info", "source", "lookfor", "get_include", "test", "from_dlpack", "capsule", "byte_bounds", "recfunctions",
    "base",  # a view's owner: in the harness's process (numba) a slice of an input would lead to all of it
})
FORBIDDEN_ATTRIBUTES = INTROSPECTION_ATTRIBUTES | STRING_LOOKUP_ATTRIBUTES | NUMPY_ESCAPE_ATTRIBUTES
# `a.resize(n, refcheck=False)` moves an array's data and frees the old block while views still point into it: a
# view then reads (and writes) whatever the process allocates there next, in the harness's process (numba's
# Python fallback) the inputs to come. `resize` may only be called directly (`np.resize`, which copies, or a
# method call that numpy checks), never with `refcheck` or with keywords unpacked from a dict.
REALLOCATING = "resize"

FORBIDDEN_NAMES = frozenset({
    "getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars", "dir", "eval", "exec", "compile",
    "open", "input", "breakpoint", "help", "exit", "quit", "type", "object", "super", "memoryview", "classmethod",
    "staticmethod", "property", "copyright", "credits", "license",
})

RULES_HINT = ("evolved code may use its arguments, numpy as `np`, the modules " + ", ".join(ALLOWED_MODULES[1:])
              + " and the helpers the problem names; no introspection, files or private attributes")


# Node types a type annotation may use: names, dotted names, subscripts, strings, `|` and tuples of those.
_ANNOTATION_NODES = (ast.Name, ast.Attribute, ast.Subscript, ast.Constant, ast.Tuple, ast.List, ast.BinOp,
                     ast.BitOr, ast.Load)


def runs_at_definition(func: ast.FunctionDef) -> list[tuple[int, str]]:
    """What in a def would run code when the program is loaded rather than when the function is called: (line,
    what) for each default that is not a literal and each annotation that is not a plain type.

    Default values and annotations are evaluated by the `def` statement itself, before solve() calls anything:
    code there could replace solve() or read the held-out inputs. Defaults must be literals and annotations
    plain type expressions.
    """
    found: list[tuple[int, str]] = []
    args = func.args
    for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
        try:
            ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            found.append((default.lineno, f"a default value of `{func.name}` that is not a literal"))
    annotations = [a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                   if a is not None and a.annotation is not None]
    if func.returns is not None:
        annotations.append(func.returns)
    for annotation in annotations:
        if not all(isinstance(n, _ANNOTATION_NODES) for n in ast.walk(annotation)):
            found.append((annotation.lineno, f"an annotation of `{func.name}` that is not a plain type"))
    return found


class Refused(Exception):
    """The candidate breaks a rule of the language subset; the message names the line and the rule."""


def check(code: str, filename: str = "<candidate>") -> None:
    """Raise Refused if code uses anything outside the subset (every violation found, one per line)."""
    try:
        tree = ast.parse(code, filename=filename)
        problems = _Checker().run(tree)
    except SyntaxError as exc:
        raise Refused(f"line {exc.lineno}: syntax error: {exc.msg}") from None
    except (RecursionError, MemoryError):  # the parser and the checker recurse: hostile code must not crash them
        raise Refused("refused before running: the code nests too deeply to check (an expression or statement "
                      "about a thousand levels deep); write flatter code") from None
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise Refused(f"refused before running: {shown} ({RULES_HINT})")


def check_nodes(nodes: Iterable[ast.AST]) -> list[str]:
    """The rule violations in these parts of a syntax tree (the blocks of a project's file), one per line."""
    checker = _Checker()
    for node in nodes:
        checker.visit(node)
    return checker.problems


def attribute_allowed(name: str) -> bool:
    """Whether `x.name` may appear in a candidate (and what a module copy may hold)."""
    return not name.startswith("_") and not name.startswith("co_") and name not in FORBIDDEN_ATTRIBUTES


def module_allowed(dotted: str) -> bool:
    """Whether `import dotted` (or `from dotted import ...`) is allowed."""
    top, _, rest = dotted.partition(".")
    if top not in ALLOWED_MODULES:
        return False
    return not rest or rest in ALLOWED_SUBMODULES.get(top, ())


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.called: set[int] = set()  # the ids of `.resize` attributes that are called right where they appear

    def run(self, tree: ast.AST) -> list[str]:
        self.visit(tree)
        return self.problems

    def refuse(self, node: ast.AST, what: str) -> None:
        line = getattr(node, "lineno", "?")
        text = f"line {line}: {what}"
        if text not in self.problems:
            self.problems.append(text)

    def name(self, node: ast.AST, name: str | None, what: str) -> None:
        if name is None:
            return
        if name.startswith("__"):
            self.refuse(node, f"{what} `{name}` (names starting with __ are not allowed)")
        elif name in FORBIDDEN_NAMES:
            self.refuse(node, f"`{name}` is not available to evolved code")

    def visit_Name(self, node: ast.Name) -> None:
        self.name(node, node.id, "the name")

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == REALLOCATING:
            self.called.add(id(node.func))
            if any(k.arg is None for k in node.keywords):
                self.refuse(node, f"`.{REALLOCATING}(**...)` is not allowed; name its arguments")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr == REALLOCATING and id(node) not in self.called:
            self.refuse(node, f"`.{REALLOCATING}` may only be called where it is named (`np.{REALLOCATING}(a, n)`)")
        if attr in ("format", "format_map"):
            self.refuse(node, f"`.{attr}` is not allowed (it reads attributes named in a string); use an f-string")
        elif not attribute_allowed(attr):
            why = ("private and special attributes are not allowed" if attr.startswith("_")
                   else "it reaches past the function's arguments")
            self.refuse(node, f"the attribute `.{attr}` ({why})")
        if not isinstance(node.ctx, ast.Load):
            self.refuse(node, f"assigning or deleting the attribute `.{attr}` is not allowed; keep state in a "
                              "local variable or a dict")
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not module_allowed(alias.name):
                self.refuse(node, f"`import {alias.name}`: only {', '.join(ALLOWED_MODULES)} may be imported")
            self.name(node, alias.asname, "the alias")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not module_allowed(module):
            self.refuse(node, f"`from {'.' * node.level}{module} import ...`: only {', '.join(ALLOWED_MODULES)} "
                              "may be imported")
            return
        for alias in node.names:
            if alias.name == "*":
                self.refuse(node, f"`from {module} import *` is not allowed; name what you import")
            elif not attribute_allowed(alias.name) and not module_allowed(f"{module}.{alias.name}"):
                self.refuse(node, f"`from {module} import {alias.name}` is not allowed")
            self.name(node, alias.asname, "the alias")

    def _function(self, node: ast.FunctionDef | ast.Lambda) -> None:
        if isinstance(node, ast.FunctionDef):
            self.name(node, node.name, "the function name")
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                self.name(arg, arg.arg, "the parameter")
        self.generic_visit(node)

    visit_FunctionDef = _function
    visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.refuse(node, "classes are not allowed in evolved code; use functions, tuples and dicts")

    def _async(self, node: ast.AST) -> None:
        self.refuse(node, "async code is not allowed in evolved code")

    visit_AsyncFunctionDef = _async
    visit_Await = _async
    visit_AsyncFor = _async
    visit_AsyncWith = _async

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        for name in node.names:
            self.name(node, name, "the name")

    visit_Nonlocal = visit_Global

    def visit_keyword(self, node: ast.keyword) -> None:
        self.name(node, node.arg, "the keyword")
        if node.arg == "refcheck":
            self.refuse(node, "`refcheck=` is not allowed (an array resized without it frees memory its views still "
                              "use); use `np.resize(a, n)`, which copies")
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self.name(node, node.name, "the name")
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:  # `case C(attr=...)` reads the attribute
            if not attribute_allowed(attr):
                self.refuse(node, f"the attribute `{attr}` in a class pattern")
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self.name(node, node.name, "the name")
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        self.name(node, node.name, "the name")

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.name(node, node.rest, "the name")
        self.generic_visit(node)

