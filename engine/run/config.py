"""The settings of one search, validated once before anything starts and stored with the run to replay it."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, ClassVar

from evoforge.engine.run.concurrency import AdaptiveConcurrency, FixedConcurrency
from evoforge.evaluators.statuses import BEHAVIOUR_INPUTS, DEFAULT_BEHAVIOUR_INPUTS
from evoforge.islands import IslandConfig
from evoforge.islands.map_elites import MapElitesError
from evoforge.islands.map_elites import validate as validate_map_elites

DEFAULT_DB_URL = "sqlite:///runs/evoforge.db"


class ConfigError(ValueError):
    """A setting, or a combination of settings, that cannot work; the message says which and what to use."""


def named(flag: str) -> str:
    """An option as both its callers know it, the Python API's keyword and the command line's flag
    (`budget (--budget)`): the same ConfigError reaches `evoforge.run(...)` and `evoforge run`."""
    return f"{flag.removeprefix('--').replace('-', '_')} ({flag})"


MODEL_TIERS = ("cheap", "strong")
LLM_CLIENTS = ("auto", "litellm", "direct")
"""How the models are called (--llm-client): through litellm (any provider), or by evoforge's own HTTP client
(engine/propose/openai_http.py), which only speaks to an OpenAI-compatible server and costs the engine far less CPU
per call and no litellm import."""
OPENAI_PREFIX = "openai/"  # litellm's provider prefix of a model on an OpenAI-compatible server


@dataclass(frozen=True)
class ModelEntry:
    """One LLM of the ensemble: a litellm model string and how to call it (the config's entry and what the LLM
    proposer calls alike)."""

    name: str  # "gpt-4o-mini", "anthropic/claude-...", "openai/NAME" for an OpenAI-compatible server
    tier: str = "cheap"  # cheap models answer most prompts; strong ones with probability strong_prob
    weight: float = 1.0  # relative chance within its tier (the bandit, when on, learns its own)
    api_base: str | None = None  # an OpenAI-compatible server (vLLM, Ollama, llama.cpp, a test server)
    temperature: float = 0.8
    max_tokens: int = 4096
    timeout_s: float = 120.0  # wall-clock limit of one attempt
    input_cost_per_token: float | None = None  # USD; when either price is set, used instead of litellm's price list
    output_cost_per_token: float | None = None
    # None: litellm reads the provider's usual environment variable. Never stored with a run (see `stored`).
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("a model needs a name (a litellm model string such as gpt-4o-mini)")
        if self.tier not in MODEL_TIERS:
            raise ConfigError(f"model {self.name}: tier {self.tier!r} is not one of {MODEL_TIERS}")
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ConfigError(f"model {self.name}: weight {self.weight} must be > 0")
        if not (isinstance(self.max_tokens, int) and self.max_tokens > 0 and self.timeout_s > 0
                and math.isfinite(self.timeout_s)):
            raise ConfigError(f"model {self.name}: max_tokens and timeout_s must be positive")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"model {self.name}: temperature {self.temperature} must be a finite number >= 0")
        for name in ("input_cost_per_token", "output_cost_per_token"):
            price = getattr(self, name)
            if price is not None and not (price >= 0 and math.isfinite(price)):
                raise ConfigError(f"model {self.name}: {name} {price} must be a finite number >= 0 (USD per token)")

    @property
    def on_openai_server(self) -> bool:
        """Whether the model is `openai/NAME` at an explicit api_base: what the direct client can call."""
        return self.api_base is not None and self.name.startswith(OPENAI_PREFIX)

    @property
    def has_prices(self) -> bool:
        """Whether the entry gives per-token prices (used instead of litellm's price list)."""
        return self.input_cost_per_token is not None or self.output_cost_per_token is not None

    @classmethod
    def stored(cls) -> tuple[str, ...]:
        """The fields a models file may give and a run stores: all but the API key, which stays in the
        environment (or in the Python caller's hands), never in a file or the database."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "api_key")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.stored()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        known = set(cls.stored())
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"model entry {data.get('name', '?')}: unknown keys {unknown}; use {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class ModelConfig:
    """The LLM ensemble and how proposals are made; no models means the offline proposer (no network, no key)."""

    models: tuple[ModelEntry, ...] = ()
    strong_prob: float = 0.0  # chance that a strong-tier model answers
    bandit: bool = False  # shift calls toward the model with the most improvement per unit of cost
    full_rewrite: bool = False  # ask for whole functions instead of SEARCH/REPLACE diffs (small models)
    evolve_instructions: bool = False  # evolve the prompt's instruction in a population of its own
    cache: bool = True  # answer an identical request at temperature 0 from the earlier answer, paying once
    replay: str | None = None  # a run whose stored responses answer identical requests, with no network
    retries: int = 3  # retries of a transient fault (timeout, 429, 5xx, reset) after the first attempt
    backoff_s: float = 1.0  # first wait before a retry; it doubles per retry (a Retry-After header wins)
    # The reviewer model (--judge-model): it reads each program that improved on its island's best and returns a
    # critique (shown to the program's children), a 0-10 grade (the metric judge_grade) and a gaming verdict.
    judge: ModelEntry | None = None
    # How every model of the run (the reviewer's too) is called: "litellm", or "direct" (LLM_CLIENTS), which only
    # takes openai/NAME models with an api_base and is refused at once for any other rather than falling back.
    # "auto" becomes "direct" when every model is one the direct client calls, else "litellm" (the run stores
    # which): litellm's import alone costs seconds before the first candidate and milliseconds of CPU per call.
    client: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        if self.judge is not None and not isinstance(self.judge, ModelEntry):
            raise ConfigError(f"judge {self.judge!r}: give a ModelEntry (or {named('--judge-model')} NAME)")
        if self.client not in LLM_CLIENTS:
            raise ConfigError(f"{named('--llm-client')} {self.client!r}: use one of {', '.join(LLM_CLIENTS)}")
        if self.client == "auto":
            object.__setattr__(self, "client", "direct" if self._direct_can_call() else "litellm")
        if self.client == "direct":
            self._check_direct()
        if not 0.0 <= self.strong_prob <= 1.0:
            raise ConfigError(f"{named('--strong-prob')} {self.strong_prob}: must lie in [0, 1]")
        tiers = {m.tier for m in self.models}
        if self.strong_prob > 0 and "strong" not in tiers:
            raise ConfigError(f"{named('--strong-prob')} > 0 needs {named('--strong-model')}")
        if self.models and "cheap" not in tiers:
            raise ConfigError(f"{named('--strong-model')} needs {named('--model')} (the cheap model used the rest "
                              "of the time)")
        if self.retries < 0 or self.backoff_s < 0:
            raise ConfigError(f"{named('--llm-retries')} and the backoff must be >= 0")
        if self.offline and (self.bandit or self.full_rewrite or self.evolve_instructions or self.replay):
            raise ConfigError(", ".join(named(f) for f in ("--bandit", "--full-rewrite", "--evolve-instructions"))
                              + f" and {named('--replay')} need an LLM ({named('--model')})")

    def _direct_can_call(self) -> bool:
        return not self.offline and all(m.on_openai_server for m in (*self.models, *((self.judge,) if self.judge
                                                                                      else ())))

    def _check_direct(self) -> None:
        if self.offline:
            raise ConfigError(f"{named('--llm-client')} direct calls LLMs, and no model is given: give "
                              f"{named('--model')} openai/NAME with {named('--api-base')}, or leave it out")
        others = [m.name for m in (*self.models, *((self.judge,) if self.judge else ())) if not m.on_openai_server]
        if others:
            raise ConfigError(
                f"{named('--llm-client')} direct only calls an OpenAI-compatible server (a model named openai/NAME "
                f"with an api_base), and {', '.join(repr(n) for n in others)} is not one: rename it openai/NAME and "
                f"give {named('--api-base')} (or api_base in its model entry), or use llm_client='litellm' "
                "(--llm-client litellm), which calls any provider")

    @property
    def offline(self) -> bool:
        return not self.models

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(_known_keys(cls, data, "models"))
        models = tuple(ModelEntry.from_dict(m) for m in data.pop("models", ()))
        judge = data.pop("judge", None)
        if judge is not None and not isinstance(judge, dict):
            raise ConfigError(f"stored run config's judge {judge!r} is not a model entry; was it edited by hand?")
        return cls(models=models, judge=None if judge is None else ModelEntry.from_dict(judge), **data)


@dataclass(frozen=True)
class Limits:
    """Spending limits; the run stops cleanly at the first one reached (None: no limit)."""

    max_calls: int | None = None  # LLM calls, retries not counted
    max_tokens: int | None = None  # prompt plus completion tokens
    max_cost: float | None = None  # USD, from litellm's price map or the prices a model entry gives
    max_wall_s: float | None = None  # seconds of this invocation (a resume starts its own clock)

    FLAGS: ClassVar[dict[str, str]] = {"max_calls": "--max-calls", "max_tokens": "--max-total-tokens",
                                       "max_cost": "--max-cost", "max_wall_s": "--max-time"}
    """The `evoforge run` flag of each limit, which the errors name."""

    def __post_init__(self) -> None:
        for name, flag in self.FLAGS.items():
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{named(flag)} {value}: must be > 0")


@dataclass(frozen=True)
class ExecutorSettings:
    """Where candidates are evaluated: sandbox workers on this machine, or Ray actors on a local Ray or a cluster."""

    ray: bool = False  # evaluate in Ray actors (--ray starts a local Ray instance)
    ray_address: str | None = None  # join this Ray cluster (--ray-address HOST:PORT, or 'auto'); implies ray

    def __post_init__(self) -> None:
        if self.ray_address is not None and not self.ray:
            raise ConfigError(f"{named('--ray-address')} {self.ray_address!r} needs ray=True (given through "
                              "evoforge.run or --ray-address, it is implied)")
        if self.ray_address is not None and not self.ray_address.strip():
            raise ConfigError(f"{named('--ray-address')} is empty: give HOST:PORT of the cluster's head, or 'auto'")


SAME_BEHAVIOUR = ("reject", "keep", "parent")
DEFAULT_SAME_BEHAVIOUR = "parent"  # chosen by benchmarks/quality.py (QUALITY.md)
DEFAULT_INSPIRATIONS = 0  # chosen by benchmarks/quality.py (QUALITY.md)
MAX_META_SUMMARY = 20  # improvements a prompt may list: each is up to ten lines
DEFAULT_META_SUMMARY = 5  # chosen by benchmarks/quality.py (QUALITY.md, "Small budgets ...")
# With a model, half the prompts answered offline at no call: chosen by benchmarks/quality.py (QUALITY.md, "Offline
# proposals beside the model"), the best score per call on the reference setting.
DEFAULT_OFFLINE_SHARE = 0.5


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a search; stored as JSON with the run so it can be resumed and replayed."""

    problem: str
    name: str
    # Candidates proposed (successful or not), the seed excluded; with offline_share, offline and model candidates
    # alike (--max-calls bounds the calls alone).
    budget: int = 200
    seed: int = 0
    workers: int = 1  # sandbox workers evaluating at once
    overrides: dict[str, str] = field(default_factory=dict)
    islands: IslandConfig = field(default_factory=IslandConfig)
    models: ModelConfig = field(default_factory=ModelConfig)
    limits: Limits = field(default_factory=Limits)
    concurrency: int | None = None  # candidates in flight; None: workers (offline), adaptive (LLM)
    # A candidate whose outputs on the first inputs equal an earlier program's: "reject" it before its other inputs
    # run, "keep" evaluating it in full, or make it a "parent" at no further cost (it joins its island with its
    # twin's score, so the search can drift across neutral variants). None: the default, "parent" (QUALITY.md).
    same_behaviour: str | None = None  # "reject" | "keep" | "parent" | None
    # Whose outputs make two programs twins: the "first" inputs (the first cascade stage, else the first input: a
    # twin stops there, cheaply, though it may answer the other inputs differently), or "all" (each candidate is
    # evaluated in full, and a twin answers every input as its original does).
    behaviour_inputs: str = DEFAULT_BEHAVIOUR_INPUTS
    inspirations: int | None = None  # other islands' best programs shown in each prompt; None: the default
    # A MAP-Elites archive beside the islands (off: empty): descriptors (`code_length` or metric names), each binned
    # into `map_bins` equal-width bins over the values seen; half the prompts then improve an archive elite.
    map_elites: tuple[str, ...] = ()
    map_bins: int = 8
    # The share of prompts that are crossovers: the parent and a high scorer that behaves differently (another
    # island's best, or another cluster's), to combine into one program; offline, a recombination of the two.
    crossover: float = 0.0
    # The last K children that beat their parent (scores and changed lines), listed in every prompt; 0: off. None:
    # the default, resolved when the config is made (and stored so): DEFAULT_META_SUMMARY with a model, off offline
    # (only a model reads it). The summary makes prompts grow; the spending limits allow for that (spending.py).
    meta_summary: int | None = None
    # Answers per prompt (FunSearch samples several per prompt to spread its cost): an LLM is asked for this many
    # choices in one call (litellm's `n`), the offline proposer makes this many mutations of the same parents. Each
    # answer is a candidate of its own and counts once against the budget; a call counts once against the limits.
    answers: int = 1
    # With a model: the share of prompts answered by the offline mutator instead (no call, no token), drawn per
    # prompt from its seeded Generator; 0: the model answers every prompt. None: the default, resolved when the
    # config is made (and stored so): DEFAULT_OFFLINE_SHARE with a model, 0 offline. Offline candidates count
    # against the budget like the model's; the spending limits (--max-calls, tokens, cost) count the calls alone.
    offline_share: float | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)

    def __post_init__(self) -> None:
        # A string from Python (budget="10") met `<` with a TypeError, and a negative seed numpy's "expected
        # non-negative integer" as a traceback from inside a run it had already created.
        for flag, least in (("--budget", 0), ("--seed", 0), ("--workers", 1), ("--concurrency", 1)):
            field_name = flag.removeprefix("--")
            value = getattr(self, field_name)
            if value is None and field_name == "concurrency":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ConfigError(f"{named(flag)} {value!r}: must be a whole number >= {least}")
            object.__setattr__(self, field_name, int(value))  # a numpy integer too, stored as JSON
        if self.same_behaviour not in (None, *SAME_BEHAVIOUR):
            raise ConfigError(f"{named('--same-behaviour')} {self.same_behaviour}: use one of "
                              f"{', '.join(SAME_BEHAVIOUR)}")
        if self.behaviour_inputs not in BEHAVIOUR_INPUTS:
            raise ConfigError(f"{named('--behaviour-inputs')} {self.behaviour_inputs}: use one of "
                              f"{', '.join(BEHAVIOUR_INPUTS)}")
        if self.inspirations is not None and (isinstance(self.inspirations, bool) or self.inspirations < 0):
            raise ConfigError(f"{named('--inspirations')} {self.inspirations}: must be a whole number >= 0")
        if isinstance(self.crossover, bool) or not (isinstance(self.crossover, (int, float))
                                                    and 0.0 <= self.crossover <= 1.0):
            raise ConfigError(f"{named('--crossover')} {self.crossover}: must be a share in [0, 1] (0.2: one "
                              "prompt in five)")
        if self.meta_summary is None:
            object.__setattr__(self, "meta_summary", 0 if self.models.offline else DEFAULT_META_SUMMARY)
        if (isinstance(self.meta_summary, bool) or not isinstance(self.meta_summary, int)
                or not 0 <= self.meta_summary <= MAX_META_SUMMARY):
            raise ConfigError(f"{named('--meta-summary')} {self.meta_summary}: must be a whole number from 0 (off) to "
                              f"{MAX_META_SUMMARY}")
        if self.meta_summary and self.models.offline:
            raise ConfigError(f"{named('--meta-summary')} lists recent improvements in the prompt, which only an "
                              f"LLM reads: give a model ({named('--model')}) or leave it out")
        if self.offline_share is None:
            object.__setattr__(self, "offline_share", 0.0 if self.models.offline else DEFAULT_OFFLINE_SHARE)
        if isinstance(self.offline_share, bool) or not (isinstance(self.offline_share, (int, float))
                                                        and 0.0 <= self.offline_share < 1.0):
            raise ConfigError(f"{named('--offline-share')} {self.offline_share}: must be a share in [0, 1) (0.5: "
                              "half the prompts answered offline; for all of them leave out the model)")
        if self.offline_share and self.models.offline:
            raise ConfigError(f"{named('--offline-share')} mixes offline proposals into a run with a model, and "
                              f"none is given: give {named('--model')}, or leave it out (with no model every "
                              "proposal is offline)")
        object.__setattr__(self, "offline_share", float(self.offline_share))
        if isinstance(self.answers, bool) or not isinstance(self.answers, int) or self.answers < 1:
            raise ConfigError(f"{named('--answers')} {self.answers}: must be a whole number >= 1 (answers per prompt)")
        object.__setattr__(self, "map_elites", tuple(self.map_elites))  # stored as a JSON list
        if self.map_elites:
            try:
                validate_map_elites(self.map_elites, self.map_bins)
            except MapElitesError as exc:
                # the islands package names the flags; the API's caller knows the keywords
                raise ConfigError(f"{named(exc.flag)} {exc.problem}") from None

    @property
    def duplicates(self) -> str:
        """What happens to a behavioural duplicate (see same_behaviour), the default resolved."""
        return self.same_behaviour or DEFAULT_SAME_BEHAVIOUR

    @property
    def rejects_same_behaviour(self) -> bool:
        """Whether a behavioural duplicate stops after the first inputs (rejected, or kept as a parent)."""
        return self.duplicates in ("reject", "parent")

    @property
    def shown_inspirations(self) -> int:
        """Inspirations per prompt, the default resolved."""
        return DEFAULT_INSPIRATIONS if self.inspirations is None else self.inspirations

    @property
    def in_flight(self) -> FixedConcurrency | AdaptiveConcurrency:
        """How many candidates are in flight: `--concurrency N` as given; else one per worker offline (proposing is
        CPU work here), and with an LLM as many as keep the workers busy at the model's measured latency."""
        if self.concurrency is not None:
            return FixedConcurrency(self.concurrency)
        if self.models.offline:
            return FixedConcurrency(self.workers)
        return AdaptiveConcurrency(self.workers)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["models"]["models"] = [m.to_dict() for m in self.models.models]
        data["models"]["judge"] = self.models.judge.to_dict() if self.models.judge is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild a stored config; an unknown key means a newer evoforge wrote it, so refuse rather than guess."""
        data = dict(_known_keys(cls, data, None))
        data.setdefault("meta_summary", 0)  # stored before the summary existed: those runs ran without it
        data.setdefault("offline_share", 0.0)  # stored before it was a setting: the model answered every prompt
        data.setdefault("behaviour_inputs", "first")  # stored before it was a setting: twins were on the first inputs
        islands = IslandConfig(**_known_keys(IslandConfig, data.pop("islands", {}), "islands"))
        models = ModelConfig.from_dict(data.pop("models", {}))
        limits = Limits(**_known_keys(Limits, data.pop("limits", {}), "limits"))
        executor = ExecutorSettings(**_known_keys(ExecutorSettings, data.pop("executor", {}), "executor"))
        return cls(islands=islands, models=models, limits=limits, executor=executor, **data)


def _known_keys(cls: type, data: dict[str, Any], section: str | None) -> dict[str, Any]:
    """``data`` if every key names a field of ``cls``: a key nothing reads means a newer evoforge (or a hand) wrote
    it, and dropping it silently would run something other than what was asked."""
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        where = "stored run config" if section is None else f"stored run config's {section!r} section"
        raise ConfigError(f"{where} has unknown keys {unknown}; was it written by a newer evoforge?")
    return data
