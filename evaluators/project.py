"""Marked blocks in ordinary files: a project folder whose `# EVOLVE-BLOCK-START` ... `# EVOLVE-BLOCK-END` regions
evolve while every other byte of its files stays as the user wrote it.

A program of a project is the set of its blocks, written as text (`program_text`): one header line per block,
`# EVOLVE-BLOCK sorter.py:name`, followed by the block's lines exactly as they sit in the file. That text is what
the database stores, hashes, diffs and shows. `ProjectSource.assemble` puts the blocks back into the files (the
text outside them is copied unchanged, newline style included), and `ProjectSource.check` refuses a program that
would change anything outside the blocks: a missing or unknown block, a marker inside a block, a file that no
longer parses, a block whose indentation or brackets capture the code around it (the statements outside the
blocks must keep their exact structure), a block that rebinds a name the rest of its module defines (or a
builtin), so that it cannot replace the trusted code around it, and, with the language check, block code outside
the language subset of `evaluators.validator`.

Shared by the engine and the sandbox; imports only the standard library and the validator.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import importlib
import re
import sys
import types
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from evoforge.evaluators.validator import (
    ALLOWED_MODULES,
    ALLOWED_SUBMODULES,
    Refused,
    attribute_allowed,
    check_nodes,
    module_allowed,
)

START, END = "EVOLVE-BLOCK-START", "EVOLVE-BLOCK-END"
_MARKER = re.compile(r"^([ \t]*)#[ \t]*EVOLVE-BLOCK-(START|END)\b(.*)$")
_NEAR_MARKER = re.compile(r"^[ \t]*#[ \t]*EVOLVE[ \t_-]*BLOCK[ \t_-]*(START|END)", re.IGNORECASE)  # a misspelt one
_HEADER = re.compile(r"^# EVOLVE-BLOCK ([^\s:]+):([A-Za-z0-9_.-]+)[ \t]*$")
_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
# A marker, or a look-alike (`EVOLVE‐BLOCK‐END` with Unicode hyphens, other case, full-width letters once
# NFKC-normalised) that would show a reader of the files a block ending where it does not.
_LOOKS_LIKE_MARKER = re.compile(r"evolve[^a-z0-9\n]{0,3}block", re.IGNORECASE)
MAX_FILES = 200
MAX_BYTES = 4 * 1024 * 1024  # all the project's .py files together


class ProjectError(ValueError):
    """A project folder or its markers are unusable; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class BlockSpan:
    """One marked block: its file, name, and the 0-based lines of its START and END markers in the file."""

    file: str
    name: str
    start: int
    end: int

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def source_lines(text: str) -> list[str]:
    """The file's lines with their line endings, so that joining them gives the file back byte for byte. Lines
    end where Python's tokenizer ends them (`\n`, `\r\n`, `\r`), never at the other breaks `str.splitlines`
    knows (form feed, `\x1c`-`\x1e`, `\x85`, `\u2028`, `\u2029`), so line numbers agree with the syntax tree's."""
    return _LINE.findall(text)



def _newline(line: str) -> str:
    return "\r\n" if line.endswith("\r\n") else "\r" if line.endswith("\r") else "\n"


