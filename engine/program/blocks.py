"""Turn an answer into a new program of a project: SEARCH/REPLACE edits inside its marked blocks, or whole blocks.

An edit names the block it changes, on the SEARCH line or on the line before it (`sorter.py:small`, or just the
file `sorter.py`; with no name, the SEARCH text is looked for in every block). `<<<<<<< BLOCK sorter.py:small` ...
`>>>>>>> BLOCK` gives a block's whole new text. One answer may edit several blocks of several files. Every edit is
located in the parent's blocks before any is applied, so edits that overlap are refused rather than applied in
an order the model did not mean. A SEARCH text found only outside the blocks, a block or file that does not exist
and a path outside the project folder are refused with the reason, which goes back to the model; whatever is
accepted changes the blocks only (`ProjectSource.check` proves it on the assembled files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from evoforge.engine.program.matching import (
    REPLACE_LINE,
    SEARCH_LINE,
    closest,
    columns,
    dedented,
    fix_indent,
    indent_style,
    search_replace,
    trim,
    windows,
)
from evoforge.engine.program.source import PatchError, normalize_code
from evoforge.evaluators.project import ProjectSource, program_text, source_lines
from evoforge.evaluators.validator import Refused

_BLOCK = re.compile(r"^\s*<{5,9}\s*BLOCK\b(.*)$", re.IGNORECASE)
_BLOCK_END = re.compile(r"^\s*>{5,9}\s*(BLOCK|END)\b.*$", re.IGNORECASE)
# A line that names a file (`sorter.py`, `../x.py`, `/etc/passwd`) or a block (`sorter.py:small`) and nothing else.
_TARGET = re.compile(r"^[\s#*>`'\"-]*(?:(?:file|block|in)\s*:?\s*)?[`'\"]?"
                     r"((?:/|(?:[\w.~-]*[/\\])*[\w~-][\w.~-]*\.[A-Za-z]\w*)[\w./\\~-]*(?::[\w.-]+)?)[`'\"]?"
                     r"[\s*:`'\"]*$", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*[\w+.-]*\s*$")


@dataclass
class _Edit:
    number: int  # 1-based, in answer order
    line: int  # 1-based line of the answer where it starts
    target: str | None  # as written: `file.py` or `file.py:name`
    search: list[str] | None  # None: a whole-block rewrite
    replace: list[str]

    @property
    def where(self) -> str:
        kind = "SEARCH/REPLACE edit" if self.search is not None else "BLOCK rewrite"
        return f"{kind} {self.number} (answer line {self.line})"


@dataclass
class _Located:
    edit: _Edit
    block: str
    start: int  # lines [start, end) of the parent's block text
    end: int
    new: list[str]


def _target_before(lines: list[str], i: int) -> str | None:
    """A block or file named on the nearest non-blank line above line i (skipping a code fence)."""
    j = i - 1
    while j >= 0 and (not lines[j].strip() or _FENCE.match(lines[j])):
        j -= 1
    match = _TARGET.match(lines[j]) if j >= 0 else None
    return match.group(1) if match else None


def _named(rest: str) -> str | None:
    match = _TARGET.match(rest) if rest.strip() else None
    return match.group(1) if match else None


def parse_edits(response: str) -> list[_Edit]:
    """The edits of an answer, in order; a malformed edit raises PatchError naming its line."""
    lines = response.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    edits: list[_Edit] = []
    i = 0
    while i < len(lines):
        search, block = SEARCH_LINE.match(lines[i]), _BLOCK.match(lines[i])
        if REPLACE_LINE.match(lines[i]):
            raise PatchError(f"answer line {i + 1}: a `>>>>>>> REPLACE` without a `<<<<<<< SEARCH` before it")
        if not search and not block:
            i += 1
            continue
        number, start = len(edits) + 1, i
        target = _named((search or block).group(1)) or _target_before(lines, i)  # type: ignore[union-attr]
        if block:
            end = next((j for j in range(i + 1, len(lines)) if _BLOCK_END.match(lines[j])), None)
            if end is None:
                raise PatchError(f"BLOCK rewrite {number} (answer line {start + 1}): not closed by a "
                                 "`>>>>>>> BLOCK` line")
            if target is None:
                raise PatchError(f"BLOCK rewrite {number} (answer line {start + 1}): name the block, as in "
                                 "`<<<<<<< BLOCK sorter.py:name`")
            edits.append(_Edit(number, start + 1, target, None, trim(lines[i + 1:end])))
            i = end + 1
            continue
        found, replacement, end = search_replace(
            lines, start, f"SEARCH/REPLACE edit {number} (answer line {start + 1})", copy_from="a block",
            opens_another=lambda line: bool(SEARCH_LINE.match(line) or _BLOCK.match(line)))
        edits.append(_Edit(number, start + 1, target, found, replacement))
        i = end + 1
    return edits


def _resolve(edit: _Edit, project: ProjectSource) -> list[str]:
    """The block ids an edit may touch: the one it names, the blocks of the file it names, or every block."""
    if edit.target is None:
        return list(project.block_ids)
    path, _, name = edit.target.replace("\\", "/").partition(":")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise PatchError(f"{edit.where}: {edit.target} is outside the project folder; only the blocks of "
                         f"{', '.join(sorted({b.file for b in project.blocks}))} may change")
    parts = [p for p in pure.parts if p != "."]
    if parts and parts[0] == project.folder.name and "/".join(parts[1:]) in project.files:
        parts = parts[1:]  # written with the project folder's name in front
    path = "/".join(parts)
    if path not in project.files:
        raise PatchError(f"{edit.where}: the project has no file {path}; the blocks are "
                         f"{', '.join(project.block_ids)}")
    ids = [b.id for b in project.blocks if b.file == path]
    if not ids:
        raise PatchError(f"{edit.where}: {path} has no evolve block; only the blocks may change: "
                         f"{', '.join(project.block_ids)}")
    if name:
        wanted = f"{path}:{name}"
        if wanted not in ids:
            raise PatchError(f"{edit.where}: no block named {wanted}; the blocks are {', '.join(project.block_ids)}")
        return [wanted]
    return ids


def _matches(text_lines: list[str], search: list[str]) -> tuple[list[int], int]:
    """Where search matches text_lines, at the most exact tier that matches at all: (starts, tier)."""
    for tier, same in enumerate((lambda a, b: a == b, lambda a, b: a.rstrip() == b.rstrip())):
        starts = windows(text_lines, search, same)
        if starts:
            return starts, tier
    wanted = dedented(search)
    n = len(search)
    starts = [i for i in range(len(text_lines) - n + 1) if dedented(text_lines[i:i + n]) == wanted]
    return starts, 2


def _reindent(window: list[str], search: list[str], replace: list[str], style: str | None) -> list[str]:
    shift = min(columns(x) for x in window if x.strip()) - min(columns(x) for x in search if x.strip())
    unit = "\t" if style == "tabs" else " "
    step = 4 if unit == "\t" else 1
    return [(unit * (max(0, columns(x) + shift) // step) + x.lstrip(" \t")) if x.strip() else "" for x in replace]


def _locate(edit: _Edit, project: ProjectSource, blocks: dict[str, str], candidates: list[str]) -> _Located:
    assert edit.search is not None
    style = indent_style("".join(blocks.values()))
    search = [fix_indent(line, style) for line in edit.search]
    replace = [fix_indent(line, style) for line in edit.replace]
    found: list[tuple[int, str, int]] = []  # (tier, block, start)
    for block in candidates:
        text_lines = blocks[block].split("\n")[:-1]
        starts, tier = _matches(text_lines, search)
        found.extend((tier, block, s) for s in starts)
    if found:
        best = min(t for t, _, _ in found)
        hits = [(b, s) for t, b, s in found if t == best]
        if len(hits) > 1:
            at = ", ".join(f"{b} line {s + 1}" for b, s in hits)
            raise PatchError(f"{edit.where}: the SEARCH text occurs {len(hits)} times ({at}); name the block or "
                             "include more lines so that it matches exactly once")
        block, start = hits[0]
        text_lines = blocks[block].split("\n")[:-1]
        window = text_lines[start:start + len(search)]
        new = replace if best < 2 else _reindent(window, search, replace, style)
        return _Located(edit, block, start, start + len(search), new)
    fragment = _fragment(edit, blocks, candidates, search, replace)
    if fragment is not None:
        return fragment
    raise PatchError(_not_found(edit, project, blocks, candidates, search))


def _fragment(edit: _Edit, blocks: dict[str, str], candidates: list[str], search: list[str],
              replace: list[str]) -> _Located | None:
    """A part of a line (or lines), e.g. SEARCH `gap // 2`: an exact text match inside one block."""
    text = "\n".join(search)
    pattern = re.compile("(?=" + re.escape(text) + ")")
    hits: list[tuple[str, int]] = [(b, m.start()) for b in candidates for m in pattern.finditer(blocks[b])]
    if not hits:
        return None
    if len(hits) > 1:
        where = ", ".join(f"{b} line {blocks[b].count(chr(10), 0, h) + 1}" for b, h in hits)
        raise PatchError(f"{edit.where}: the SEARCH text occurs {len(hits)} times ({where}); include more of the line")
    block, at = hits[0][0], hits[0][1]
    body = blocks[block]
    first = body.count("\n", 0, at)
    last = body.count("\n", 0, at + len(text))
    lines = body.split("\n")[:-1]
    line_start = sum(len(x) + 1 for x in lines[:first])
    line_end = sum(len(x) + 1 for x in lines[:last + 1]) - 1
    merged = body[line_start:at] + "\n".join(replace) + body[at + len(text):line_end]
    return _Located(edit, block, first, last + 1, merged.split("\n"))


def _not_found(edit: _Edit, project: ProjectSource, blocks: dict[str, str], candidates: list[str],
               search: list[str]) -> str:
    """Why a SEARCH text matched no block: it is outside the blocks (refused), or it is nowhere."""
    files = sorted({b.split(":")[0] for b in candidates})
    assembled = project.assemble(program_text(blocks))
    for path in files:
        file_lines = [line.rstrip("\r") for line in assembled[path].split("\n")]
        starts, _ = _matches(file_lines, search)
        if starts or "\n".join(search) in assembled[path]:
            line = starts[0] + 1 if starts else assembled[path].count("\n", 0, assembled[path].index(
                "\n".join(search))) + 1
            return (f"{edit.where}: the SEARCH text is at {path} line {line}, outside the evolve blocks; edits "
                    f"outside the blocks are refused: only the code between `# EVOLVE-BLOCK-START` and "
                    f"`# EVOLVE-BLOCK-END` may change ({', '.join(candidates)})")
    pool = [line for b in candidates for line in blocks[b].split("\n")[:-1]]
    place = f"block {candidates[0]}" if len(candidates) == 1 else "the blocks"
    return (f"{edit.where}: the SEARCH text was not found in {place}; {closest(search, pool)}; copy the lines to "
            "replace exactly from the block")


def _rewrite(edit: _Edit, project: ProjectSource, block: str) -> _Located:
    """A whole block's new text, at the indentation of its START marker."""
    span = next(s for s in project.blocks if s.id == block)
    marker = source_lines(project.files[span.file])[span.start].rstrip("\r\n")
    indent = marker[: len(marker) - len(marker.lstrip(" \t"))]
    body = dedented(edit.replace)
    new = [(indent + line) if line.strip() else "" for line in body]
    return _Located(edit, block, 0, -1, new)


