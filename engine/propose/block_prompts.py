"""The prompt for a project's problem: the whole files of the best version with its blocks marked and named, the
other versions as their blocks, and the answer formats `engine.program.blocks` accepts.

Deterministic like `prompts.build_messages`, which calls it when the problem evolves a project's blocks.
"""

from __future__ import annotations

import re

from evoforge.engine.propose.fencing import code_block
from evoforge.evaluators.project import START, ProjectSource
from evoforge.evaluators.validator import RULES_HINT, Refused

_START_LINE = re.compile(r"^([ \t]*)#[ \t]*EVOLVE-BLOCK-START\b.*$")


def _marked_files(project: ProjectSource, code: str) -> list[tuple[str, str]]:
    """Each file that has blocks, with the program's blocks in place and each START marker naming its block."""
    try:
        files = project.assemble(code)
    except Refused:
        files = project.files
    out = []
    for path in sorted({b.file for b in project.blocks}):
        names = iter(b.id for b in project.blocks if b.file == path)
        lines = []
        for line in files[path].splitlines():
            match = _START_LINE.match(line)
            lines.append(f"{match.group(1)}# {START} {next(names)}" if match else line)
        out.append((path, "\n".join(lines)))
    return out


def best_files(project: ProjectSource, code: str, label: str) -> str:
    """The version the answer edits (its program `code`, labelled "Version 3" or "Parent A") as whole files."""
    parts = [f"### {path} ({label})\n{code_block(text)}" for path, text in _marked_files(project, code)]
    others = sorted(p for p in project.files if p not in {b.file for b in project.blocks})
    if others:
        parts.append("The project's other files, which have no blocks: " + ", ".join(others) + ".")
    return "\n\n".join(parts)


def _head(project: ProjectSource) -> str:
    files = ", ".join(sorted({b.file for b in project.blocks}))
    return (f"The program is the marked blocks of the project's files ({files}): the code between "
            f"`# {START} <block>` and `# EVOLVE-BLOCK-END`. The blocks are {', '.join(project.block_ids)}.")


def crossover_intro(project: ProjectSource) -> str:
    return (f"{_head(project)} Below are two versions of the blocks from different parts of the search, which behave "
            "differently: Parent B, each block under its `# EVOLVE-BLOCK file.py:name` header, then Parent A, shown "
            "as whole files.")


def intro(project: ProjectSource, versions: int) -> str:
    best = versions - 1
    head = _head(project)
    if versions > 1:
        return (f"{head} Below are previous versions of the blocks, ordered from worst to best, each block under "
                f"its `# EVOLVE-BLOCK file.py:name` header; Version {best} is the best and is shown as whole files "
                "at the end.")
    return f"{head} Below is the current version, shown as whole files."


def task(project: ProjectSource, best: str, *, maximize: bool, full_rewrite: bool, crossover: bool = False) -> str:
    """The task and the answer formats; `best` names the version the answer edits ("Version 3", "Parent A")."""
    example = project.block_ids[0]
    better = "higher" if maximize else "lower"
    goal = (f"Combine what each parent does well into blocks that score better than both ({better} scores are "
            "better): start from Parent A and bring in the ideas of Parent B that help." if crossover else
            f"Improve the blocks so that the project scores better than {best} ({better} scores are better).")
    rules = [
        "## Task",
        f"{goal} Only the code inside the blocks may change; "
        "everything outside them stays byte for byte, and a block may not rebind a name the code outside the "
        "blocks defines, nor a builtin. Keep each block whole statements at its marker's indentation. In the blocks, "
        f"{RULES_HINT}.",
    ]
    rewrite = [f"<<<<<<< BLOCK {example}", "(every line of the block's new text)", ">>>>>>> BLOCK"]
    if full_rewrite:
        return "\n".join([*rules, "Answer with the whole new text of each block you change, in this form:",
                          *rewrite])
    return "\n".join([
        *rules,
        "Answer in either or both of two forms; one answer may change several blocks of several files, and its "
        "edits must not overlap:",
        f"1. SEARCH/REPLACE edits, each with the block it edits on the line before it; the SEARCH section copies "
        f"lines of that block of {best} exactly, indentation included:",
        example,
        "<<<<<<< SEARCH",
        f"(exact lines from the block in {best})",
        "=======",
        "(the new lines)",
        ">>>>>>> REPLACE",
        "2. A whole block's new text:",
        *rewrite,
    ])
