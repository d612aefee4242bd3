"""Answers the engine already has: a cache for identical deterministic requests, and the replay of a recorded run.

A request is identified by its model and messages. Replay serves, for the i-th occurrence of a request, the i-th
answer the recorded run got to it, so a run made at temperature > 0 replays exactly too.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from evoforge.db import ProposalInfo


def request_key(model: str, messages: list[dict[str, Any]]) -> str:
    """A stable digest of one request."""
    return hashlib.sha256(json.dumps([model, messages], sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class StoredAnswer:
    """An answer as recorded: the text and the tokens it cost when it was paid for."""

    text: str
    prompt_tokens: int
    completion_tokens: int


def _answered(proposals: Iterable[ProposalInfo]) -> Iterable[tuple[str, StoredAnswer]]:
    for p in proposals:
        if p.model == "offline" or p.response is None or p.details.get("llm_error"):
            continue
        key = request_key(p.model, json.loads(p.prompt))
        yield key, StoredAnswer(p.response, p.prompt_tokens, p.completion_tokens)


class ResponseCache:
    """Answers to deterministic (temperature 0) requests within a run: an identical request is paid once."""

    def __init__(self, proposals: Iterable[ProposalInfo] = ()) -> None:
        self._answers: dict[str, StoredAnswer] = {}
        for key, answer in _answered(proposals):
            self._answers.setdefault(key, answer)

    def get(self, key: str) -> StoredAnswer | None:
        return self._answers.get(key)

    def put(self, key: str, answer: StoredAnswer) -> None:
        self._answers.setdefault(key, answer)


class ReplaySource:
    """The answers a recorded run got, served to identical requests in the order they were first given."""

    def __init__(self, run_name: str, proposals: Iterable[ProposalInfo]) -> None:
        self.run_name = run_name
        self._queues: dict[str, deque[StoredAnswer]] = defaultdict(deque)
        for key, answer in _answered(proposals):
            self._queues[key].append(answer)

    def take(self, key: str) -> StoredAnswer | None:
        """The next recorded answer to this request, or None when the recorded run never sent it (that often)."""
        queue = self._queues.get(key)
        return queue.popleft() if queue else None
