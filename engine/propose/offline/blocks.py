"""Offline mutations of a project's marked blocks, written as the SEARCH/REPLACE edit an LLM would give.

A block is a run of statements at some indentation (a function's body, a module's settings), not a function, so
each try lifts one block into a function of its own (`def evolve_block():` around its dedented lines), lets
`AstMutator` change it exactly as it changes an evolved function (constants, operators, statements, crossover with
the same block of another parent), and puts the result back at the block's indentation. The answer names the
block and edits only the lines that changed; it is checked with `apply_block_response`, the parser every answer
goes through, before it is returned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evoforge.engine.program.blocks import apply_block_response
from evoforge.engine.program.source import PatchError, normalize_code
from evoforge.engine.propose.offline.locate import common_ends
from evoforge.engine.propose.offline.proposer import AstMutator, NoMutationFound, OfflineProposal
from evoforge.evaluators.project import ProjectSource, program_text
from evoforge.evaluators.validator import Refused

WRAPPER = "evolve_block"
_HEAD = f"def {WRAPPER}():\n"
_STEP = "    "


def _indent(text: str) -> str | None:
    """The indentation every line of the block starts with (its statements' column), or None if it has none."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return None
    first = lines[0][: len(lines[0]) - len(lines[0].lstrip(" \t"))]
    return first if all(line.startswith(first) for line in lines) else None


def wrap(text: str, indent: str) -> str:
    """The block as the body of a function of its own."""
    body = "".join((_STEP + line[len(indent):] if line.strip() else "") + "\n" for line in text.split("\n")[:-1])
    return _HEAD + body


def unwrap(code: str, indent: str) -> str:
    """The block's text back from its function, at its own indentation."""
    lines = code.rstrip("\n").split("\n")[1:]
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
        else:
            out.append(indent + (line[len(_STEP):] if line.startswith(_STEP) else line.lstrip(" ")))
    return "".join(line + "\n" for line in out)


def search_replace(block: str, old: str, new: str) -> str:
    """The smallest SEARCH/REPLACE edit of `block` that turns old into new, its SEARCH unique in the block."""
    a, b = old.split("\n")[:-1], new.split("\n")[:-1]
    head, tail = common_ends(a, b)
    start, end_a, end_b = head, len(a) - tail, len(b) - tail
    while True:
        search = a[start:end_a]
        hits = sum(1 for i in range(len(a) - len(search) + 1) if a[i:i + len(search)] == search) if search else 0
        if search and any(line.strip() for line in search) and hits == 1:
            break
        if start > 0:
            start -= 1
        elif end_a < len(a):
            end_a += 1
            end_b += 1
        else:
            break
    return (f"{block}\n<<<<<<< SEARCH\n" + "".join(x + "\n" for x in a[start:end_a]) + "=======\n"
            + "".join(x + "\n" for x in b[start:end_b]) + ">>>>>>> REPLACE\n")


class BlockMutator:
    """Proposes a mutation of one block of the best parent; deterministic for a given rng state."""

    def __init__(self, project: ProjectSource, *, max_tries: int = 50) -> None:
        self.project = project
        # one per file: a mutation may use only what the block's module has (np only where it imports numpy)
        self.inner = {path: AstMutator(max_tries=max_tries, global_names=project.module_names(path))
                      for path in {b.file for b in project.blocks}}

    def observe_nudge(self, improved: bool) -> None:
        for mutator in self.inner.values():
            mutator.observe_nudge(improved)

    def propose_detailed(self, parents: Sequence[str], evolved_names: Sequence[str],
                         rng: np.random.Generator, *, crossover: bool = False) -> OfflineProposal:
        """A SEARCH/REPLACE answer that changes one block of the last (best) parent (`evolved_names` is unused:
        the blocks are the program); `crossover` as for AstMutator."""
        if not parents:
            raise ValueError("propose needs at least one parent program")
        try:
            programs = [self.project.blocks_of(p) for p in parents]
        except Refused as exc:
            raise NoMutationFound(f"a parent is not a program of this project: {exc}") from None
        best = programs[-1]
        known = {normalize_code(program_text(p)) for p in programs}
        indents = {b: _indent(text) for b, text in best.items()}
        mutable = [b for b, indent in indents.items() if indent is not None]
        if not mutable:
            raise NoMutationFound("every block is empty")
        misses = []
        for index in rng.permutation(len(mutable)):
            block = mutable[int(index)]
            indent = indents[block]
            assert indent is not None
            wrapped = [wrap(p[block], indent) for p in programs if _indent(p[block]) == indent]
            try:
                made = self.inner[block.partition(":")[0]].propose_detailed(wrapped, [WRAPPER], rng,
                                                                            crossover=crossover)
            except NoMutationFound as exc:
                misses.append(f"{block}: {exc}")
                continue
            except (PatchError, SyntaxError) as exc:
                misses.append(f"{block}: does not parse on its own ({exc})")
                continue
            new_text = unwrap(made.code, indent)
            expected = program_text({**best, block: new_text})
            response = f"Offline mutation ({made.kind}) of block {block}.\n\n" + search_replace(
                block, best[block], new_text)
            code = _applied(response, parents[-1], self.project)
            if code is None or normalize_code(code) != normalize_code(expected):
                response = f"Offline mutation ({made.kind}) of block {block}.\n\n<<<<<<< BLOCK {block}\n" \
                           f"{new_text}>>>>>>> BLOCK\n"
                code = _applied(response, parents[-1], self.project)
            if code is None or normalize_code(code) in known:
                misses.append(f"{block}: the {made.kind} mutation gave no new program")
                continue
            return OfflineProposal(kind=made.kind, response=response, code=code)
        raise NoMutationFound("; ".join(misses)[:1000])


def _applied(response: str, parent: str, project: ProjectSource) -> str | None:
    try:
        return apply_block_response(response, parent, project)
    except PatchError:
        return None
