"""The `evoforge run` options for the LLM ensemble and spending limits, and how they become config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evoforge.engine.run.config import ConfigError, Limits, ModelConfig, ModelEntry

_DEFAULT = ModelEntry(name="default")


def add_model_options(run: argparse.ArgumentParser) -> None:
    """Add the LLM and spending options to the `run` parser."""
    llm = run.add_argument_group("LLM ensemble (no --model: the offline mutation proposer)")
    llm.add_argument("--model", action="append", default=[], metavar="M",
                     help="cheap LLM, a litellm model string (repeatable: equal weights)")
    llm.add_argument("--strong-model", action="append", default=[], metavar="M",
                     help="strong LLM used with probability --strong-prob (repeatable)")
    llm.add_argument("--strong-prob", type=float, default=0.0)
    llm.add_argument("--models", metavar="FILE.json", help="a JSON list of model entries (name, tier, weight, "
                     "api_base, temperature, max_tokens, timeout_s, input/output_cost_per_token)")
    llm.add_argument("--api-base", help="OpenAI-compatible server URL for --model/--strong-model (vLLM, Ollama...)")
    llm.add_argument("--temperature", type=float, default=_DEFAULT.temperature, help="sampling temperature")
    llm.add_argument("--max-tokens", type=int, default=_DEFAULT.max_tokens, help="answer length limit")
    llm.add_argument("--llm-timeout", type=float, default=_DEFAULT.timeout_s, help="seconds per LLM call")
    llm.add_argument("--bandit", action="store_true",
                     help="shift calls toward the model with the most improvement per unit of cost")
    llm.add_argument("--full-rewrite", action="store_true",
                     help="ask for whole functions, not diffs (for small models that cannot write diffs)")
    llm.add_argument("--evolve-instructions", action="store_true",
                     help="evolve the prompt's instruction in a population of its own")
    llm.add_argument("--llm-retries", type=int, default=ModelConfig.retries,
                     help="retries of a timeout, 429, 5xx or reset, with exponential backoff")
    llm.add_argument("--no-cache", action="store_true", help="pay again for identical temperature-0 requests")
    llm.add_argument("--replay", metavar="RUN",
                     help="answer identical requests from RUN's stored responses (no network); takes RUN's models "
                     "when no --model is given")
    spend = run.add_argument_group("spending limits (the run stops cleanly at the first one reached)")
    spend.add_argument("--max-calls", type=int, help="LLM calls")
    spend.add_argument("--max-total-tokens", type=int, help="prompt plus completion tokens")
    spend.add_argument("--max-cost", type=float, help="USD")
    spend.add_argument("--max-time", type=float, help="seconds of wall time for this invocation")


def _entries_from_file(path: str) -> tuple[ModelEntry, ...]:
    file = Path(path)
    try:
        raw = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--models {path}: {exc}; give a JSON list of model entries") from None
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"--models {path}: expected a JSON list of objects, e.g. "
                          '[{"name": "gpt-4o-mini", "weight": 3}, {"name": "gpt-4o", "tier": "strong"}]')
    return tuple(ModelEntry.from_dict(item) for item in raw)


def models_from_args(args: argparse.Namespace, replayed: ModelConfig | None) -> ModelConfig:
    """The ModelConfig the options describe; `replayed` is the config of the --replay run, if any."""
    common = {"api_base": args.api_base, "temperature": args.temperature, "max_tokens": args.max_tokens,
              "timeout_s": args.llm_timeout}
    entries = tuple(ModelEntry(name=n, tier="cheap", **common) for n in args.model)
    entries += tuple(ModelEntry(name=n, tier="strong", **common) for n in args.strong_model)
    if args.models:
        entries += _entries_from_file(args.models)
    strong_prob = args.strong_prob
    if not entries and replayed is not None:
        entries, strong_prob = replayed.models, replayed.strong_prob
    return ModelConfig(models=entries, strong_prob=strong_prob, bandit=args.bandit, full_rewrite=args.full_rewrite,
                       evolve_instructions=args.evolve_instructions, cache=not args.no_cache, replay=args.replay,
                       retries=args.llm_retries)


def limits_from_args(args: argparse.Namespace) -> Limits:
    return Limits(max_calls=args.max_calls, max_tokens=args.max_total_tokens, max_cost=args.max_cost,
                  max_wall_s=args.max_time)
