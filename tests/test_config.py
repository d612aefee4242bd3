"""RunConfig and its parts on their own: every setting checked where it is made, the rules that tie settings
together, what the settings imply, and the stored form (JSON with the run) read back exactly or refused."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from evoforge.engine.run.config import ConfigError, ExecutorSettings, Limits, ModelConfig, ModelEntry, RunConfig
from evoforge.islands import IslandConfig, IslandConfigError

CHEAP = ModelEntry("openai/cheap", api_base="http://127.0.0.1:9/v1", temperature=0.2, max_tokens=512)
STRONG = ModelEntry("openai/strong", tier="strong", weight=2.0, api_base="http://127.0.0.1:8/v1", timeout_s=30.0,
                    input_cost_per_token=1e-6, output_cost_per_token=2e-6)


def everything_set() -> RunConfig:
    """A config in which every field, nested ones included, differs from its default."""
    config = RunConfig(
        problem="/problems/bin_packing.py", name="all", budget=77, seed=5, workers=3, overrides={"num_items": "50"},
        islands=IslandConfig(num_islands=3, parents_per_prompt=3, temperature_init=0.2, temperature_period=500,
                             reset_period=40, length_temperature=0.5, elite_member="any",
                             elite_scope="all"),
        models=ModelConfig(models=(CHEAP, STRONG), strong_prob=0.25, bandit=True, full_rewrite=True,
                           evolve_instructions=True, cache=False, replay="older", retries=1, backoff_s=0.5,
                           judge=ModelEntry("openai/judge", api_base="http://127.0.0.1:7/v1"), client="direct"),
        limits=Limits(max_calls=10, max_tokens=1000, max_cost=0.5, max_wall_s=60.0),
        concurrency=4, same_behaviour="keep", behaviour_inputs="all", inspirations=2,
        map_elites=("code_length", "late_jobs"), map_bins=4, crossover=0.2, meta_summary=3, answers=3,
        offline_share=0.25,
        executor=ExecutorSettings(ray=True, ray_address="10.0.0.1:6379"),
    )
    defaults = RunConfig(problem="p", name="n")
    for f in dataclasses.fields(RunConfig):  # or the round trip below would not cover every field
        assert getattr(config, f.name) != getattr(defaults, f.name), f.name
    return config


def test_a_config_survives_its_stored_form_exactly() -> None:
    config = everything_set()
    stored = json.loads(json.dumps(config.to_dict()))  # what the database keeps
    assert RunConfig.from_dict(stored) == config


def test_an_api_key_is_never_part_of_the_stored_form() -> None:
    keyed = dataclasses.replace(everything_set(), models=ModelConfig(models=(
        dataclasses.replace(CHEAP, api_key="sk-secret-1"),)))
    stored = json.dumps(keyed.to_dict())
    assert "sk-secret-1" not in stored and "api_key" not in stored
    assert RunConfig.from_dict(json.loads(stored)).models.models[0].api_key is None
    assert "sk-secret-1" not in repr(keyed)


@pytest.mark.parametrize(("section", "extra"), [
    (None, {"temperature": 0.7}),
    ("islands", {"migration_rate": 0.1}),
    ("models", {"critic": "gpt-4o"}),
    ("limits", {"max_retries": 3}),
    ("executor", {"gpus": 1}),
])
def test_a_stored_key_that_nothing_reads_is_refused_with_its_name(section: str | None, extra: dict) -> None:
    stored = everything_set().to_dict()
    if section is None:
        stored.update(extra)
    else:
        stored[section] = {**stored[section], **extra}
    with pytest.raises(ConfigError, match="unknown keys") as info:
        RunConfig.from_dict(stored)
    assert repr(next(iter(extra))) in str(info.value)
    if section is not None:
        assert repr(section) in str(info.value)


def test_a_model_entry_with_a_key_nothing_reads_is_refused() -> None:
    stored = everything_set().to_dict()
    stored["models"]["models"][0]["top_p"] = 0.9
    with pytest.raises(ConfigError, match=r"model entry openai/cheap: unknown keys \['top_p'\]"):
        RunConfig.from_dict(stored)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: RunConfig(problem="p", name="n", budget=-1), "budget (--budget) -1"),
    (lambda: RunConfig(problem="p", name="n", workers=0), "workers (--workers) 0"),
    (lambda: RunConfig(problem="p", name="n", concurrency=0), "concurrency (--concurrency) 0"),
    (lambda: RunConfig(problem="p", name="n", seed=-1), "seed (--seed) -1: must be a whole number >= 0"),
    (lambda: RunConfig(problem="p", name="n", budget="10"), "budget (--budget) '10': must be a whole number >= 0"),
    (lambda: RunConfig(problem="p", name="n", workers=2.0), "workers (--workers) 2.0: must be a whole number >= 1"),
    (lambda: RunConfig(problem="p", name="n", budget=True), "budget (--budget) True"),
    (lambda: RunConfig(problem="p", name="n", answers=0), "answers (--answers) 0: must be a whole number >= 1"),
    (lambda: RunConfig(problem="p", name="n", answers=True), "answers (--answers) True"),
    (lambda: RunConfig(problem="p", name="n", same_behaviour="drop"),
     "same_behaviour (--same-behaviour) drop: use one of reject, keep, parent"),
    (lambda: Limits(max_calls=0), "max_calls (--max-calls) 0"),
    (lambda: Limits(max_cost=-1.0), "max_cost (--max-cost) -1.0"),
    (lambda: Limits(max_tokens=0), "0: must be > 0"),
    (lambda: Limits(max_wall_s=-5.0), "-5.0: must be > 0"),
    (lambda: ModelEntry(" "), "needs a name"),
    (lambda: ModelEntry("m", tier="medium"), "tier 'medium'"),
    (lambda: ModelEntry("m", weight=0.0), "weight 0.0"),
    (lambda: ModelEntry("m", weight=float("inf")), "weight inf"),
    (lambda: ModelEntry("m", max_tokens=0), "max_tokens and timeout_s"),
    (lambda: ModelEntry("m", timeout_s=float("nan")), "max_tokens and timeout_s"),
    (lambda: ModelEntry("m", temperature=-0.1), "temperature -0.1"),
    (lambda: ModelEntry("m", input_cost_per_token=-1e-6), "input_cost_per_token"),
    (lambda: ModelConfig(models=(CHEAP,), strong_prob=1.5), "strong_prob (--strong-prob) 1.5"),
    (lambda: ModelConfig(models=(CHEAP,), retries=-1), "llm_retries (--llm-retries)"),
    (lambda: ModelConfig(models=(CHEAP,), client="http"),
     "llm_client (--llm-client) 'http': use one of auto, litellm, direct"),
    (lambda: IslandConfig(num_islands=0), "num_islands"),
])
def test_each_setting_is_checked_where_it_is_made_and_the_error_names_it(make, message: str) -> None:
    with pytest.raises((ConfigError, IslandConfigError)) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ModelConfig(models=(CHEAP,), strong_prob=0.5),
     "strong_prob (--strong-prob) > 0 needs strong_model (--strong-model)"),
    (lambda: ModelConfig(models=(STRONG,)), "strong_model (--strong-model) needs model (--model)"),
    (lambda: ModelConfig(bandit=True), "need an LLM"),
    (lambda: ModelConfig(full_rewrite=True), "need an LLM"),
    (lambda: ModelConfig(evolve_instructions=True), "need an LLM"),
    (lambda: ModelConfig(replay="older"), "need an LLM"),
    (lambda: ModelConfig(client="direct"), "llm_client (--llm-client) direct calls LLMs, and no model is given"),
    (lambda: ModelConfig(models=(CHEAP, ModelEntry("gpt-4o-mini", tier="strong")), client="direct"),
     "'gpt-4o-mini' is not one: rename it openai/NAME and give api_base (--api-base)"),
    (lambda: ModelConfig(models=(ModelEntry("openai/local"),), client="direct"), "'openai/local' is not one"),
    (lambda: ModelConfig(models=(CHEAP,), judge=ModelEntry("anthropic/claude-3-5-sonnet-20240620"), client="direct"),
     "'anthropic/claude-3-5-sonnet-20240620' is not one"),
    (lambda: ExecutorSettings(ray_address="10.0.0.1:6379"), "needs ray=True"),
    (lambda: ExecutorSettings(ray=True, ray_address="  "), "ray_address (--ray-address) is empty"),
])
def test_settings_that_only_work_together_are_refused_apart(make, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()


def test_a_stored_config_is_checked_as_a_new_one_is() -> None:
    stored = everything_set().to_dict()
    stored["models"]["strong_prob"] = 0.0
    stored["models"]["models"] = [CHEAP.to_dict()]
    assert RunConfig.from_dict(stored).models.models == (CHEAP,)
    stored["workers"] = 0
    with pytest.raises(ConfigError, match=re.escape("workers (--workers) 0")):
        RunConfig.from_dict(stored)


def test_what_the_settings_imply() -> None:
    offline = RunConfig(problem="p", name="n", workers=3)
    llm = dataclasses.replace(offline, models=ModelConfig(models=(CHEAP,)))
    # Offline mutations are free: one per worker; LLM calls overlap evaluation. By default a behavioural duplicate
    # stops after the first inputs and joins the parents at its twin's score (benchmarks/QUALITY.md).
    assert (offline.in_flight.limit(), offline.rejects_same_behaviour, offline.duplicates) == (3, True, "parent")
    # With an LLM the number adapts to the model's latency; before anything is measured, twice the workers.
    assert (llm.in_flight.limit(), llm.rejects_same_behaviour) == (6, True)
    assert dataclasses.replace(llm, concurrency=1).in_flight.limit() == 1
    assert dataclasses.replace(llm, same_behaviour="keep").rejects_same_behaviour is False
    assert dataclasses.replace(offline, same_behaviour="reject").rejects_same_behaviour is True
    assert ModelConfig().offline and not llm.models.offline
    assert STRONG.has_prices and not CHEAP.has_prices


def test_auto_calls_an_openai_compatible_server_directly_and_anything_else_through_litellm() -> None:
    provider = ModelEntry("gpt-4o-mini", tier="strong")
    assert ModelConfig(models=(CHEAP, STRONG)).client == "direct"
    assert ModelConfig(models=(CHEAP, provider)).client == "litellm"  # one model the direct client cannot call
    assert ModelConfig(models=(ModelEntry("openai/local"),)).client == "litellm"  # no api_base: OpenAI itself
    assert ModelConfig(models=(CHEAP,), judge=ModelEntry("anthropic/claude-3-5-sonnet-20240620")).client == "litellm"
    assert ModelConfig(models=(CHEAP,), judge=ModelEntry("openai/judge", api_base="http://127.0.0.1:7/v1")).client \
        == "direct"
    assert ModelConfig().client == "litellm"  # offline: nothing is called; the stored value says so
    # What was asked for explicitly stays, and the stored form holds the client used, never "auto".
    assert ModelConfig(models=(CHEAP,), client="litellm").client == "litellm"
    stored = RunConfig(problem="p", name="n", models=ModelConfig(models=(CHEAP,))).to_dict()
    assert stored["models"]["client"] == "direct"
    assert RunConfig.from_dict(stored).models.client == "direct"


def test_a_config_is_frozen() -> None:
    config = everything_set()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.budget = 1  # type: ignore[misc]
    assert isinstance(config.models.models, tuple)
    assert ModelConfig(models=[CHEAP]).models == (CHEAP,)  # type: ignore[arg-type]  # a list is kept as a tuple


def test_a_numpy_integer_seed_from_a_notebook_loop_is_taken_as_a_plain_int() -> None:
    import numpy as np

    config = RunConfig(problem="p", name="n", seed=np.arange(5)[3], budget=np.int64(20))
    assert config.seed == 3 and type(config.seed) is int and type(config.budget) is int
    assert RunConfig.from_dict(config.to_dict()) == config
