"""The options of a search by the names of `evoforge run`'s flags, and the one place they become a RunConfig.

The command line (`--budget 500 --model gpt-4o-mini`) and the Python API (`evoforge.run(..., budget=500,
model="gpt-4o-mini")`) both fill a SearchOptions, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoforge.engine.run.config import (
    DEFAULT_DB_URL,
    ConfigError,
    ExecutorSettings,
    Limits,
    ModelConfig,
    ModelEntry,
    RunConfig,
    named,
)
from evoforge.islands import IslandConfig, IslandConfigError

DB_ENV = "EVOFORGE_DB"
"""The environment variable that sets the default database of the CLI and the Python API."""

_MODEL_DEFAULTS = ModelEntry(name="default")


def default_db() -> str:
    """The database used when none is given: $EVOFORGE_DB, else sqlite:///runs/evoforge.db (from the working
    folder)."""
    return os.environ.get(DB_ENV) or DEFAULT_DB_URL


ModelsSpec = str | Path | Sequence[Mapping[str, Any] | ModelEntry] | None


@dataclass(frozen=True)
class SearchOptions:
    """Every option of `evoforge run`, named as its flag (`--reset-period` is `reset_period`), with its default."""

    name: str | None = None  # default: PROBLEM-DATE-TIME
    budget: int = 200
    seed: int = 0
    workers: int = 1
    concurrency: int | None = None
    islands: int = IslandConfig.num_islands
    parents: int = IslandConfig.parents_per_prompt
    reset_period: int = IslandConfig.reset_period
    ray: bool = False
    ray_address: str | None = None
    same_behaviour: str | None = None
    behaviour_inputs: str = RunConfig.behaviour_inputs
    selection: str = IslandConfig.selection
    elite_share: float = IslandConfig.elite_share
    elite_member: str = IslandConfig.elite_member
    elite_scope: str = IslandConfig.elite_scope
    inspirations: int | None = None
    map_elites: str | Sequence[str] | None = None  # --map-elites code_length,METRIC (or a list); None: off
    map_bins: int = RunConfig.map_bins
    crossover: float = RunConfig.crossover  # --crossover SHARE
    meta_summary: int | None = RunConfig.meta_summary  # --meta-summary K; None: the default
    answers: int = RunConfig.answers
    offline_share: float | None = RunConfig.offline_share  # --offline-share F; None: default, or the replayed run's
    overrides: Mapping[str, Any] = field(default_factory=dict)  # --set KEY=VALUE
    model: str | Sequence[str] = ()
    strong_model: str | Sequence[str] = ()
    strong_prob: float | None = None  # None: 0, or the replayed run's
    models: ModelsSpec = None  # --models FILE.json; from Python also a list of entries
    # How to call the models; None leaves each entry's own (a model entry's default, a --models entry's value, the
    # replayed run's). Given, they apply to every model, and a --models entry that says otherwise is refused.
    api_base: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    llm_timeout: float | None = None
    bandit: bool = False
    full_rewrite: bool = False
    evolve_instructions: bool = False
    llm_retries: int = ModelConfig.retries
    llm_client: str = ModelConfig.client  # --llm-client auto|litellm|direct
    cache: bool = True  # --no-cache turns it off
    replay: str | None = None
    max_calls: int | None = None
    max_total_tokens: int | None = None
    max_cost: float | None = None
    max_time: float | None = None
    # The reviewer model: a litellm model string (called with --api-base and --llm-timeout, at temperature 0 with
    # up to 1024 tokens), or from Python a model entry (a dict or ModelEntry: its own server, prices, ...).
    judge_model: str | Mapping[str, Any] | ModelEntry | None = None

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any]) -> SearchOptions:
        """Options given by keyword; an unknown one is refused with the closest known name."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise ConfigError(f"unknown option {key!r}; {hint}the options are: {', '.join(known)}")
        return cls(**options)


