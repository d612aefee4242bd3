"""The prompt: problem description, previous versions ordered by score, and the two answer formats we accept.

The text is deterministic (same inputs, same prompt) so prompts can be compared, cached and replayed, and it
describes exactly what `engine.patching.apply_response` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from evoforge.engine.program.source import names_text
from evoforge.engine.propose import block_prompts
from evoforge.engine.propose.fencing import DATA_NOTE, code_block, run_output, shows_run_output
from evoforge.engine.propose.improvements import Improvement
from evoforge.evaluators.problem import escape_controls
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
    error = escape_controls(error.strip())  # before the cut: the escapes count against the bound
    if len(error) > ERROR_CHARS:
        error = "..." + error[-ERROR_CHARS:]
    return error


def _cut(text: str) -> str:
    text = escape_controls(text)
    return text if len(text) <= FEEDBACK_CHARS else text[:FEEDBACK_CHARS] + " [...]"


def _version_head(label: str, parent: ParentView) -> str:
    """A version's heading, scores and what its evaluation said (the candidate's text fenced as data), no code."""
    if parent.status == "ok":
        header = f"## {label} ({_score_text(parent.score)})"
    else:
        header = f"## {label} (failed: {parent.status})"
    parts = [header]
    if parent.status != "ok" and parent.error:
        parts.append("Error:\n" + run_output(_error_text(parent.error)))
    if parent.metrics:
        parts.append("Metrics: " + ", ".join(f"{name} {value:.6g}" for name, value in sorted(parent.metrics.items())))
    if parent.feedback and parent.feedback.strip():
        parts.append("Evaluator feedback:\n" + run_output(_cut(parent.feedback.strip())))
    if parent.critique and parent.critique.strip():
        parts.append("Reviewer's critique:\n" + run_output(_cut(parent.critique.strip())))
    return "\n".join(parts)


def _version(label: str, parent: ParentView) -> str:
    return _version_head(label, parent) + "\n" + code_block(parent.code.strip("\n"))


def _inspiration(label: str, program: ParentView) -> str:
    return f"### Inspiration {label} ({_score_text(program.score)})\n{code_block(program.code.strip(chr(10)))}"


def _failed_attempts(feedback: Sequence[str]) -> str:
    return "## Recent failed attempts\n" + run_output("\n".join(f"- {_error_text(item)}" for item in feedback))


def _messages(sections: list[str]) -> list[dict]:
    """The chat messages; a prompt that shows run output (fenced as data) has a system prompt that says so."""
    user = "\n\n".join(sections)
    system = f"{SYSTEM_PROMPT} {DATA_NOTE}" if shows_run_output(user) else SYSTEM_PROMPT
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _improvements(recent: Sequence[Improvement]) -> str:
    items = []
    for i, step in enumerate(recent, start=1):
        change = "\n".join(f"   {line}" for line in step.change) or "   (no line changed)"
        items.append(f"{i}. {step.before:.6g} -> {step.after:.6g} ({step.after - step.before:+.4g}):\n{change}")
    return ("## What recently improved the best scores\nThe last changes that beat their parent, oldest first, with "
            "the lines each one removed (-) and added (+):\n" + "\n".join(items))


def _context(description: str, inspirations: Sequence[ParentView], improvements: Sequence[Improvement],
             what: str) -> list[str]:
    """The sections every prompt opens with: the problem, then ideas from elsewhere and recent improvements."""
    sections = [description.strip()]
    if inspirations:
        sections.append(f"## Inspirations\nHigh-scoring {what} from elsewhere in the search; borrow their ideas.\n\n"
                        + "\n\n".join(_inspiration(chr(ord("A") + i), p) for i, p in enumerate(inspirations)))
    if improvements:
        sections.append(_improvements(improvements))
    return sections


CROSSOVER_INTRO = ("Below are two versions of {names} from different parts of the search, which behave differently: "
                   "Parent A and Parent B.")
CROSSOVER_TASK = ("Combine what each parent does well into one version of {names} that scores better than both "
                  "({better} scores are better): start from Parent A and bring in the ideas of Parent B that help.")


def build_messages(description: str, evolved_names: Sequence[str], parents: Sequence[ParentView], *,
                   instructions: str | None = None, feedback: Sequence[str] = (),
                   full_rewrite: bool = False, maximize: bool = True,
                   inspirations: Sequence[ParentView] = (), project: ProjectSource | None = None,
                   mate: ParentView | None = None, improvements: Sequence[Improvement] = ()) -> list[dict]:
    """Chat messages (system, user) asking for an improvement of the last, best parent; parents go worst to best.

    `feedback` lists why recent attempts from these parents failed, so the model does not repeat them;
    `full_rewrite` asks for whole functions only, for models that cannot write exact diffs; `maximize` says
    which way scores improve; `inspirations` are high scorers from elsewhere in the search, shown before the
    versions as ideas to borrow (the answer still edits the best version); `improvements` are the search's recent
    improvements (--meta-summary). With a `mate`, the prompt is a crossover: the last parent (Parent A, which the
    answer edits) and the mate (Parent B) are shown alone, with the task to combine them. With a `project`, the
    program is its marked blocks: the version edited is shown as whole files (see `block_prompts`).
    """
    if not parents:
        raise ValueError("build_messages needs at least one parent: the prompt asks to improve the best of them")
    if mate is not None:
        parents = [parents[-1]]
    if project is not None:
        return _block_messages(description, project, parents, instructions=instructions, feedback=feedback,
                               full_rewrite=full_rewrite, maximize=maximize, inspirations=inspirations, mate=mate,
                               improvements=improvements)
    if not evolved_names:
        raise ValueError("build_messages needs the names of the evolved function(s)")
    names = names_text(evolved_names)
    best = "Parent A" if mate is not None else f"Version {len(parents) - 1}"
    plural = len(evolved_names) > 1
    better = "higher" if maximize else "lower"
    if mate is not None:
        intro = CROSSOVER_INTRO.format(names=names)
        shown = [_version("Parent A", parents[0]), _version("Parent B", mate)]
        goal = CROSSOVER_TASK.format(names=names, better=better)
    else:
        intro = (f"Below are previous versions of {names}, ordered from worst to best; "
                 f"{best} is the best." if len(parents) > 1 else f"Below is the current version of {names}.")
        shown = [_version(f"Version {i}", p) for i, p in enumerate(parents)]
        goal = f"Write an improved version of {names} that scores better than {best} ({better} scores are better)."
    rules = [
        "## Task",
        f"{goal} Only {names} may change: no imports or other top-level code (the problem's imports, such as np, "
        "stay available; define helpers inside the function).",
    ]
    if full_rewrite:
        rules.append(f"Answer with the complete new {'functions' if plural else 'function'} in one ```python block.")
        task = "\n".join(rules)
    else:
        task = _two_formats(rules, best, plural)
    sections = _context(description, inspirations, improvements, "programs")
    sections += [intro, *shown]
    if feedback:
        sections.append(_failed_attempts(feedback))
    sections.append(task)
    if instructions and instructions.strip():
        sections.append("## Further instructions\n" + instructions.strip())
    return _messages(sections)


def _block_messages(description: str, project: ProjectSource, parents: Sequence[ParentView], *,
                    instructions: str | None, feedback: Sequence[str], full_rewrite: bool, maximize: bool,
                    inspirations: Sequence[ParentView], mate: ParentView | None,
                    improvements: Sequence[Improvement]) -> list[dict]:
    best = "Parent A" if mate is not None else f"Version {len(parents) - 1}"
    sections = _context(description, inspirations, improvements, "versions of the blocks")
    if mate is not None:
        sections += [block_prompts.crossover_intro(project), _version("Parent B", mate)]
    else:
        sections.append(block_prompts.intro(project, len(parents)))
        sections += [_version(f"Version {i}", p) for i, p in enumerate(parents[:-1])]
    sections.append(_version_head(best, parents[-1]) + "\n\n" + block_prompts.best_files(project, parents[-1].code,
                                                                                          best))
    if feedback:
        sections.append(_failed_attempts(feedback))
    sections.append(block_prompts.task(project, best, maximize=maximize, full_rewrite=full_rewrite,
                                       crossover=mate is not None))
    if instructions and instructions.strip():
        sections.append("## Further instructions\n" + instructions.strip())
    return _messages(sections)


def _two_formats(rules: list[str], best: str, plural: bool) -> str:
    return "\n".join([
        *rules,
        "Answer in one of two formats:",
        f"1. One or more SEARCH/REPLACE blocks that edit {best}; each SEARCH section must copy lines "
        f"of {best} exactly, indentation included:",
        "<<<<<<< SEARCH",
        f"(exact lines from {best})",
        "=======",
        "(the new lines)",
        ">>>>>>> REPLACE",
        f"2. The complete new {'functions' if plural else 'function'} in one ```python block.",
    ])
