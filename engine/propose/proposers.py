"""Proposers turn parent programs into a response text (SEARCH/REPLACE blocks or whole functions).

Both the offline mutator and the LLMs answer in the same text format, so every proposal goes through the same
parser, dedupe and evaluation. A proposer never raises for a provider fault: it returns a Proposal with `error`.
Asked for several answers to one prompt (`--answers`), it returns one Proposal per answer it got (never more than
asked, possibly fewer; see shares.py for how a call's cost is split). After evaluation the controller tells the
proposer how each child did (`observe`), which is how model choice and instructions learn.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from evoforge.engine.program.patching import apply_response
from evoforge.engine.propose.improvements import Improvement
from evoforge.engine.propose.instructions import Instruction, InstructionPool
from evoforge.engine.propose.memory import Answers, ReplaySource, ResponseCache, StoredAnswer, request_key
from evoforge.engine.propose.offline import AstMutator, BlockMutator, NoMutationFound, OfflineProposal
from evoforge.engine.propose.offline.walk import LEVEL
from evoforge.engine.propose.prompts import ParentView, build_messages
from evoforge.engine.propose.shares import answer_details, split_call
from evoforge.engine.run.config import ModelConfig
from evoforge.evaluators.project import ProjectSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Proposal:
    """One answer to one prompt, with what it cost and how it was made."""

    model: str
    prompt: str
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    attempts: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_call(self) -> bool:
        """Whether a model was actually called for it (not offline, not a cache or replay hit)."""
        return self.model != "offline" and "cache" not in self.details and "replay" not in self.details


class Proposer(Protocol):
    """Anything that proposes a new program from parents ordered worst to best."""

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator, *,
                      feedback: Sequence[str] = (), inspirations: Sequence[ParentView] = (),
                      mate: ParentView | None = None, improvements: Sequence[Improvement] = (),
                      answers: int = 1) -> list[Proposal]:
        """Up to `answers` new programs from one prompt about `parents` (worst to best), at least one (a failure
        is one Proposal with `error`); `inspirations`: high scorers from elsewhere, shown beside them; `mate`: a
        crossover's second parent, to combine with the last parent; `improvements`: the search's recent
        improvements. The controller passes these three only when the run uses them (--inspirations,
        --crossover, --meta-summary), so a proposer that takes none of them still works."""
        ...

    def observe(self, proposal: Proposal, improved: bool, rng: np.random.Generator) -> None: ...

    def stop_reason(self) -> str | None:
        """Why no proposal can ever succeed (every model refuses the key, say), so the run should stop; or None."""
        ...


class OfflineProposer:
    """Program mutations with no LLM: keeps the loop working with no network and no key."""

    HOPELESS_AFTER = 10  # proposals in a row that found no mutation, with none found ever, before the run stops

    def __init__(self, evolved_names: Sequence[str], global_names: Collection[str] | None = None,
                 project: ProjectSource | None = None, maximize: bool = True) -> None:
        self._names = tuple(evolved_names)
        self._mutator: AstMutator | BlockMutator = (AstMutator(global_names=global_names, maximize=maximize)
                                                    if project is None
                                                    else BlockMutator(project))
        self._made_any = False
        self._misses_in_a_row = 0
        self._last_miss = ""

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator, *,
                      feedback: Sequence[str] = (), inspirations: Sequence[ParentView] = (),
                      mate: ParentView | None = None, improvements: Sequence[Improvement] = (),
                      answers: int = 1) -> list[Proposal]:
        """`answers` mutations of the last parent, one after another from `rng`; the first that finds none ends
        the list (and is the list's one failed proposal when no mutation came before it). `improvements` go unread
        (there is no model to read them: the config refuses --meta-summary without one)."""
        made: list[Proposal] = []
        while len(made) < answers:
            start = time.perf_counter()
            try:
                mutation = self._mutate(parents, inspirations, mate, rng)
            except NoMutationFound as exc:
                self._misses_in_a_row += 1
                self._last_miss = str(exc)
                if made:
                    break
                return [Proposal(model="offline", prompt="[]", text="", latency_s=time.perf_counter() - start,
                                 error=f"no mutation found: {exc}")]
            self._made_any, self._misses_in_a_row = True, 0
            made.append(Proposal(model="offline", prompt="[]", text=mutation.response,
                                 latency_s=time.perf_counter() - start,
                                 details={"kind": mutation.kind, **mutation.details}))
        return [replace(p, details={**p.details, **answer_details(i, len(made), answers)}) for i, p in enumerate(made)]

    def _mutate(self, parents: Sequence[ParentView], inspirations: Sequence[ParentView], mate: ParentView | None,
                rng: np.random.Generator) -> OfflineProposal:
        """A crossover takes a statement or sub-expression of the mate into the last parent (falling back to any
        mutation when none fits); otherwise inspirations are further donors beside the parents, and the best parent
        is still the one changed."""
        if mate is not None:
            try:
                return self._mutator.propose_detailed([mate.code, parents[-1].code], self._names, rng, crossover=True)
            except NoMutationFound:
                pass
        codes = [p.code for p in (*inspirations, *parents)]
        if isinstance(self._mutator, AstMutator):  # its walks continue from the best parent's score (`walk`)
            return self._mutator.propose_detailed(codes, self._names, rng, level=parents[-1].score)
        return self._mutator.propose_detailed(codes, self._names, rng)

    def restore(self, proposals: Sequence[Any], code_of: Callable[[int], str]) -> None:
        """Replay a resumed run's recorded proposals (stored `details`), so its adapted steps and its walks continue
        exactly; `code_of` reads a program's code by id (a tied child's is its response applied to its best
        parent's)."""
        for p in proposals:
            if isinstance(self._mutator, AstMutator) and self._mutator.walk.adopts(p.details) and p.parent_ids:
                self._mutator.walk.adopt((float(p.details[LEVEL]), code_of(p.parent_ids[-1])))
            code = None
            if isinstance(self._mutator, AstMutator) and self._mutator.needs_code(p.details) and p.response \
                    and p.parent_ids:
                code = apply_response(p.response, code_of(p.parent_ids[-1]), self._names)
            self._learn(p.details, bool(p.details.get("improved")), code)
            self._made_any = self._made_any or p.error is None

    def observe(self, proposal: Proposal, improved: bool, rng: np.random.Generator) -> None:
        """Nudges and literal searches adapt their steps to how often they improve on the trusted score; a valid
        child's trusted score (the controller's `child_score` detail) moves the walk (`walk`)."""
        self._learn(proposal.details, improved)

    def _learn(self, details: dict[str, Any], improved: bool, code: str | None = None) -> None:
        if isinstance(self._mutator, AstMutator):
            self._mutator.observe(details, improved, code)
        elif details.get("kind") == "nudge":
            self._mutator.observe_nudge(improved)

    def stop_reason(self) -> str | None:
        """Why the run cannot go on: no mutation of the seed was ever found (the program offers nothing to change)."""
        if self._made_any or self._misses_in_a_row < self.HOPELESS_AFTER:
            return None
        return (f"the offline proposer cannot change the program: {self._misses_in_a_row} proposals in a row found "
                f"no mutation ({self._last_miss}); give the seed something to vary (a constant, an expression, "
                "an array it builds) or use an LLM (--model)")


class LLMProposer:
    """Prompts the model ensemble through litellm, with cache, replay and (optionally) evolving instructions."""

    def __init__(self, description: str, evolved_names: Sequence[str], models: ModelConfig, *,
                 cache: ResponseCache | None = None, replay: ReplaySource | None = None,
                 instructions: InstructionPool | None = None, maximize: bool = True,
                 project: ProjectSource | None = None) -> None:
        from evoforge.engine.propose.llm import LLMEnsemble  # imported here: a search with no LLM never loads litellm
        from evoforge.engine.propose.model_choice import BanditChoice

        self._description = description
        self._names = tuple(evolved_names)
        self._project = project
        self._full_rewrite = models.full_rewrite
        self._maximize = maximize
        self._temperature = {m.name: m.temperature for m in models.models}
        self._cache = cache
        self._replay = replay
        self._replay_missed = False  # warned about the first request the replayed run has no answer to
        self.instructions = instructions

        cheap = [m for m in models.models if m.tier == "cheap"]
        strong = [m for m in models.models if m.tier == "strong"]
        self.llm = LLMEnsemble(cheap, strong=strong, strong_prob=models.strong_prob, max_retries=models.retries,
                               backoff_s=models.backoff_s, chooser=BanditChoice() if models.bandit else None,
                               direct=models.client == "direct")

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator, *,
                      feedback: Sequence[str] = (), inspirations: Sequence[ParentView] = (),
                      mate: ParentView | None = None, improvements: Sequence[Improvement] = (),
                      answers: int = 1) -> list[Proposal]:
        """One call asking for `answers` choices (or the run's memory of an identical request): a Proposal per
        choice that came back, with the call's tokens and cost split among them (shares.py)."""
        instruction: Instruction | None = self.instructions.pick(rng) if self.instructions else None
        messages = build_messages(self._description, self._names, parents, feedback=feedback,
                                  inspirations=inspirations, mate=mate, improvements=improvements,
                                  instructions=instruction.text if instruction else None,
                                  full_rewrite=self._full_rewrite, maximize=self._maximize,
                                  project=self._project)
        details: dict[str, Any] = {"instruction": instruction.id} if instruction else {}
        spec, choice = await self.llm.pick(rng)
        details.update(choice)
        key = request_key(spec.name, messages, answers)
        if self._replay is not None:
            return self._replayed(spec.name, messages, key, details, answers)
        cached = self._cache.get(key) if self._cache and self._temperature.get(spec.name) == 0 else None
        if cached is not None:
            return _from_memory(spec.name, messages, cached, {**details, "cache": "hit"}, answers)
        result = await self.llm.call(spec, messages, answers)
        prompt = json.dumps(messages)
        if result.error is not None:
            return [Proposal(model=result.model, prompt=prompt, text="", latency_s=result.latency_s,
                             error=result.error, attempts=result.attempts, details={**details, "llm_error": True})]
        texts = list(result.texts[:answers]) or [result.text]  # no choice at all: one empty answer, as ever
        proposals = [Proposal(model=result.model, prompt=prompt, text=text, prompt_tokens=share.prompt_tokens,
                              completion_tokens=share.completion_tokens, cost=share.cost, latency_s=result.latency_s,
                              attempts=result.attempts if i == 0 else 0,  # the call counts once
                              details={**details, **answer_details(i, len(texts), answers)})
                     for i, (text, share) in enumerate(zip(texts, split_call(texts, result.prompt_tokens,
                                                                             result.completion_tokens, result.cost)))]
        if self._cache is not None and self._temperature.get(spec.name) == 0:
            self._cache.put(key, tuple(StoredAnswer(p.text, p.prompt_tokens, p.completion_tokens) for p in proposals))
        return proposals

    def stop_reason(self) -> str | None:
        return self.llm.hopeless()

    def _replayed(self, model: str, messages: list[dict[str, Any]], key: str, details: dict[str, Any],
                  answers: int) -> list[Proposal]:
        assert self._replay is not None
        recorded = self._replay.take(key)
        if recorded is None:
            if not self._replay_missed:  # a replay that misses only records failed proposals: say why, once
                self._replay_missed = True
                log.warning("%s", replay_miss_warning(self._replay.run_name))
            return [Proposal(model=model, prompt=json.dumps(messages), text="", attempts=0,
                             error=f"replay of run '{self._replay.run_name}' has no answer to this request",
                             details={**details, "replay": "miss", "llm_error": True})]
        return _from_memory(model, messages, recorded, {**details, "replay": "hit"}, answers)

    def observe(self, proposal: Proposal, improved: bool, rng: np.random.Generator) -> None:
        if proposal.is_call:
            self.llm.chooser.observe(proposal.model, improved, proposal.cost)
        instruction = proposal.details.get("instruction")
        if self.instructions is not None and instruction is not None:
            self.instructions.observe(int(instruction), improved, rng)


