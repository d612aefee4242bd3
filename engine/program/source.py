"""Program text utilities: the canonical form used for dedupe, and the check that a program is only its functions.

A program is the source of the problem's evolved function(s) and nothing else. `check_program` enforces that, so
an LLM cannot slip in imports, globals or extra functions; `normalize_code` gives the form two programs are
compared in, so a change to comments, whitespace or docstrings is not a new program.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import textwrap
from collections.abc import Sequence

from evoforge.evaluators.project import is_block_program, split_program
from evoforge.evaluators.validator import Refused, runs_at_definition


class PatchError(ValueError):
    """A proposed change cannot be turned into a valid program; the message says what is wrong and where."""


def names_text(evolved_names: Sequence[str]) -> str:
    """Human-readable list of the evolved functions: `priority(...)`, `a(...) and b(...)`."""
    items = [f"{name}(...)" for name in evolved_names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def parse_code(code: str, what: str = "the code") -> ast.Module:
    """Parse code, turning a SyntaxError into a PatchError that names the line and shows it."""
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        line = (exc.text or "").rstrip("\n")
        shown = f": `{line.strip()}`" if line.strip() else ""
        raise PatchError(f"{what} does not parse: {exc.msg} at line {exc.lineno}{shown}") from None
    except UnicodeEncodeError as exc:  # a lone surrogate (JSON's `\ud800`), which Python's parser cannot encode
        raise PatchError(f"{what} holds {exc.object[exc.start:exc.end]!r} at character {exc.start}, a lone "
                         "surrogate, which is not text; write the character itself or an escape") from None
    except (RecursionError, MemoryError):
        raise PatchError(f"{what} nests too deeply to parse (an expression or statement about a thousand levels "
                         "deep); write flatter code") from None


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                # An emptied body becomes `pass` so `def f(): "doc"` and `def f(): pass` are the same program.
                node.body = body[1:] or ([ast.Pass()] if not isinstance(node, ast.Module) else [])


@functools.lru_cache(maxsize=256)
def normalize_code(code: str) -> str:
    """Canonical form of a program: its AST without docstrings, comments or layout (raises PatchError if unparsable).

    Cached: a candidate is normalised to compare it with its parent and again for its hash, and parents recur.
    A project's program (its marked blocks) is normalised block by block."""
    if is_block_program(code):
        return _normalize_blocks(code)
    tree = parse_code(code)
    _strip_docstrings(tree)
    try:
        return ast.dump(tree)
    except RecursionError:  # a tree too deep to print: the code's lines stand for it
        return "\n".join(line.rstrip() for line in code.split("\n") if line.strip())


def _normalize_blocks(code: str) -> str:
    """Each block's canonical form under its id: its AST where the dedented block parses on its own (a block may
    hold a `return` or the middle of a loop body too), else its lines without trailing spaces and blank lines."""
    try:
        blocks = split_program(code)
    except Refused as exc:
        raise PatchError(str(exc)) from None
    parts = []
    for block, text in blocks.items():
        try:
            tree = ast.parse(textwrap.dedent(text))
            _strip_docstrings(tree)
            form = ast.dump(tree)
        except (SyntaxError, RecursionError, MemoryError):  # a block nested too deeply for the tree: its text
            form = "\n".join(line.rstrip() for line in text.split("\n") if line.strip())
        parts.append(f"{block}\n{form}")
    return "\n".join(parts)


def code_hash(code: str) -> str:
    """sha256 hex digest of `normalize_code(code)`: equal for programs that differ only in comments and layout."""
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


def _describe(node: ast.stmt) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return f"function `{node.name}`"
    if isinstance(node, ast.ClassDef):
        return f"class `{node.name}`"
    text = ast.unparse(node).splitlines()[0]
    if len(text) > 60:
        text = text[:57] + "..."
    return f"statement `{text}`"


def check_program(code: str, evolved_names: Sequence[str]) -> None:
    """Raise PatchError unless code parses and is exactly one plain `def` per evolved name, with nothing else."""
    tree = parse_code(code, "the new code")
    wanted = list(evolved_names)
    seen: dict[str, int] = {}
    problems: list[str] = []
    eager: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in wanted:
            if node.name in seen:
                problems.append(f"line {node.lineno}: `{node.name}` is defined twice (first at line {seen[node.name]})")
            else:
                seen[node.name] = node.lineno
            if node.decorator_list:
                problems.append(f"line {node.decorator_list[0].lineno}: a decorator on `{node.name}`")
            eager.extend(f"line {line}: {what}" for line, what in runs_at_definition(node))
        else:
            problems.append(f"line {node.lineno}: top-level {_describe(node)}")
    for name in wanted:
        if name not in seen:
            problems.append(f"function `{name}` is missing")
    if problems:
        raise PatchError("; ".join(problems) + "; edits outside the evolved functions are refused; only "
                         f"{names_text(wanted)} may change")
    if eager:
        raise PatchError("; ".join(eager) + "; defaults and annotations run when the def is loaded, so they must be "
                         "literals and plain types")