def refuse_missing_folder(db: str) -> None:
    """A new database goes into an existing folder: a missing one is more likely a mistyped path than a wish, so
    only the default database's folder (runs/) is made. For `evoforge run` and `evoforge.run` alike."""
    from evoforge.db.connection import missing_folder

    folder = missing_folder(db)
    if folder is not None and db != DEFAULT_DB_URL:
        raise ConfigError(f"{named('--db')} {db}: {folder}; create it first (mkdir -p) or fix the URL")


def run_config(problem: str | Path, options: SearchOptions, db: str) -> RunConfig:
    """The RunConfig the options describe for `problem` (a path or a bundled problem's name); `db` is where the
    run of a --replay is found."""
    from evoforge.engine.run.search import default_run_name
    from evoforge.problems import problem_path

    path = str(problem_path(problem))
    replayed = replayed_config(options.replay, db)
    offline_share = options.offline_share
    if offline_share is None and replayed is not None:  # a replay asks the model the prompts the replayed run did
        offline_share = replayed.offline_share
    return RunConfig(problem=path, name=options.name or default_run_name(path), budget=options.budget,
                     seed=options.seed, workers=options.workers, overrides=overrides(options.overrides),
                     islands=island_config(options),
                     models=model_config(options, None if replayed is None else replayed.models),
                     limits=limits(options),
                     concurrency=options.concurrency, same_behaviour=options.same_behaviour,
                     behaviour_inputs=options.behaviour_inputs,
                     inspirations=options.inspirations, map_elites=map_descriptors(options.map_elites),
                     map_bins=options.map_bins, crossover=options.crossover, meta_summary=options.meta_summary,
                     answers=options.answers, offline_share=offline_share,
                     executor=ExecutorSettings(ray=options.ray or options.ray_address is not None,
                                               ray_address=options.ray_address))


_ISLAND_OPTIONS = {"num_islands": "--islands", "parents_per_prompt": "--parents", "reset_period": "--reset-period",
                   "selection": "--selection", "elite_share": "--elite-share", "elite_member": "--elite-member",
                   "elite_scope": "--elite-scope"}
"""The IslandConfig fields the options set, by the flag that sets each."""


def island_config(options: SearchOptions) -> IslandConfig:
    """The island model's settings; a refused value is named as the option that gave it (`islands (--islands)`),
    not as IslandConfig's field, which neither the command line nor the Python API shows."""
    try:
        return IslandConfig(num_islands=options.islands, parents_per_prompt=options.parents,
                            reset_period=options.reset_period, selection=options.selection,
                            elite_share=options.elite_share, elite_member=options.elite_member,
                            elite_scope=options.elite_scope)
    except IslandConfigError as exc:
        flag = _ISLAND_OPTIONS.get(exc.field)
        raise ConfigError(f"{named(flag)} {exc.problem}" if flag else str(exc)) from None


def map_descriptors(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """--map-elites as a tuple of names: "code_length,makespan" is split at the commas."""
    if value is None:
        return ()
    return tuple(d.strip() for d in value.split(",")) if isinstance(value, str) else tuple(value)


def overrides(values: Mapping[str, Any]) -> dict[str, str]:
    """--set values as the loader takes them: strings as given, anything else as its Python literal."""
    return {str(k): v if isinstance(v, str) else repr(v) for k, v in values.items()}


def replayed_config(replay: str | None, db: str) -> RunConfig | None:
    """The config of the run that --replay names: its models, so a replay needs no model options of its own, and its
    offline share, so the same prompts go to the model."""
    if not replay:
        return None
    from evoforge.db import Store

    with Store(db, create=False) as store:
        run = store.get_run(replay)
    if run is None:
        raise ConfigError(f"{named('--replay')} {replay}: no run of that name in {db}")
    return RunConfig.from_dict(run.config["run"])


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _entries(models: ModelsSpec) -> tuple[ModelEntry, ...]:
    if models is None:
        return ()
    if isinstance(models, (str, Path)):
        return _entries_from_file(str(models))
    return tuple(m if isinstance(m, ModelEntry) else ModelEntry.from_dict(dict(m)) for m in models)


def _entries_from_file(path: str) -> tuple[ModelEntry, ...]:
    file = Path(path)
    try:
        raw = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{named('--models')} {path}: {exc}; give a JSON list of model entries") from None
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"{named('--models')} {path}: expected a JSON list of objects, e.g. "
                          '[{"name": "gpt-4o-mini", "weight": 3}, {"name": "gpt-4o", "tier": "strong"}]')
    return tuple(ModelEntry.from_dict(item) for item in raw)


