"""The `evoforge run` options for the LLM ensemble and spending limits (engine.run.options turns them into config)."""

from __future__ import annotations

import argparse

from evoforge.engine.run.config import LLM_CLIENTS, ModelEntry
from evoforge.engine.run.options import SearchOptions

_DEFAULT = SearchOptions()
_MODEL = ModelEntry(name="default")


def add_model_options(run: argparse.ArgumentParser) -> None:
    """Add the LLM and spending options to the `run` parser."""
    llm = run.add_argument_group("LLM ensemble (no --model: the offline mutation proposer)")
    llm.add_argument("--model", action="append", default=[], metavar="M",
                     help="cheap LLM, a litellm model string (repeatable: equal weights)")
    llm.add_argument("--strong-model", action="append", default=[], metavar="M",
                     help="strong LLM used with probability --strong-prob (repeatable)")
    llm.add_argument("--strong-prob", type=float,
                     help="chance that a strong model answers (default 0; with --replay and no --model, the run's)")
    llm.add_argument("--models", metavar="FILE.json", help="a JSON list of model entries (name, tier, weight, "
                     "api_base, temperature, max_tokens, timeout_s, input/output_cost_per_token)")
    llm.add_argument("--api-base", help="OpenAI-compatible server URL for every model (vLLM, Ollama...)")
    llm.add_argument("--temperature", type=float,
                     help=f"sampling temperature of every model (default {_MODEL.temperature})")
    llm.add_argument("--max-tokens", type=int, help=f"answer length limit of every model (default {_MODEL.max_tokens})")
    llm.add_argument("--llm-timeout", type=float, help=f"seconds per LLM call (default {_MODEL.timeout_s:g})")
    llm.add_argument("--bandit", action="store_true",
                     help="shift calls toward the model with the most improvement per unit of cost")
    llm.add_argument("--full-rewrite", action="store_true",
                     help="ask for whole functions, not diffs (for small models that cannot write diffs)")
    llm.add_argument("--evolve-instructions", action="store_true",
                     help="evolve the prompt's instruction in a population of its own")
    llm.add_argument("--llm-retries", type=int, default=_DEFAULT.llm_retries,
                     help="retries of a timeout, 429, 5xx or reset, with exponential backoff")
    llm.add_argument("--llm-client", choices=LLM_CLIENTS, default=_DEFAULT.llm_client,
                     help="how models are called: direct: evoforge's own HTTP client, for openai/NAME models with "
                     "--api-base only (an OpenAI-compatible server such as vLLM or Ollama), with far less CPU per "
                     "call and no litellm import; litellm: any provider; auto (the default): direct when every "
                     "model of the run is one it can call, else litellm")
    llm.add_argument("--offline-share", type=float, default=_DEFAULT.offline_share, metavar="F",
                     help="share of prompts answered by the offline mutator instead of the model, drawn per prompt "
                     "from the seed: no call, no token, same evaluation and record (model 'offline'); they count "
                     "against --budget like the model's, and --max-calls, --max-total-tokens and --max-cost count "
                     "the calls alone (default 0.5 with a model; 0: the model answers every prompt)")
    llm.add_argument("--no-cache", dest="cache", action="store_false",
                     help="pay again for identical temperature-0 requests")
    llm.add_argument("--replay", metavar="RUN",
                     help="answer identical requests from RUN's stored responses (no network); takes RUN's models "
                     "when no --model is given")
    llm.add_argument("--judge-model", metavar="M",
                     help="reviewer model: grades each program that beats its island's best (metric judge_grade), "
                     "writes a critique for its children's prompts, and holds one it finds gaming the score as "
                     "SUSPECT; called with --api-base and --llm-timeout, at temperature 0")
    spend = run.add_argument_group("spending limits (the run stops cleanly at the first one reached)")
    spend.add_argument("--max-calls", type=int, help="LLM calls")
    spend.add_argument("--max-total-tokens", type=int, help="prompt plus completion tokens")
    spend.add_argument("--max-cost", type=float, help="USD")
    spend.add_argument("--max-time", type=float, help="seconds of wall time for this invocation")