def parse_markers(path: str, text: str) -> list[BlockSpan]:
    """The blocks of one file, in order; a marker without its partner, nested blocks or a repeated name raise."""
    spans: list[BlockSpan] = []
    open_at: tuple[int, str] | None = None
    for number, line in enumerate(source_lines(text)):
        match = _MARKER.match(line.rstrip("\r\n"))
        if not match:
            if _NEAR_MARKER.match(line):
                raise ProjectError(f"{path}:{number + 1}: {line.strip()!r} looks like a misspelt marker\n  fix: write "
                                   f"`# {START} [name]` and `# {END}` exactly so (capitals, hyphens)")
            if "EVOLVE-BLOCK" in line:
                raise ProjectError(f"{path}:{number + 1}: `EVOLVE-BLOCK` appears outside a marker line\n  fix: write "
                                   f"markers as whole comment lines `# {START}` and `# {END}`")
            continue
        kind, rest = match.group(2), match.group(3).strip()
        if kind == "START":
            if open_at is not None:
                raise ProjectError(f"{path}:{number + 1}: a block starts inside the block opened at line "
                                   f"{open_at[0] + 1}\n  fix: close each block with `# {END}` before the next")
            name = rest or str(len(spans) + 1)
            if not _NAME.match(name):
                raise ProjectError(f"{path}:{number + 1}: block name {name!r}\n  fix: name a block with letters, "
                                   "digits, `_`, `.` or `-` (or leave the name out)")
            open_at = (number, name)
        else:
            if open_at is None:
                raise ProjectError(f"{path}:{number + 1}: `# {END}` without a `# {START}` before it\n"
                                   "  fix: open the block first")
            if rest:
                raise ProjectError(f"{path}:{number + 1}: text after `# {END}`\n  fix: end a block with the bare "
                                   "marker; its name goes on the START line")
            if any(s.name == open_at[1] for s in spans):
                raise ProjectError(f"{path}:{open_at[0] + 1}: a second block named {open_at[1]!r}\n"
                                   "  fix: give each block of a file its own name")
            spans.append(BlockSpan(path, open_at[1], open_at[0], number))
            open_at = None
    if open_at is not None:
        raise ProjectError(f"{path}:{open_at[0] + 1}: the block is never closed\n  fix: add `# {END}` after it")
    return spans


def split_program(code: str) -> dict[str, str]:
    """A program's blocks (id -> text, each line ending in a newline), in order; raises Refused if malformed."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    lines = code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        match = _HEADER.match(line)
        if match:
            block = f"{match.group(1)}:{match.group(2)}"
            if block in blocks:
                raise Refused(f"line {number}: block {block} is given twice; give each block once")
            current = blocks[block] = []
        elif current is None:
            if line.strip():
                raise Refused(f"line {number}: text before the first `# EVOLVE-BLOCK file.py:name` header; a "
                              "program of this problem is its blocks, each under its header")
        else:
            current.append(line + "\n")
    return {block: "".join(text) for block, text in blocks.items()}


def program_text(blocks: Mapping[str, str]) -> str:
    """The program for these blocks (id -> text): the form the database stores and `split_program` reads."""
    parts = []
    for block, text in blocks.items():
        if text and not text.endswith("\n"):
            text += "\n"
        parts.append(f"# EVOLVE-BLOCK {block}\n{text}")
    return "".join(parts)


def is_block_program(code: str) -> bool:
    """Whether code is a project's program (blocks under headers) rather than a problem's functions."""
    first = next((line for line in code.splitlines() if line.strip()), "")
    return bool(_HEADER.match(first))


def module_name(path: str) -> str:
    """`pkg/util.py` -> `pkg.util`, `pkg/__init__.py` -> `pkg`."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _bound_names(nodes: Iterable[ast.stmt]) -> set[str]:
    """Names these module-level statements bind in the module (not inside the functions they define)."""
    found: set[str] = set()
    todo: list[ast.AST] = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                found.add(node.name)
            todo.extend(_evaluated_around(node))
            continue
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            found.update(_walrus_targets(node))  # `[(x := ...) for ...]` binds x in the scope around it
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            found.add(node.id)
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            found.add(node.target.id)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            found.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            found.add(node.rest)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _evaluated_around(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda) -> list[ast.AST]:
    """The parts of a def, class or lambda that run in the scope around it when it is defined (decorators,
    defaults, annotations, bases): a `:=` there binds a name of that scope."""
    parts: list[ast.AST] = []
    if not isinstance(node, ast.Lambda):
        parts.extend(node.decorator_list)
    if isinstance(node, ast.ClassDef):
        return [*parts, *node.bases, *node.keywords]
    args = node.args
    parts.extend(args.defaults)
    parts.extend(d for d in args.kw_defaults if d is not None)
    if not isinstance(node, ast.Lambda):
        parts.extend(a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg,
                                            args.kwarg) if a is not None and a.annotation is not None)
        if node.returns is not None:
            parts.append(node.returns)
    return parts


def _walrus_targets(comprehension: ast.AST) -> set[str]:
    """Names that `:=` inside a comprehension (and the comprehensions nested in it) binds in the enclosing scope;
    a lambda or def inside it is a scope of its own."""
    found: set[str] = set()
    todo: list[ast.AST] = [comprehension]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            todo.extend(_evaluated_around(node))
            continue
        if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            found.add(node.target.id)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _declared(nodes: Iterable[ast.stmt], kind: type[ast.Global] | type[ast.Nonlocal]) -> set[str]:
    """Names these statements declare `global` (or `nonlocal`): what they rebind outside their own scope."""
    return {name for node in nodes for sub in ast.walk(node) if isinstance(sub, kind) for name in sub.names}