def replay_miss_warning(run_name: str) -> str:
    """The one warning of a replay whose replayed run has no answer to a request."""
    return (f"replay of run {run_name!r} has no answer to a request: a replay answers only requests identical to "
            "the replayed run's, so give the same problem, --set values, options and --seed (an exact reproduction "
            f"needs both runs at --concurrency 1; `evoforge show {run_name}` lists its settings). The run goes on; "
            "each request without an answer is a failed proposal (no call is made), recorded without a warning")


def _from_memory(model: str, messages: list[dict[str, Any]], recorded: Answers, details: dict[str, Any],
                 asked: int) -> list[Proposal]:
    """Proposals answered without a call: they cost nothing now (the tokens were paid when first asked)."""
    prompt = json.dumps(messages)
    return [Proposal(model=model, prompt=prompt, text=answer.text, attempts=0,
                     details={**details, "paid_tokens": answer.prompt_tokens + answer.completion_tokens,
                              **answer_details(i, len(recorded), asked)})
            for i, answer in enumerate(recorded)]


def make_proposer(models: ModelConfig, description: str, evolved_names: Sequence[str], *,
                  global_names: Collection[str] | None = None, maximize: bool = True,
                  cache: ResponseCache | None = None, replay: ReplaySource | None = None,
                  instructions: InstructionPool | None = None, project: ProjectSource | None = None) -> Proposer:
    """The offline proposer when no model is configured (``global_names``: what the evolved functions can see),
    else the LLM proposer; with a `project`, both edit its marked blocks."""
    if models.offline:
        return OfflineProposer(evolved_names, global_names, project, maximize)
    return LLMProposer(description, evolved_names, models, cache=cache, replay=replay,
                           instructions=instructions, maximize=maximize, project=project)
