"""Turn a proposer's answer into a new program: SEARCH/REPLACE blocks, or whole evolved functions.

LLM answers are noisy: prose around the code, code fences, CRLF line endings, trailing spaces, tabs, a SEARCH
section that lost its indentation. `apply_response` tolerates that where the intent is unambiguous and otherwise
raises a `PatchError` that says which block failed and why (with the closest line of the parent), because that
text is what a user reads when a run makes no progress.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from evoforge.engine.program.matching import (
    REPLACE_LINE,
    SEARCH_LINE,
    closest,
    columns,
    dedented,
    fix_indent,
    indent_style,
    search_replace,
    windows,
)
from evoforge.engine.program.source import PatchError, check_program, names_text, normalize_code, parse_code
from evoforge.evaluators.project import ProjectSource

__all__ = ["PatchError", "apply_response"]

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+.-]*)")
_FENCE_LINE = re.compile(r"^\s*(`{3,}|~{3,})\s*[\w+.-]*\s*$")
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


@dataclass
class _Block:
    line: int  # 1-based line of the SEARCH marker in the response
    search: list[str]
    replace: list[str]


def apply_response(response: str, parent_code: str, evolved_names: Sequence[str],
                   project: ProjectSource | None = None) -> str:
    """Apply an answer (SEARCH/REPLACE blocks or whole functions) to parent_code; return the new program's code.
    For a project's problem, the answer edits its marked blocks (see `engine.program.blocks`)."""
    if project is not None:
        from evoforge.engine.program.blocks import apply_block_response

        return apply_block_response(response, parent_code, project)
    response = response.replace("\r\n", "\n").replace("\r", "\n")
    parent = parent_code.replace("\r\n", "\n").replace("\r", "\n")
    lines = response.split("\n")
    blocks = _parse_blocks(lines)
    if blocks:
        style = indent_style(parent)
        code = parent
        for index, block in enumerate(blocks):
            search = [fix_indent(line, style) for line in block.search]
            replace = [fix_indent(line, style) for line in block.replace]
            code = _apply_block(code, search, replace, index, len(blocks), block.line)
    else:
        code = _rewrite_functions(lines, parent, evolved_names)
    code = code.rstrip("\n") + "\n"
    if code.rstrip() == parent.rstrip():
        raise PatchError("the edit changes nothing: the new code is the same as the parent's")
    check_program(code, evolved_names)
    try:
        same = normalize_code(code) == normalize_code(parent)
    except PatchError:
        same = False  # an unparsable parent cannot be compared; the new code itself has been checked
    if same:
        raise PatchError("the edit changes nothing: only comments, whitespace or docstrings differ from the parent")
    return code


# --- SEARCH/REPLACE blocks -------------------------------------------------------------------------------------

def _parse_blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        if REPLACE_LINE.match(lines[i]):
            raise PatchError(f"response line {i + 1}: a `>>>>>>> REPLACE` marker without a `<<<<<<< SEARCH` "
                             "before it; write each block as SEARCH, `=======`, REPLACE")
        if not SEARCH_LINE.match(lines[i]):
            i += 1
            continue
        number, start = len(blocks) + 1, i
        search, replace, end = search_replace(
            lines, start, f"SEARCH/REPLACE block {number} (response line {start + 1})",
            opens_another=lambda line: bool(SEARCH_LINE.match(line)), copy_from="the best version")
        blocks.append(_Block(line=start + 1, search=search, replace=replace))
        i = end + 1
    return blocks