def _yields(nodes: Iterable[ast.stmt]) -> bool:
    """Whether these statements yield in the scope they sit in (not inside a function they define)."""
    todo: list[ast.AST] = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
    return False


def _foreign_imports(nodes: Iterable[ast.AST], own: set[str]) -> set[str]:
    """Names the code binds by importing from a module outside the allowed ones and the project's own (`os`,
    `from sys import modules`): the code outside the blocks may use them, the blocks may not."""
    found: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                found.update((a.asname or a.name).split(".")[0] for a in sub.names
                             if not module_allowed(a.name) and a.name.split(".")[0] not in own)
            elif (isinstance(sub, ast.ImportFrom) and not sub.level and sub.module
                  and sub.module.split(".")[0] not in own):
                found.update(a.asname or a.name for a in sub.names if not module_allowed(sub.module) or (
                    not attribute_allowed(a.name) and not module_allowed(f"{sub.module}.{a.name}")))
    return found


def _all_bound(nodes: Iterable[ast.AST]) -> set[str]:
    """Every name these statements bind in any scope: variables, parameters, functions, imports."""
    found: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load):
                found.add(sub.id)
            elif isinstance(sub, ast.arg):
                found.add(sub.arg)
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(sub.name)
            elif isinstance(sub, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and sub.name:
                found.add(sub.name)
    return found


@functools.cache
def module_doors() -> frozenset[str]:
    """Public names under which the allowed modules, as they really are, hold a module that evolved code may not
    import (`re.enum.bltns` is `builtins`, `typing.types`) or a metaclass (which builds classes from dunder names
    given as strings). Evolved functions get copies of the allowed modules without these
    (`evaluators.inside.namespace`); a block runs in an ordinary module beside trusted code and gets the real ones,
    so these names are refused in blocks instead. Found by walking the allowed modules, the same in every process."""
    exempt = {sub for top, subs in ALLOWED_SUBMODULES.items() for sub in subs}
    seen: set[int] = set()
    found: set[str] = set()
    todo = [importlib.import_module(name) for name in ALLOWED_MODULES]
    while todo:
        module = todo.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        for name in dir(module):
            if not attribute_allowed(name):
                continue
            try:
                value = getattr(module, name)
            except Exception:  # a lazy attribute that cannot load here
                continue
            if isinstance(value, types.ModuleType):
                if not module_allowed(value.__name__) and name not in exempt:
                    found.add(name)
                todo.append(value)
            elif isinstance(value, type) and issubclass(value, type):
                found.add(name)
    return frozenset(found)


def _doors(nodes: Iterable[ast.AST], foreign: set[str]) -> list[str]:
    """Where block code names a module door (`module_doors`), or reads as an attribute (of one of the project's
    modules) a name the project binds by importing what blocks may not use; one reason per line."""
    doors = module_doors()
    problems: list[str] = []
    for node in (sub for top in nodes for sub in ast.walk(top)):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Attribute) and (node.attr in doors or node.attr in foreign):
            problems.append(f"line {line}: the attribute `.{node.attr}` reaches a module (or a metaclass) that "
                            "evolved code may not use")
        elif isinstance(node, ast.ImportFrom):
            problems.extend(f"line {line}: `from {node.module} import {a.name}` reaches a module (or a metaclass) "
                            "that evolved code may not use" for a in node.names if a.name in doors)
    return list(dict.fromkeys(problems))


class _Strip(ast.NodeTransformer):
    """Remove the statements that lie inside blocks, leaving the structure of the code around them."""

    def __init__(self, inside: list[tuple[int, int]]):
        self.inside = inside

    def _in_block(self, node: ast.stmt) -> bool:
        return any(a <= node.lineno and (node.end_lineno or node.lineno) <= b for a, b in self.inside)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for field, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                setattr(node, field, [self.visit(s) for s in value if not self._in_block(s)])
            elif isinstance(value, ast.AST):
                self.visit(value)
        return node


