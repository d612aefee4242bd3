"""Answers the engine already has: a cache for identical deterministic requests, and the replay of a recorded run.

A request is identified by its model, its messages and how many answers it asks for. What it got back is the tuple
of its answers (one, or up to `--answers`, recorded as one proposal each and gathered back here by their index,
see shares.py). Replay serves, for the i-th occurrence of a request, the answers the recorded run got to its i-th
occurrence, so a run made at temperature > 0 replays exactly too.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from evoforge.db import ProposalInfo
from evoforge.engine.propose.shares import ANSWER


def request_key(model: str, messages: list[dict[str, Any]], answers: int = 1) -> str:
    """A stable digest of one request (a one-answer request's key is what it always was)."""
    request: list[Any] = [model, messages] if answers == 1 else [model, messages, answers]
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class StoredAnswer:
    """An answer as recorded: the text and the tokens it was charged when it was paid for."""

    text: str
    prompt_tokens: int
    completion_tokens: int


Answers = tuple[StoredAnswer, ...]
"""The answers one request got, in the provider's order."""


def _answered(proposals: Iterable[ProposalInfo]) -> Iterable[tuple[str, Answers]]:
    """Each recorded request's key and answers, in the order the requests were first answered.

    The answers of one request are recorded as they are evaluated, possibly between those of other requests; each
    goes to the earliest gathering of its key that still lacks its index."""
    calls: list[tuple[str, dict[int, StoredAnswer]]] = []
    unfinished: dict[str, list[int]] = defaultdict(list)  # key -> calls still missing answers
    for p in proposals:
        if p.model == "offline" or p.response is None or p.details.get("llm_error"):
            continue
        index, got = int(p.details.get(ANSWER, 0)), int(p.details.get("answers", 1))
        key = request_key(p.model, json.loads(p.prompt), int(p.details.get("asked", 1)))
        call = next((c for c in unfinished[key] if index not in calls[c][1]), None)
        if call is None:
            call = len(calls)
            calls.append((key, {}))
            unfinished[key].append(call)
        calls[call][1][index] = StoredAnswer(p.response, p.prompt_tokens, p.completion_tokens)
        if len(calls[call][1]) >= got:
            unfinished[key].remove(call)
    for key, answers in calls:  # a run stopped between a call's answers left it with those it recorded
        yield key, tuple(answers[i] for i in sorted(answers))


class ResponseCache:
    """Answers to deterministic (temperature 0) requests within a run: an identical request is paid once."""

    def __init__(self, proposals: Iterable[ProposalInfo] = ()) -> None:
        self._answers: dict[str, Answers] = {}
        for key, answers in _answered(proposals):
            self._answers.setdefault(key, answers)

    def get(self, key: str) -> Answers | None:
        return self._answers.get(key)

    def put(self, key: str, answers: Answers) -> None:
        self._answers.setdefault(key, answers)


class ReplaySource:
    """The answers a recorded run got, served to identical requests in the order they were first given."""

    def __init__(self, run_name: str, proposals: Iterable[ProposalInfo]) -> None:
        self.run_name = run_name
        self._queues: dict[str, deque[Answers]] = defaultdict(deque)
        for key, answers in _answered(proposals):
            self._queues[key].append(answers)

    def take(self, key: str) -> Answers | None:
        """The next recorded answers to this request, or None when the recorded run never sent it (that often)."""
        queue = self._queues.get(key)
        return queue.popleft() if queue else None
