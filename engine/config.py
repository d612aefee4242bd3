"""The settings of one search, validated once before anything starts and stored with the run to replay it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DEFAULT_DB_URL = "sqlite:///runs/evoforge.db"


class ConfigError(ValueError):
    """A setting, or a combination of settings, that cannot work; the message says which and what to use."""


@dataclass(frozen=True)
class ModelConfig:
    """LLM settings; `model` None means the offline proposer (no network, no key)."""

    model: str | None = None  # cheap model, used most of the time (litellm model string)
    strong_model: str | None = None  # strong model, used with probability strong_prob
    strong_prob: float = 0.0
    api_base: str | None = None  # OpenAI-compatible server for both models (vLLM, Ollama, llama.cpp, a test server)
    temperature: float = 0.8
    max_tokens: int = 4096
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.strong_prob <= 1.0:
            raise ConfigError(f"--strong-prob {self.strong_prob}: must lie in [0, 1]")
        if self.strong_prob > 0 and not self.strong_model:
            raise ConfigError("--strong-prob > 0 needs --strong-model")
        if self.strong_model and not self.model:
            raise ConfigError("--strong-model needs --model (the cheap model used the rest of the time)")
        if self.api_base and not self.model:
            raise ConfigError("--api-base needs --model: name the model the server serves, e.g. openai/my-model")
        if self.max_tokens <= 0 or self.timeout_s <= 0:
            raise ConfigError("max tokens and timeout must be positive")

    @property
    def offline(self) -> bool:
        return self.model is None


@dataclass(frozen=True)
class IslandSettings:
    """Island-model settings (see islands.IslandConfig for what each one does)."""

    num_islands: int = 4
    parents_per_prompt: int = 2
    temperature_init: float = 0.1
    temperature_period: int = 30_000
    reset_period: int = 400


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a search; stored as JSON with the run so it can be resumed and replayed."""

    problem: str
    name: str
    budget: int = 200  # candidates proposed (successful or not), the seed excluded
    seed: int = 0
    workers: int = 1  # sandbox workers evaluating at once
    overrides: dict[str, str] = field(default_factory=dict)
    islands: IslandSettings = field(default_factory=IslandSettings)
    models: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.budget < 0:
            raise ConfigError(f"--budget {self.budget}: must be >= 0")
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: must be >= 1")
        if self.islands.num_islands < 1:
            raise ConfigError(f"--islands {self.islands.num_islands}: must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Rebuild a stored config; an unknown key means a newer evoforge wrote it, so refuse rather than guess."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"stored run config has unknown keys {unknown}; was it written by a newer evoforge?")
        islands = IslandSettings(**data.pop("islands", {}))
        models = ModelConfig(**data.pop("models", {}))
        return cls(islands=islands, models=models, **data)