@dataclass(frozen=True)
class _Assembled:
    files: dict[str, str]  # path -> text with the blocks in place
    ranges: dict[str, list[tuple[str, int, int]]]  # path -> (block id, first line, last line), 1-based, inclusive


class ProjectSource:
    """A loaded project: its folder, every .py file's exact text, the blocks, and what `solve` may call."""

    def __init__(self, folder: Path, files: Mapping[str, str], calls: Iterable[str]):
        self.folder = folder
        self.files = dict(sorted(files.items()))
        self.calls = tuple(calls)
        self.blocks: tuple[BlockSpan, ...] = tuple(span for path, text in self.files.items()
                                                   for span in parse_markers(path, text))
        if not self.blocks:
            raise ProjectError(f"{folder}: no file of the project has a `# {START}` ... `# {END}` block\n"
                               "  fix: mark the region(s) the search may rewrite")
        self._outline = {path: self._stripped(path, text, [s for s in self.blocks if s.file == path])
                         for path, text in self.files.items() if any(s.file == path for s in self.blocks)}
        self._trusted_names = {path: self._outside_names(path) for path in self._outline}
        self._trusted_locals = {path: _all_bound(self._outside_nodes(path)) for path in self._outline}
        own = {module_name(p).split(".")[0] for p in self.files}
        self._closed_names = {path: _foreign_imports(self._outside_nodes(path), own) for path in self._outline}
        # any file's imports, blocks or not: a block may reach another module's (`merging.serial`) as an attribute
        self._all_closed = set().union(*(_foreign_imports(self._outside_nodes(path), own) for path in self.files))

    # -- the program

    @property
    def block_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.blocks)

    def seed_blocks(self) -> dict[str, str]:
        out = {}
        for span in self.blocks:
            lines = source_lines(self.files[span.file])[span.start + 1:span.end]
            out[span.id] = "".join(line.rstrip("\r\n") + "\n" for line in lines)
        return out

    def seed_program(self) -> str:
        return program_text(self.seed_blocks())

    @property
    def source_hash(self) -> str:
        digest = hashlib.sha256()
        for path, text in self.files.items():
            digest.update(f"{path}\0{len(text)}\0".encode())
            digest.update(text.encode())
        return digest.hexdigest()

    def blocks_of(self, code: str) -> dict[str, str]:
        """The program's blocks, exactly the project's (none missing, none unknown), in the project's order."""
        blocks = split_program(code)
        unknown = [b for b in blocks if b not in self.block_ids]
        missing = [b for b in self.block_ids if b not in blocks]
        if unknown:
            raise Refused(f"no block named {', '.join(unknown)}; the blocks are {', '.join(self.block_ids)}")
        if missing:
            raise Refused(f"block(s) {', '.join(missing)} missing; a program gives every block: "
                          f"{', '.join(self.block_ids)}")
        for block, text in blocks.items():
            if _LOOKS_LIKE_MARKER.search(unicodedata.normalize("NFKC", text)):
                raise Refused(f"block {block} contains an `EVOLVE-BLOCK` marker (or text made to look like one); "
                              "markers stay where they are")
        return {b: blocks[b] for b in self.block_ids}

    def _assemble(self, blocks: Mapping[str, str]) -> _Assembled:
        files = dict(self.files)
        ranges: dict[str, list[tuple[str, int, int]]] = {}
        for path in self._outline:
            lines = source_lines(self.files[path])
            out: list[str] = []
            at = 0
            for span in (s for s in self.blocks if s.file == path):
                out.extend(lines[at:span.start + 1])
                newline = _newline(lines[span.start])
                new = [line + newline for line in blocks[span.id].split("\n")[:-1]] if blocks[span.id] else []
                first = len(out) + 1
                out.extend(new)
                ranges.setdefault(path, []).append((span.id, first, len(out)))
                at = span.end
            out.extend(lines[at:])
            files[path] = "".join(out)
        return _Assembled(files, ranges)

    def assemble(self, code: str) -> dict[str, str]:
        """Every file of the project (path -> text) with the program's blocks in place; raises Refused."""
        return self._assemble(self.blocks_of(code)).files

    def check(self, code: str, *, language: bool = True) -> dict[str, str]:
        """The assembled files, once the program is known to change nothing outside its blocks (and, with
        `language`, its block code is within the language subset); raises Refused with every reason found."""
        try:
            return self._check(code, language)
        except (RecursionError, MemoryError):  # the parser and the tree walks recurse: an answer must not crash them
            raise Refused("refused before running: the blocks nest too deeply to check (an expression or statement "
                          "about a thousand levels deep); write flatter code") from None

    def _check(self, code: str, language: bool) -> dict[str, str]:
        assembled = self._assemble(self.blocks_of(code))
        problems: list[str] = []
        for path, ranges in assembled.ranges.items():
            text = assembled.files[path]
            try:
                tree = ast.parse(text, filename=path)
            except SyntaxError as exc:
                where = next((b for b, a, z in ranges if exc.lineno and a <= exc.lineno <= z), None)
                raise Refused(f"{path}:{exc.lineno}: syntax error: {exc.msg}"
                              + (f" (in block {where})" if where else " (check the indentation of the blocks "
                                                                      "around it)")) from None
            inside = [(a, z) for _, a, z in ranges]
            if self._stripped(path, text, inside) != self._outline[path]:
                raise Refused(f"{path}: the blocks change the code around them (a block's indentation, an open "
                              "bracket or string, or a statement cut at a marker makes code outside the blocks "
                              "mean something else); keep each block whole statements at its marker's indentation")
            block_nodes = self._block_statements(tree, inside)
            module_level = _bound_names(n for n in tree.body if n in block_nodes) | _declared(block_nodes, ast.Global)
            rebinds = sorted((module_level & (self._trusted_names[path] | set(dir(builtins))))
                             | (_declared(block_nodes, ast.Nonlocal) & self._trusted_locals[path]))
            if rebinds:
                problems.append(f"{path}: a block rebinds {', '.join(rebinds)}, which the code outside the blocks "
                                "defines or which is a builtin; blocks may not replace the code around them (use "
                                "another name)")
            if _yields(block_nodes):
                problems.append(f"{path}: a block uses `yield` outside a function of its own, which would turn the "
                                "function around it into a generator")
            if language:
                used = sorted({n.id for node in block_nodes for n in ast.walk(node) if isinstance(n, ast.Name)}
                              & self._closed_names[path])
                if used:
                    problems.append(f"{path}: a block uses {', '.join(used)}, which the code outside the blocks "
                                    f"imports from a module blocks may not use (only {', '.join(ALLOWED_MODULES)} "
                                    "and the project's own modules)")
                problems.extend(f"{path} {p}" for p in check_nodes(block_nodes))
                problems.extend(f"{path} {p}" for p in _doors(block_nodes, self._all_closed))
        if problems:
            raise Refused("refused before running: " + "; ".join(problems[:8]))
        return assembled.files

    @staticmethod
    def _block_statements(tree: ast.Module, inside: list[tuple[int, int]]) -> list[ast.stmt]:
        """The outermost statements that lie inside a block."""
        found: list[ast.stmt] = []
        todo: list[ast.AST] = [tree]
        while todo:
            node = todo.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt) and any(
                        a <= child.lineno and (child.end_lineno or child.lineno) <= b for a, b in inside):
                    found.append(child)
                else:
                    todo.append(child)
        return found

    @staticmethod
    def _stripped(path: str, text: str, spans: list[BlockSpan] | list[tuple[int, int]]) -> str:
        inside = [(s.start + 2, s.end) if isinstance(s, BlockSpan) else s for s in spans]
        try:
            tree = ast.parse(text, filename=path)
        except SyntaxError as exc:
            raise ProjectError(f"{path}:{exc.lineno}: syntax error: {exc.msg}\n  fix: the project's files must "
                               "parse as they are") from None
        return ast.dump(_Strip(inside).visit(tree))

    def _outside_names(self, path: str) -> set[str]:
        """The names the module-level code outside the blocks binds in the module, and for a package's
        `__init__.py` its submodules (importing one binds its name in the package: a block that bound it first
        would be what `from pkg import util` gives the trusted code)."""
        tree = ast.parse(self.files[path])
        inside = [(s.start + 2, s.end) for s in self.blocks if s.file == path]
        names = _bound_names(n for n in tree.body
                             if not any(a <= n.lineno and (n.end_lineno or n.lineno) <= b for a, b in inside))
        if PurePosixPath(path).name == "__init__.py":
            package = PurePosixPath(path).parent.parts
            names.update(PurePosixPath(other).parts[len(package)].removesuffix(".py") for other in self.files
                         if PurePosixPath(other).parts[:len(package)] == package
                         and len(PurePosixPath(other).parts) > len(package) and other != path)
        return names

    def _outside_nodes(self, path: str) -> list[ast.stmt]:
        """The file's code outside its blocks (the seed's blocks stripped)."""
        inside = [(s.start + 2, s.end) for s in self.blocks if s.file == path]
        return _Strip(inside).visit(ast.parse(self.files[path])).body

    def module_names(self, path: str) -> set[str]:
        """The names the file binds at its top level (inside its blocks too, as the seed has them)."""
        return _bound_names(ast.parse(self.files[path]).body)

    # -- what the sandbox needs

    def imports(self) -> list[str]:
        """Modules the project's code outside the blocks imports that are not its own: a candidate's process
        imports them before it locks itself down (it may open no file afterwards)."""
        own = {module_name(p).split(".")[0] for p in self.files}
        found: set[str] = set()
        for path, text in self.files.items():
            inside = [(s.start + 2, s.end) for s in self.blocks if s.file == path]
            for node in ast.walk(ast.parse(text)):
                if any(a <= getattr(node, "lineno", 0) <= b for a, b in inside):
                    continue
                if isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    found.add(node.module)
        return sorted(name for name in found if name.split(".")[0] not in own)