_CALL_FLAGS = {"api_base": "--api-base", "temperature": "--temperature", "max_tokens": "--max-tokens",
               "timeout_s": "--llm-timeout"}
"""ModelEntry fields that the call options set, by the flag that sets them."""


def model_config(options: SearchOptions, replayed: ModelConfig | None) -> ModelConfig:
    """The ModelConfig the options describe; `replayed` is the config of the --replay run, if any."""
    given = (("api_base", options.api_base), ("temperature", options.temperature),
             ("max_tokens", options.max_tokens), ("timeout_s", options.llm_timeout))
    call: dict[str, Any] = {key: value for key, value in given if value is not None}
    entries = tuple(ModelEntry(name=n, tier="cheap", **call) for n in _names(options.model))
    entries += tuple(ModelEntry(name=n, tier="strong", **call) for n in _names(options.strong_model))
    entries += tuple(_with_call(entry, call) for entry in _entries(options.models))
    strong_prob = 0.0 if options.strong_prob is None else options.strong_prob
    if not entries and replayed is not None:  # the replayed run's models, called as this run says
        entries = tuple(dataclasses.replace(entry, **call) for entry in replayed.models)
        strong_prob = replayed.strong_prob if options.strong_prob is None else options.strong_prob
    judge = judge_entry(options.judge_model, call)
    if judge is None and replayed is not None and not options.model and not options.models:
        judge = replayed.judge  # a replay reviews as the replayed run did, answered from its stored verdicts
    return ModelConfig(models=entries, strong_prob=strong_prob, bandit=options.bandit,
                       full_rewrite=options.full_rewrite, evolve_instructions=options.evolve_instructions,
                       cache=options.cache, replay=options.replay, retries=options.llm_retries, judge=judge,
                       client=options.llm_client)


JUDGE_DEFAULTS = {"temperature": 0.0, "max_tokens": 1024}
"""How --judge-model NAME is called unless an entry says otherwise: a verdict should not depend on sampling."""


def judge_entry(given: str | Mapping[str, Any] | ModelEntry | None, call: Mapping[str, Any]) -> ModelEntry | None:
    """The reviewer model's entry: a model string takes the server and timeout flags (not the proposers'
    temperature or answer length); an entry is taken as it is."""
    if given is None or isinstance(given, ModelEntry):
        return given
    if isinstance(given, str):
        where = {key: value for key, value in call.items() if key in ("api_base", "timeout_s")}
        return ModelEntry(name=given, **{**JUDGE_DEFAULTS, **where})
    if isinstance(given, Mapping):
        return ModelEntry.from_dict({**JUDGE_DEFAULTS, **dict(given)})
    raise ConfigError(f"judge_model {given!r}: give a litellm model string, a dict of a model entry or a ModelEntry")


def _with_call(entry: ModelEntry, call: Mapping[str, Any]) -> ModelEntry:
    """A --models entry with the call options applied where it keeps the default; one it sets otherwise is refused
    rather than silently overridden or ignored."""
    for key, value in call.items():
        own = getattr(entry, key)
        if own != getattr(_MODEL_DEFAULTS, key) and own != value:
            raise ConfigError(f"{named(_CALL_FLAGS[key])} {value} disagrees with model {entry.name}'s {key} {own} in "
                              f"--models; drop one of them (the flag applies to every model)")
    return dataclasses.replace(entry, **call)


def limits(options: SearchOptions) -> Limits:
    return Limits(max_calls=options.max_calls, max_tokens=options.max_total_tokens, max_cost=options.max_cost,
                  max_wall_s=options.max_time)
