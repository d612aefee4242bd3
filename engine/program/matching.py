"""Matching an answer's lines to a program's: trimming sections, indentation styles, windows and the closest line.

Shared by the two kinds of edit: SEARCH/REPLACE on evolved functions (`patching`) and on a project's marked
blocks (`blocks`). LLM answers lose or change indentation and trailing spaces; these helpers tolerate that where
the intent is unambiguous.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from evoforge.engine.program.source import PatchError

_FENCE_LINE = re.compile(r"^\s*(`{3,}|~{3,})\s*[\w+.-]*\s*$")


def trim(section: list[str]) -> list[str]:
    """Drop code fences and blank lines at the edges of a section, and trailing spaces everywhere."""
    section = [line.rstrip() for line in section]
    while section and (not section[0].strip() or _FENCE_LINE.match(section[0])):
        section = section[1:]
    while section and (not section[-1].strip() or _FENCE_LINE.match(section[-1])):
        section = section[:-1]
    return section


def indent_style(code: str) -> str | None:
    """'spaces' or 'tabs' when the parent indents only one way, else None (leave the answer's indentation alone)."""
    leads = [line[: len(line) - len(line.lstrip(" \t"))] for line in code.split("\n") if line.strip()]
    uses_tabs = any("\t" in lead for lead in leads)
    uses_spaces = any(" " in lead for lead in leads)
    if uses_tabs and uses_spaces:
        return None
    return "tabs" if uses_tabs else "spaces"


def fix_indent(line: str, style: str | None) -> str:
    """Rewrite leading tabs/spaces of an answer line into the parent's style, 4 columns per level."""
    body = line.lstrip(" \t")
    lead = line[: len(line) - len(body)]
    if style is None or not lead:
        return line
    columns = len(lead.expandtabs(4))
    if style == "spaces":
        return " " * columns + body
    if columns % 4:
        return line
    return "\t" * (columns // 4) + body


def columns(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.lstrip(" \t").expandtabs(4)) if line.strip() else 0


def windows(code_lines: list[str], search: list[str], same: Callable[[str, str], bool]) -> list[int]:
    n = len(search)
    return [i for i in range(len(code_lines) - n + 1)
            if all(same(code_lines[i + k], search[k]) for k in range(n))]


def dedented(lines: list[str]) -> list[str]:
    indents = [columns(line) for line in lines if line.strip()]
    base = min(indents) if indents else 0
    return [(" " * (columns(line) - base) + line.lstrip(" \t")).rstrip() if line.strip() else "" for line in lines]


def closest(search: list[str], code_lines: list[str]) -> str:
    """Name the first SEARCH line that matches no code line, with the code line most like it."""
    present = {line.strip() for line in code_lines}
    missing = next(((n, s) for n, s in enumerate(search, 1) if s.strip() and s.strip() not in present), None)
    if missing is None:
        first = next(line for line in search if line.strip())
        at = next(i for i, c in enumerate(code_lines) if c.strip() == first.strip())
        return (f"each of its lines exists but not in this order or with this indentation (its first line "
                f"`{first.strip()}` is at code line {at + 1})")
    number, line = missing
    best, best_ratio = 0, -1.0
    for i, candidate in enumerate(code_lines):
        if candidate.strip():
            ratio = difflib.SequenceMatcher(None, line.strip(), candidate.strip()).ratio()
            if ratio > best_ratio:
                best, best_ratio = i, ratio
    if best_ratio < 0:
        return f"SEARCH line {number} `{line.strip()}` matches no line of the code (the code is empty)"
    return (f"SEARCH line {number} `{line.strip()}` matches no line of the code; the closest is code line "
            f"{best + 1}: `{code_lines[best].strip()}`")


SEARCH_LINE = re.compile(r"^\s*<{5,9}\s*SEARCH\b(.*)$", re.IGNORECASE)  # group 1: what follows it (a target)
DIVIDER_LINE = re.compile(r"^\s*={5,9}\s*$")
REPLACE_LINE = re.compile(r"^\s*>{5,9}\s*REPLACE\b.*$", re.IGNORECASE)


def search_replace(lines: list[str], start: int, where: str, *, opens_another: Callable[[str], bool],
                   copy_from: str) -> tuple[list[str], list[str], int]:
    """The SEARCH and REPLACE sections of the edit that opens at ``lines[start]``, and the index of its REPLACE
    line. A malformed edit raises PatchError starting with ``where``: not closed (a line ``opens_another`` edit
    comes first), no divider, or nothing to search for (the model is told to copy the lines from ``copy_from``)."""
    divider = end = None
    for j in range(start + 1, len(lines)):
        if opens_another(lines[j]):
            break
        if divider is None and DIVIDER_LINE.match(lines[j]):
            divider = j
        elif REPLACE_LINE.match(lines[j]):
            end = j
            break
    if end is None:
        raise PatchError(f"{where}: `<<<<<<< SEARCH` is not closed by a `>>>>>>> REPLACE` line")
    if divider is None:
        raise PatchError(f"{where}: no `=======` line between SEARCH and REPLACE")
    search = trim(lines[start + 1:divider])
    if not any(line.strip() for line in search):
        raise PatchError(f"{where}: the SEARCH section is empty; copy the exact lines to replace from {copy_from}")
    return search, trim(lines[divider + 1:end]), end