def read_files(folder: Path) -> dict[str, str]:
    """The project's .py files (path inside the folder -> exact text), hidden folders and caches left out."""
    files: dict[str, str] = {}
    total = 0
    for file in sorted(folder.rglob("*.py")):
        rel = file.relative_to(folder).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in PurePosixPath(rel).parts):
            continue
        if file.is_symlink():
            raise ProjectError(f"{file}: a link\n  fix: keep the project's files real files inside its folder")
        with open(file, newline="") as handle:  # exact bytes: no newline translation
            files[rel] = handle.read()
        total += len(files[rel])
        if len(files) > MAX_FILES or total > MAX_BYTES:
            raise ProjectError(f"{folder}: more than {MAX_FILES} files or {MAX_BYTES >> 20} MiB of Python\n"
                               "  fix: point Project() at the small folder the search should change")
    return files


def read_project(folder: Path, problem_file: Path, calls: Iterable[str]) -> ProjectSource:
    """Read the .py files of a project folder (its sub-folders included) and check them against `calls`."""
    if not folder.is_dir():
        raise ProjectError(f"{folder}: no such folder\n  fix: give Project() a folder next to the problem file")
    if problem_file.is_relative_to(folder):
        raise ProjectError(f"{folder}: the project folder holds the problem file itself\n  fix: keep the problem "
                           "file (its score, inputs and helpers) outside the project folder, which the candidate "
                           "runs")
    files = read_files(folder)
    if not files:
        raise ProjectError(f"{folder}: no .py files\n  fix: put the module(s) to evolve in it")
    for rel in files:
        top = module_name(rel).split(".")[0]
        if top in sys.stdlib_module_names or top in ("numpy", "evoforge"):
            raise ProjectError(f"{folder / rel}: the module name {top!r} is taken by "
                               f"{'the standard library' if top in sys.stdlib_module_names else 'a package'}\n"
                               "  fix: rename the file")
    project = ProjectSource(folder, files, calls)
    for call in project.calls:
        module, _, function = call.rpartition(".")
        path = next((p for p in files if module_name(p) == module), None)
        if not module or path is None:
            raise ProjectError(f"calls names {call!r}, but the project has no module {module!r}\n  fix: name "
                               "functions as 'module.function' (modules: "
                               f"{', '.join(module_name(p) for p in files)})")
        spans = [(s.start + 2, s.end) for s in project.blocks if s.file == path]
        trusted = [n.name for n in ast.parse(files[path]).body if isinstance(n, ast.FunctionDef)
                   and not any(a <= n.lineno <= b for a, b in spans)]
        if function not in trusted:
            raise ProjectError(f"{folder / path}: calls names {call!r}, which is not a top-level def outside the "
                               "blocks there\n  fix: name functions the trusted code of the project defines (a "
                               f"block may not define what solve calls): {module} defines "
                               f"{', '.join(trusted) or 'none'}")
    return project
