"""Read a candidate program from a file a person wrote (for `evoforge eval` and adding human versions)."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

from evoforge.engine.program.source import PatchError, check_program
from evoforge.evaluators import Problem, ProblemError


def read_candidate(path: str | Path, problem: Problem) -> str:
    """The program in `path`: its definitions of the evolved functions; ones it does not define keep the seed's."""
    path = Path(path)
    if not path.is_file():
        raise ProblemError(f"{path}: no such candidate file\n  fix: pass a .py file defining "
                           f"{', '.join(problem.evolved_names)}")
    return candidate_from_text(path.read_text(), problem, where=str(path))


def candidate_from_text(source: str, problem: Problem, *, where: str = "the pasted code") -> str:
    """The program in `source` (a person's text): as `read_candidate`, with errors naming `where`."""
    path = where
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as exc:
        raise ProblemError(f"{path}:{exc.lineno}: syntax error: {exc.msg}\n  fix: correct the syntax") from None
    found = _function_sources(source, tree, problem.evolved_names)
    if not found:
        raise ProblemError(f"{path}: defines none of the evolved functions {list(problem.evolved_names)}\n"
                           "  fix: define at least one of them at the top level of the file")
    parts = [found.get(f.name, f.source) for f in problem.evolved]
    code = "\n\n".join(parts) + "\n"
    try:
        check_program(code, problem.evolved_names)  # the rules a search's candidates follow
    except PatchError as exc:
        raise ProblemError(f"{path}: {exc}\n  fix: keep each evolved function a plain def with literal defaults "
                           "and plain annotations") from None
    return code


def _function_sources(source: str, tree: ast.Module, names: Sequence[str]) -> dict[str, str]:
    lines = source.splitlines()
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            found[node.name] = "\n".join(lines[node.lineno - 1 : node.end_lineno])
    return found