def apply_block_response(response: str, parent_code: str, project: ProjectSource) -> str:
    """Apply an answer's edits to the parent's blocks; the new program (blocks under their headers)."""
    try:
        blocks = project.blocks_of(parent_code)
    except Refused as exc:
        raise PatchError(f"the parent program is not a program of this project: {exc}") from None
    edits = parse_edits(response)
    if not edits:
        raise PatchError("no SEARCH/REPLACE edit and no `<<<<<<< BLOCK file.py:name` rewrite found in the answer; "
                         "edit the blocks between `# EVOLVE-BLOCK-START` and `# EVOLVE-BLOCK-END`")
    located: list[_Located] = []
    for edit in edits:
        candidates = _resolve(edit, project)
        if edit.search is None:
            if len(candidates) != 1:
                raise PatchError(f"{edit.where}: {edit.target} has several blocks "
                                 f"({', '.join(candidates)}); name one")
            located.append(_rewrite(edit, project, candidates[0]))
        else:
            located.append(_locate(edit, project, blocks, candidates))
    _refuse_overlaps(located, blocks)
    new_blocks = dict(blocks)
    for block in blocks:
        lines = blocks[block].split("\n")[:-1]
        for item in sorted((x for x in located if x.block == block), key=lambda x: x.start, reverse=True):
            end = len(lines) if item.end < 0 else item.end
            lines[item.start:end] = item.new
        new_blocks[block] = "".join(line + "\n" for line in lines)
    code = program_text(new_blocks)
    try:
        project.check(code, language=False)
    except Refused as exc:
        raise PatchError(f"the edited blocks are refused: {exc}") from None
    if code == program_text(blocks):
        raise PatchError("the edit changes nothing: the new blocks are the same as the parent's")
    if normalize_code(code) == normalize_code(program_text(blocks)):
        raise PatchError("the edit changes nothing: only comments, whitespace or docstrings differ from the parent")
    return code


def _refuse_overlaps(located: list[_Located], blocks: dict[str, str]) -> None:
    for i, a in enumerate(located):
        for b in located[i + 1:]:
            if a.block != b.block:
                continue
            a_end = len(blocks[a.block].split("\n")) - 1 if a.end < 0 else a.end
            b_end = len(blocks[b.block].split("\n")) - 1 if b.end < 0 else b.end
            if a.start < b_end and b.start < a_end or a.end < 0 or b.end < 0:
                raise PatchError(f"{a.edit.where} and {b.edit.where} overlap in block {a.block}; merge them into "
                                 "one edit")
