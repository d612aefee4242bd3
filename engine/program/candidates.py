"""Read a candidate program from a file a person wrote (for `evoforge eval` and adding human versions)."""

from __future__ import annotations

import ast
import difflib
from collections.abc import Sequence
from pathlib import Path

from evoforge.engine.program.source import PatchError, check_program
from evoforge.evaluators import Problem, ProblemError
from evoforge.evaluators.project import ProjectError, parse_markers, program_text, source_lines
from evoforge.evaluators.validator import ALLOWED_MODULES, ALLOWED_SUBMODULES, Refused, module_allowed


def read_candidate(path: str | Path, problem: Problem) -> str:
    """The program in `path`: its definitions of the evolved functions; ones it does not define keep the seed's.
    For a project's problem: a folder holding the project's files (their blocks are the program), or a file
    holding the blocks under their `# EVOLVE-BLOCK file.py:name` headers."""
    path = Path(path)
    if problem.project is not None and path.is_dir():
        return _blocks_from_folder(path, problem)
    if not path.is_file():
        raise ProblemError(f"{path}: no such candidate file\n  fix: pass a .py file defining "
                           f"{', '.join(problem.evolved_names)}")
    return candidate_from_text(path.read_text(), problem, where=str(path))


def candidate_from_text(source: str, problem: Problem, *, where: str = "the pasted code") -> str:
    """The program in `source` (a person's text): as `read_candidate`, with errors naming `where`."""
    path = where
    if problem.project is not None:
        try:
            problem.project.check(source, language=False)
        except Refused as exc:
            raise ProblemError(f"{path}: {exc}\n  fix: give every block of the project under its "
                               "`# EVOLVE-BLOCK file.py:name` header (as `evoforge program` shows them)") from None
        return program_text(problem.project.blocks_of(source))
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as exc:
        raise ProblemError(f"{path}:{exc.lineno}: syntax error: {exc.msg}\n  fix: correct the syntax") from None
    except (RecursionError, MemoryError):
        raise ProblemError(f"{path}: nests too deeply to parse\n  fix: write flatter code") from None
    _check_imports(tree, problem, path)
    found = _function_sources(source, tree, problem.evolved_names)
    if not found:
        defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
        near = {d: difflib.get_close_matches(d, problem.evolved_names, n=1, cutoff=0.75) for d in defined}
        hint = "".join(f" (is {d!r} meant to be {m[0]!r}?)" for d, m in near.items() if m)
        raise ProblemError(f"{path}: defines none of the evolved functions {list(problem.evolved_names)}{hint}\n"
                           "  fix: define at least one of them at the top level of the file, by the same name")
    parts = [found.get(f.name, f.source) for f in problem.evolved]
    code = "\n\n".join(parts) + "\n"
    try:
        check_program(code, problem.evolved_names)  # the rules a search's candidates follow
    except PatchError as exc:
        raise ProblemError(f"{path}: {exc}\n  fix: keep each evolved function a plain def with literal defaults "
                           "and plain annotations") from None
    return code


def _check_imports(tree: ast.Module, problem: Problem, where: str) -> None:
    """Refuse a top-level import whose names the evolved functions would not find: only the functions are kept,
    so it would surface as a NameError in the sandbox, far from the line that caused it."""
    given = problem.candidate_modules  # alias -> module, as the problem file names them
    for node in tree.body:
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
            # `import a.b` binds a; `import a.b as c` binds c to a.b
            bound = {a.asname or a.name.partition(".")[0]: a.name if a.asname else a.name.partition(".")[0]
                     for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
            bound = {a.asname or a.name: "" for a in node.names}  # a name from a module: never the problem's
        else:
            continue
        statement = ast.unparse(node)
        refused = [m for m in modules if not module_allowed(m)]
        if refused:
            raise ProblemError(f"{where}:{node.lineno}: `{statement}`: the evolved code may not use the module "
                               f"{refused[0]}\n  fix: use only {', '.join(ALLOWED_MODULES)} (and numpy's "
                               f"{', '.join(ALLOWED_SUBMODULES['numpy'])})")
        missing = [alias for alias, module in bound.items() if given.get(alias) != module]
        if missing:
            seen = ", ".join(f"{alias} ({module})" for alias, module in given.items()) or "none"
            raise ProblemError(f"{where}:{node.lineno}: `{statement}` binds {', '.join(missing)}, which the evolved "
                               f"code would not see (only its functions are kept; the problem file gives it {seen})"
                               "\n  fix: import inside the function that uses it, or use the problem file's name "
                               "for the module")


def _function_sources(source: str, tree: ast.Module, names: Sequence[str]) -> dict[str, str]:
    lines = source.splitlines()
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            found[node.name] = "\n".join(lines[node.lineno - 1 : node.end_lineno])
    return found


def _blocks_from_folder(folder: Path, problem: Problem) -> str:
    """The blocks of a copy of the project's folder, which must match the project's files outside its blocks."""
    project = problem.project
    assert project is not None
    blocks: dict[str, str] = {}
    for path in sorted({b.file for b in project.blocks}):
        file = folder / path
        if not file.is_file():
            raise ProblemError(f"{file}: missing\n  fix: give a folder with the project's files ({path} ...)")
        with open(file, newline="") as handle:
            text = handle.read()
        try:
            spans = parse_markers(path, text)
        except ProjectError as exc:
            raise ProblemError(str(exc)) from None
        lines = source_lines(text)
        for span in spans:
            blocks[span.id] = "".join(line.rstrip("\r\n") + "\n" for line in lines[span.start + 1:span.end])
    code = program_text(blocks)
    try:
        files = project.check(code, language=False)
    except Refused as exc:
        raise ProblemError(f"{folder}: {exc}\n  fix: keep the project's blocks and their names") from None
    for path, text in files.items():  # every file of the project, with or without blocks: only blocks may differ
        if not (folder / path).is_file():
            raise ProblemError(f"{folder / path}: missing\n  fix: give a copy of the whole project folder")
        with open(folder / path, newline="") as handle:
            if handle.read() != text:
                raise ProblemError(f"{folder / path}: differs from the project's file outside its blocks\n"
                                   "  fix: change only the code between the EVOLVE-BLOCK markers")
    return code