def _apply_block(code: str, search: list[str], replace: list[str], index: int, total: int, line: int) -> str:
    where = f"SEARCH/REPLACE block {index + 1} of {total} (response line {line})"
    code_lines = code.split("\n")
    n = len(search)

    def splice(start: int, new: list[str]) -> str:
        return "\n".join(code_lines[:start] + new + code_lines[start + n:])

    def ambiguous(starts: list[int]) -> PatchError:
        at = ", ".join(str(s + 1) for s in starts)
        return PatchError(f"{where}: the SEARCH text occurs {len(starts)} times in the code (at lines {at}); "
                          "include more surrounding lines so that it matches exactly once")

    # Tiers, most exact first; the first tier that matches decides, and more than one match there is an error.
    for same in (lambda a, b: a == b, lambda a, b: a.rstrip() == b.rstrip()):
        starts = windows(code_lines, search, same)
        if len(starts) > 1:
            raise ambiguous(starts)
        if starts:
            return splice(starts[0], replace)

    wanted = dedented(search)
    starts = [i for i in range(len(code_lines) - n + 1) if dedented(code_lines[i:i + n]) == wanted]
    if len(starts) > 1:
        raise ambiguous(starts)
    if starts:
        window = code_lines[starts[0]:starts[0] + n]
        shift = min(columns(x) for x in window if x.strip()) - min(columns(x) for x in search if x.strip())
        unit = "\t" if indent_style(code) == "tabs" else " "
        step = 4 if unit == "\t" else 1
        new = [(unit * (max(0, columns(x) + shift) // step) + x.lstrip(" \t")) if x.strip() else ""
               for x in replace]
        return splice(starts[0], new)

    # A fragment of a line (or lines), e.g. SEARCH `bins - item`: exact text match anywhere.
    text = "\n".join(search)
    hits = [m.start() for m in re.finditer("(?=" + re.escape(text) + ")", code)]
    if len(hits) > 1:
        raise ambiguous([code.count("\n", 0, h) for h in hits])
    if hits:
        return code[:hits[0]] + "\n".join(replace) + code[hits[0] + len(text):]
    raise PatchError(f"{where}: the SEARCH text was not found in the code{_after(index)}; "
                     f"{closest(search, code_lines)}; copy the lines to replace exactly from the best version")


def _after(index: int) -> str:
    if index == 0:
        return ""
    return " (after applying block 1)" if index == 1 else f" (after applying blocks 1-{index})"


# --- whole-function rewrite ------------------------------------------------------------------------------------

def _code_blocks(lines: list[str]) -> list[tuple[int, str]]:
    """Python code fences of a response as (1-based line of the first code line, text); an unclosed fence runs to
    the end."""
    blocks: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, tag = match.group(1), match.group(2).lower()
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*" + re.escape(fence) + r"\s*$", lines[j]):
            j += 1
        if tag in _PYTHON_TAGS:
            blocks.append((i + 2, "\n".join(lines[i + 1:j])))
        i = j + 1
    return blocks


def _defines(text: str, names: Sequence[str]) -> bool:
    return any(re.search(r"^\s*(async\s+)?def\s+" + re.escape(name) + r"\s*\(", text, re.M) for name in names)


def _bare_code(lines: list[str]) -> tuple[int, str] | None:
    """Code in an answer without fences: the whole answer if it parses, else from the first code-looking line on,
    dropping trailing prose until it parses."""
    text = "\n".join(lines)
    try:
        ast.parse(textwrap.dedent(text))
        return 1, text
    except (SyntaxError, RecursionError, MemoryError):
        pass
    starts = [i for i, line in enumerate(lines)
              if re.match(r"^(def |async def |@|import |from \S+ import |class )", line)]
    if not starts:
        return None
    first = starts[0]
    for end in range(len(lines), first, -1):
        chunk = "\n".join(lines[first:end])
        try:
            ast.parse(chunk)
            return first + 1, chunk
        except (SyntaxError, RecursionError, MemoryError):
            continue
    return first + 1, "\n".join(lines[first:])


def _rewrite_functions(lines: list[str], parent: str, evolved_names: Sequence[str]) -> str:
    candidates = [(line, text) for line, text in _code_blocks(lines) if _defines(text, evolved_names)]
    if not candidates:
        bare = _bare_code(lines)
        if bare is not None and _defines(bare[1], evolved_names):
            candidates = [bare]
    if not candidates:
        others = sorted(set(re.findall(r"^\s*def\s+(\w+)\s*\(", "\n".join(lines), re.M)))
        hint = f" (it defines {', '.join(others)} instead)" if others else ""
        raise PatchError("no SEARCH/REPLACE block and no function definition of "
                         f"{names_text(evolved_names)} found in the response{hint}")
    new_functions: dict[str, str] = {}
    for first_line, text in candidates:  # a later block wins for a name: answers often show the old one first
        text = textwrap.dedent(text)
        tree = parse_code(text, f"the code block starting at response line {first_line}")
        code_lines = text.split("\n")
        refused, seen = [], set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in evolved_names:
                if node.name in seen:
                    raise PatchError(f"the code block starting at response line {first_line} defines "
                                     f"`{node.name}` twice; give each function once")
                seen.add(node.name)
                start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                new_functions[node.name] = "\n".join(code_lines[start - 1:node.end_lineno])
            else:
                what = (f"function `{node.name}`" if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                        else f"`{ast.unparse(node).splitlines()[0][:60]}`")
                refused.append(f"{what} (response line {first_line + node.lineno - 1})")
        if refused:
            raise PatchError(f"the answer has top-level code besides the evolved function(s): {', '.join(refused)}; "
                             f"edits outside the evolved functions are refused; only {names_text(evolved_names)} "
                             "may change (the problem's imports such as np stay available; define helpers inside "
                             "the function)")
    return _splice_functions(parent, new_functions)


def _splice_functions(parent: str, new_functions: dict[str, str]) -> str:
    """Replace the parent's functions of the given names with new source, keeping everything else as it was."""
    tree = parse_code(parent, "the parent program")
    lines = parent.split("\n")
    spans = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in new_functions:
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            spans.append((start - 1, node.end_lineno, node.name))
    for start, end, name in sorted(spans, reverse=True):
        lines[start:end] = new_functions[name].split("\n")
    missing = [name for name in new_functions if name not in {s[2] for s in spans}]
    text = "\n".join(lines).rstrip("\n")
    for name in missing:  # the parent lacked it; add it so the program is complete
        text += "\n\n\n" + new_functions[name]
    return text
