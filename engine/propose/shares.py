"""Several answers to one prompt: how they are marked, and how the one call's tokens and cost are shared among them.

With `--answers N` one request asks for N choices (litellm's `n`), so the prompt is paid once for N candidates.
Each answer is recorded as a proposal of its own, and the call's totals are split so that the proposals add up to
exactly what the call cost, while each one's share stays comparable with a one-answer proposal's:

- prompt tokens: evenly, the remainder to the first answers (the prompt was paid once, for all of them);
- completion tokens: in proportion to each answer's length in characters (the provider reports only the total),
  by largest remainder so the shares sum to the total;
- cost: in proportion to the tokens each answer was given.

Only the first answer carries the call's attempts; the others have none, so a call with N choices counts once
wherever calls are counted (`show`, --max-calls), and their tokens and cost still count in full.

Each such proposal's details say which answer it was (`answer`, from 0), how many the call gave (`answers`) and
how many were asked (`asked`), which is how the cache and a replay gather a call's answers back together and how a
resume counts the prompts made. A proposal from a one-answer prompt carries none of these keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANSWER = "answer"  # the key of an answer's index among its call's answers (also read by Store.prompts)


def answer_details(index: int, got: int, asked: int) -> dict[str, Any]:
    """The details that mark the `index`-th of `got` answers to a prompt that asked for `asked` ({} for one)."""
    return {} if asked == 1 else {ANSWER: index, "answers": got, "asked": asked}


@dataclass(frozen=True)
class Share:
    """One answer's part of its call."""

    prompt_tokens: int
    completion_tokens: int
    cost: float


def split_call(texts: list[str], prompt_tokens: int, completion_tokens: int, cost: float) -> list[Share]:
    """The shares of a call's tokens and cost for its answers `texts` (see the module's docstring); they sum to the
    call's totals."""
    count = len(texts)
    prompts = _even(prompt_tokens, count)
    lengths = [len(t) for t in texts]
    completions = _proportional(completion_tokens, lengths) if sum(lengths) else _even(completion_tokens, count)
    tokens = [p + c for p, c in zip(prompts, completions)]
    total = sum(tokens)
    costs = [cost * t / total for t in tokens] if total else [cost / count] * count
    return [Share(p, c, k) for p, c, k in zip(prompts, completions, costs)]


def _even(total: int, count: int) -> list[int]:
    base, extra = divmod(total, count)
    return [base + (i < extra) for i in range(count)]


def _proportional(total: int, weights: list[int]) -> list[int]:
    """`total` split by `weights` in whole units: floors first, then the largest remainders (earlier on a tie)."""
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts
