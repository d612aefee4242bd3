"""Proposers turn parent programs into a response text (SEARCH/REPLACE blocks or whole functions).

Both the offline mutator and the LLMs answer in the same text format, so every proposal goes through the same
parser, dedupe and evaluation. A proposer never raises for a provider fault: it returns a Proposal with `error`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.config import ModelConfig
from engine.offline import NoMutationFound, OfflineProposer
from engine.prompts import ParentView, build_messages


@dataclass(frozen=True)
class Proposal:
    """One answer to one prompt, with what it cost."""

    model: str
    prompt: str
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    error: str | None = None


class Proposer(Protocol):
    """Anything that proposes a new program from parents ordered worst to best."""

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator) -> Proposal: ...


class OfflineMutationProposer:
    """Program mutations with no LLM: keeps the loop working with no network and no key."""

    def __init__(self, evolved_names: Sequence[str]) -> None:
        self._names = tuple(evolved_names)
        self._mutator = OfflineProposer()

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator) -> Proposal:
        start = time.perf_counter()
        try:
            text = self._mutator.propose([p.code for p in parents], self._names, rng)
        except NoMutationFound as exc:
            return Proposal(model="offline", prompt="[]", text="", latency_s=time.perf_counter() - start,
                            error=f"no mutation found: {exc}")
        return Proposal(model="offline", prompt="[]", text=text, latency_s=time.perf_counter() - start)


class LiteLLMProposer:
    """Prompts a cheap or a strong model through litellm with the parents and the problem description."""

    def __init__(self, description: str, evolved_names: Sequence[str], models: ModelConfig) -> None:
        from engine.llm import LLMProposer, ModelSpec  # imported here: a search with no LLM never loads litellm

        self._description = description
        self._names = tuple(evolved_names)

        def spec(name: str) -> ModelSpec:
            return ModelSpec(name=name, weight=1.0, api_base=models.api_base, temperature=models.temperature,
                             max_tokens=models.max_tokens, timeout_s=models.timeout_s)

        assert models.model is not None
        strong = [spec(models.strong_model)] if models.strong_model else []
        self._llm = LLMProposer([spec(models.model)], strong=strong, strong_prob=models.strong_prob)

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator) -> Proposal:
        messages = build_messages(self._description, self._names, parents)
        result = await self._llm.propose(messages, rng)
        return Proposal(model=result.model, prompt=json.dumps(messages), text=result.text,
                        prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                        cost=result.cost, latency_s=result.latency_s, error=result.error)


def make_proposer(models: ModelConfig, description: str, evolved_names: Sequence[str]) -> Proposer:
    """The offline mutator when no model is configured, else the litellm proposer."""
    if models.offline:
        return OfflineMutationProposer(evolved_names)
    return LiteLLMProposer(description, evolved_names, models)
