"""The prompt: problem description, previous versions ordered by score, and the two answer formats we accept.

The text is deterministic (same inputs, same prompt) so prompts can be compared, cached and replayed, and it
describes exactly what `engine.patching.apply_response` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from evoforge.engine.program.source import names_text
from evoforge.engine.propose import block_prompts
from evoforge.evaluators.project import ProjectSource

__all__ = ["ERROR_CHARS", "FEEDBACK_CHARS", "SYSTEM_PROMPT", "ParentView", "build_messages"]

ERROR_CHARS = 400  # a failed parent's error is cut to its last this-many characters (the end of a traceback)
FEEDBACK_CHARS = 800  # of a parent's evaluator feedback, its first this-many characters go into the prompt

SYSTEM_PROMPT = ("You are an expert Python programmer taking part in an evolutionary search for better programs. "
                 "A trusted evaluator runs and scores every version you write; better-scoring versions survive.")


@dataclass(frozen=True)
class ParentView:
    """What the prompt shows of one parent program."""

    code: str
    score: float | None  # None when the evaluation failed or has no score
    status: str  # "ok", or why the evaluation failed: invalid, error, timeout, memory, crashed
    error: str | None = None  # the failure's message, shown (truncated) for a failed parent
    metrics: Mapping[str, float] = field(default_factory=dict)  # its named metrics, when the problem has several
    feedback: str | None = None  # what the trusted score() said about its outputs, shown (truncated)
    critique: str | None = None  # what the reviewer model (--judge-model) said about it, shown (truncated)


def _score_text(score: float | None) -> str:
    return "no score" if score is None else f"score {score:.6g}"


def _error_text(error: str) -> str:
    error = error.strip()
    if len(error) > ERROR_CHARS:
        error = "..." + error[-ERROR_CHARS:]
    return error


def _cut(text: str) -> str:
    return text if len(text) <= FEEDBACK_CHARS else text[:FEEDBACK_CHARS] + " [...]"


def _version(index: int, parent: ParentView) -> str:
    if parent.status == "ok":
        header = f"## Version {index} ({_score_text(parent.score)})"
    else:
        header = f"## Version {index} (failed: {parent.status})"
    parts = [header]
    if parent.status != "ok" and parent.error:
        parts.append(f"Error: {_error_text(parent.error)}")
    if parent.metrics:
        parts.append("Metrics: " + ", ".join(f"{name} {value:.6g}" for name, value in sorted(parent.metrics.items())))
    if parent.feedback and parent.feedback.strip():
        text = _cut(parent.feedback.strip())
        parts.append(f"Evaluator feedback:\n{text}")
    if parent.critique and parent.critique.strip():
        parts.append(f"Reviewer's critique:\n{_cut(parent.critique.strip())}")
    parts.append("```python\n" + parent.code.strip("\n") + "\n```")
    return "\n".join(parts)


def _inspiration(label: str, program: ParentView) -> str:
    return f"### Inspiration {label} ({_score_text(program.score)})\n```python\n{program.code.strip(chr(10))}\n```"


def build_messages(description: str, evolved_names: Sequence[str], parents: Sequence[ParentView], *,
                   instructions: str | None = None, feedback: Sequence[str] = (),
                   full_rewrite: bool = False, maximize: bool = True,
                   inspirations: Sequence[ParentView] = (), project: ProjectSource | None = None) -> list[dict]:
    """Chat messages (system, user) asking for an improvement of the last, best parent; parents go worst to best.

    `feedback` lists why recent attempts from these parents failed, so the model does not repeat them;
    `full_rewrite` asks for whole functions only, for models that cannot write exact diffs; `maximize` says
    which way scores improve; `inspirations` are high scorers from elsewhere in the search, shown before the
    versions as ideas to borrow (the answer still edits the best version). With a `project`, the program is its
    marked blocks: the best version is shown as whole files (see `block_prompts`).
    """
    if not parents:
        raise ValueError("build_messages needs at least one parent: the prompt asks to improve the best of them")
    if project is not None:
        return _block_messages(description, project, parents, instructions=instructions, feedback=feedback,
                               full_rewrite=full_rewrite, maximize=maximize, inspirations=inspirations)
    if not evolved_names:
        raise ValueError("build_messages needs the names of the evolved function(s)")
    names = names_text(evolved_names)
    best = len(parents) - 1
    plural = len(evolved_names) > 1
    intro = (f"Below are previous versions of {names}, ordered from worst to best; "
             f"Version {best} is the best." if len(parents) > 1 else f"Below is the current version of {names}.")
    rules = [
        "## Task",
        f"Write an improved version of {names} that scores better than Version {best} "
        f"({'higher' if maximize else 'lower'} scores are better). "
        f"Only {names} may change: no imports or other top-level code (the problem's imports, such as np, "
        "stay available; define helpers inside the function).",
    ]
    if full_rewrite:
        rules.append(f"Answer with the complete new {'functions' if plural else 'function'} in one ```python block.")
        task = "\n".join(rules)
    else:
        task = _two_formats(rules, best, plural)
    sections = [description.strip()]
    if inspirations:
        sections.append("## Inspirations\nHigh-scoring programs from elsewhere in the search; borrow their ideas.\n\n"
                        + "\n\n".join(_inspiration(chr(ord("A") + i), p) for i, p in enumerate(inspirations)))
    sections += [intro, *(_version(i, p) for i, p in enumerate(parents))]
    if feedback:
        sections.append("## Recent failed attempts\n" + "\n".join(f"- {_error_text(item)}" for item in feedback))
    sections.append(task)
    if instructions and instructions.strip():
        sections.append("## Further instructions\n" + instructions.strip())
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(sections)}]


def _block_messages(description: str, project: ProjectSource, parents: Sequence[ParentView], *,
                    instructions: str | None, feedback: Sequence[str], full_rewrite: bool, maximize: bool,
                    inspirations: Sequence[ParentView]) -> list[dict]:
    best = len(parents) - 1
    sections = [description.strip()]
    if inspirations:
        sections.append("## Inspirations\nHigh-scoring versions of the blocks from elsewhere in the search; borrow "
                        "their ideas.\n\n"
                        + "\n\n".join(_inspiration(chr(ord("A") + i), p) for i, p in enumerate(inspirations)))
    sections.append(block_prompts.intro(project, len(parents)))
    sections += [_version(i, p) for i, p in enumerate(parents[:-1])]
    last = _version(best, parents[-1])
    sections.append(last[: last.index("```python")] + "\n" + block_prompts.best_files(project, parents[-1].code, best))
    if feedback:
        sections.append("## Recent failed attempts\n" + "\n".join(f"- {_error_text(item)}" for item in feedback))
    sections.append(block_prompts.task(project, best, maximize=maximize, full_rewrite=full_rewrite))
    if instructions and instructions.strip():
        sections.append("## Further instructions\n" + instructions.strip())
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(sections)}]


def _two_formats(rules: list[str], best: int, plural: bool) -> str:
    return "\n".join([
        *rules,
        "Answer in one of two formats:",
        f"1. One or more SEARCH/REPLACE blocks that edit Version {best}; each SEARCH section must copy lines "
        f"of Version {best} exactly, indentation included:",
        "<<<<<<< SEARCH",
        f"(exact lines from Version {best})",
        "=======",
        "(the new lines)",
        ">>>>>>> REPLACE",
        f"2. The complete new {'functions' if plural else 'function'} in one ```python block.",
    ])
