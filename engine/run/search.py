"""Start or resume a search: build the collaborators from a RunConfig and hand them to the Controller.

What `evoforge run`, `evoforge resume` and `evoforge.run()` (evoforge/api.py) call once their options are a
RunConfig; from Python it also takes a proposer of your own:

    from evoforge.engine.run.search import run_search
    result = run_search(RunConfig(problem="problems/bin_packing.py", name="bp", budget=100), "sqlite:///runs/e.db")
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoforge.db import DEFAULT_PATIENCE_S, RunInfo, Store, StoreError
from evoforge.engine.analysis import export
from evoforge.engine.propose.hybrid import HybridProposer
from evoforge.engine.propose.instructions import InstructionPool
from evoforge.engine.propose.judge import Judge, JudgeReplay
from evoforge.engine.propose.memory import ReplaySource, ResponseCache
from evoforge.engine.propose.proposers import OfflineProposer, Proposer, make_proposer
from evoforge.engine.run.config import ConfigError, ExecutorSettings, RunConfig, named
from evoforge.engine.run.controller import Controller, RunRef
from evoforge.engine.run.errors import RunFailed, SeedFailed, StartFailed
from evoforge.engine.run.executor import Executor, make_executor
from evoforge.engine.run.heartbeat import heartbeat
from evoforge.engine.run.interrupt import interrupt_on_sigterm
from evoforge.engine.run.progress import ProgressDisplay
from evoforge.engine.run.stats import RunStats
from evoforge.evaluators import Problem, ProblemError, SandboxError, load_problem
from evoforge.islands import IslandModel
from evoforge.islands.map_elites import MapElitesArchive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    """What a finished (or stopped) search reports back."""

    run_name: str
    status: str  # finished | stopped
    best_score: float | None
    best_program_id: int | None
    stats: RunStats


def default_run_name(problem_path: str) -> str:
    return f"{Path(problem_path).stem}-{dt.datetime.now():%Y%m%d-%H%M%S}"


def stored_config(config: RunConfig, problem: Problem) -> dict[str, Any]:
    """What the database keeps: the run's config plus the problem's resolved settings and parameters."""
    stored = {"run": config.to_dict(), "settings": dataclasses.asdict(problem.settings), "params": problem.params}
    if problem.project is not None:  # its files as the run saw them: `export` writes them back with a program
        stored["project"] = {"folder": problem.project.folder.relative_to(problem.path.parent).as_posix(),
                             "files": problem.project.files}
    return stored


def run_search(config: RunConfig, db_url: str, *, progress: bool = True,
               proposer: Proposer | None = None, db_patience_s: float = DEFAULT_PATIENCE_S) -> SearchResult:
    """Create a new run in the database and search until its budget is spent (or Ctrl-C).

    `proposer` replaces the one the config names (offline or litellm), e.g. a custom proposer from Python.
    `db_patience_s`: how long the run waits for a database that stopped answering before it fails.
    """
    problem = load_problem(config.problem, config.overrides)
    config = dataclasses.replace(config, problem=str(problem.path))  # absolute: resume works from any folder
    for warning in problem.warnings:
        log.warning("%s: %s", problem.path, warning)
    store = Store(db_url, patience_s=db_patience_s)
    try:
        # A run that failed before it recorded anything (its seed, its sandbox) would burn its name: the user who
        # fixed the problem file expects the same command to work, and there is nothing of it to keep.
        failed = store.discard_unstarted_run(config.name)
        if failed is not None:
            log.warning("run %s failed before it recorded a program (%s); starting it over", config.name,
                        _gist(failed))
        run = store.create_run(name=config.name, problem_name=problem.name, problem_path=str(problem.path),
                               problem_source=problem.source, problem_hash=problem.source_hash,
                               config=stored_config(config, problem), seed=config.seed)
        store.claim_run(run.id)
        return _drive(problem, store, run, config, fresh=True, progress=progress, proposer=proposer)
    finally:
        store.close()


def resume_search(name: str, db_url: str, *, budget: int | None = None, progress: bool = True,
                  db_patience_s: float = DEFAULT_PATIENCE_S, executor: ExecutorSettings | None = None) -> SearchResult:
    """Continue a stopped or killed run from what its database holds; `budget` raises its total budget.

    `executor` replaces the run's stored evaluation settings for this invocation (a Ray cluster that moved).
    """
    store = Store(db_url, patience_s=db_patience_s, create=False)
    try:
        run = store.get_run(name)
        if run is None:
            names = ", ".join(r.name for r in store.list_runs()) or "none"
            raise ProblemError(f"no run named '{name}' in {db_url} (runs there: {names})")
        config = RunConfig.from_dict(run.config["run"])
        if budget is not None:
            config = RunConfig.from_dict({**config.to_dict(), "budget": budget})
        if executor is not None:
            config = dataclasses.replace(config, executor=executor)
        # The absolute path the run recorded: a relative one would mean another file from another folder.
        restore = functools.partial(export.restore_command, name, run.problem_path, store.url)
        if not Path(run.problem_path).is_file():
            raise ProblemError(f"{run.problem_path}: the problem file of run '{name}' is gone\n  fix: write it back "
                               f"as the run stored it, `{restore(replace=False)}`, then resume")
        problem = load_problem(run.problem_path, config.overrides)
        if problem.source_hash != run.problem_hash:
            what = f"{problem.path} (or its project folder)" if problem.project is not None else str(problem.path)
            again = (f"run it again under its name (`evoforge run {problem.path} --name {name}`): it failed before "
                     "recording a program, so it starts over" if run.status == "failed" and not store.attempts(run.id)
                     else "start a new run")
            raise ProblemError(f"{what} changed since run '{name}' started, so resuming would mix two "
                               f"problems\n  fix: {again}, or put back the text the run stored (keep your edited "
                               f"file under another name first): `{restore(replace=True)}`")
        made = store.proposal_count(run.id)
        if budget is not None and budget <= made:  # the run ends at once: say why, and keep the budget it had
            log.warning("run %s has already proposed %d candidates, so a budget of %d (the new total, not more) leaves "
                        "nothing to do; give a larger total, e.g. --budget %d", name, made, budget, made + budget)
        store.claim_run(run.id)  # refuses a run another live process searches
        try:
            if budget is not None and budget > made:
                store.set_run_config(run.id, {**run.config, "run": config.to_dict()})
            store.record_event(run.id, "resume", {"budget": config.budget})  # where the run's active time restarts
        except BaseException:
            with contextlib.suppress(StoreError):
                store.release_run(run.id)
            raise
        return _drive(problem, store, run, config, fresh=False, progress=progress, proposer=None)
    finally:
        store.close()


_TRACEBACK = "Traceback (most recent call last):"


def _gist(reason: str) -> str:
    """A failure's reason in one line: its first, where a traceback's header gives way to the exception it ends
    with (the header alone says nothing of what failed)."""
    lines = [line for line in reason.splitlines() if line.strip()]
    head = lines[0] if lines else reason
    if head.rstrip().endswith(_TRACEBACK):
        raised = [line for line in lines[1:] if not line[0].isspace()]  # frames and `fix:` are indented
        if raised:
            head = head.rstrip().removesuffix(_TRACEBACK) + raised[-1].strip()
    return head


def _drive(problem: Problem, store: Store, run: RunInfo, config: RunConfig, *, fresh: bool,
           progress: bool, proposer: Proposer | None) -> SearchResult:
    """Search until the budget is spent, Ctrl-C or SIGTERM (status stopped) or a failure (status failed, its reason
    recorded as a stop event and raised as RunFailed); the run never stays 'running' once this returns, unless
    another process took it over (then it is theirs: this one stops and leaves the status to them).

    The caller has claimed the run (Store.claim_run); the claim is kept fresh here and given up at the end."""
    stats = RunStats(budget=config.budget)
    store.set_run_status(run.id, "running")
    status, executor, lost = "failed", None, []

    def taken_over(why: str) -> None:  # from the heartbeat thread: the controller stops before its next attempt
        lost.append(why)
        stats.stop_reason, stats.stopped_by_failure = why, True

    try:
        with interrupt_on_sigterm() as terminated, heartbeat(store, run.id, taken_over):
            try:
                given = proposer
                executor, proposer = _start(problem, config, (lambda: given) if given is not None else (
                    lambda: _llm_aware_proposer(config, problem, store, run, fresh)))
                judge = _judge(config, store)
                islands = IslandModel(config.islands, maximize=problem.settings.maximize)
                with ProgressDisplay(run.name, stats, enabled=progress) as display:
                    controller = Controller(problem=problem, store=store, run=RunRef(run.id, run.name, config.seed),
                                            islands=islands, proposer=proposer, executor=executor, stats=stats,
                                            concurrency=config.in_flight, limits=config.limits,
                                            reject_same_behaviour=config.rejects_same_behaviour,
                                            duplicates_as_parents=config.duplicates == "parent",
                                            inspirations=config.shown_inspirations, judge=judge,
                                            map_elites=_map_elites(config, problem),
                                            crossover=config.crossover, meta_summary=config.meta_summary or 0,
                                            answers=config.answers,
                                            on_progress=display.update)
                    asyncio.run(_search(controller, fresh))
                status = "failed" if stats.stopped_by_failure else "finished"
            except KeyboardInterrupt:  # said with the run, so `show` and the last lines tell it stopped early
                status = "stopped"
                stats.stop_reason = (f"{'terminated (SIGTERM)' if terminated() else 'interrupted (Ctrl-C)'} after "
                                     f"{stats.attempts} of {stats.budget} candidates")
                with contextlib.suppress(StoreError):
                    store.record_event(run.id, "stop", {"reason": stats.stop_reason, "attempts": stats.attempts})
    except Exception as exc:
        reason = _reason(exc)
        _record_failure(store, run, reason, stats)
        if isinstance(exc, _EXPECTED):
            raise RunFailed(run.name, reason) from exc
        raise  # an engine bug: recorded with the run, and raised with its traceback
    finally:
        if executor is not None:
            executor.close()
        if not lost:
            store.set_run_status(run.id, status)
            store.release_run(run.id)
    return SearchResult(run_name=run.name, status=status, best_score=stats.best_score,
                        best_program_id=stats.best_program_id, stats=stats)


def _map_elites(config: RunConfig, problem: Problem) -> MapElitesArchive | None:
    """The run's MAP-Elites archive, empty (filled from the history on resume), or None when it is off."""
    if not config.map_elites:
        return None
    return MapElitesArchive(config.map_elites, config.map_bins, maximize=problem.settings.maximize)


def _start(problem: Problem, config: RunConfig, build: Callable[[], Proposer]) -> tuple[Executor, Proposer]:
    """The executor and the proposer. Local sandbox servers start in a thread while the proposer is built (the
    LLM client's import, the run's memory), so neither waits for the other; Ray starts in this thread."""
    if config.executor.ray:
        executor = _started(problem, config)
        try:
            return executor, build()
        except BaseException:
            executor.close()
            raise
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evoforge-start") as pool:
        starting = pool.submit(_started, problem, config)
        try:
            built = build()
        except BaseException:
            with contextlib.suppress(Exception):
                starting.result().close()
            raise
        return starting.result(), built


def _started(problem: Problem, config: RunConfig) -> Executor:
    try:
        return make_executor(problem, config)
    except Exception as exc:  # whatever stopped them (a missing sandbox tool, a bad level, Ray), said in one line
        where = "Ray evaluation actors" if config.executor.ray else "sandbox workers"
        raise StartFailed(f"the {where} could not start: {exc}") from exc


_EXPECTED = (ProblemError, ConfigError, SeedFailed, StartFailed, SandboxError, StoreError, OSError)
"""Failures with a message written for the user: the CLI prints it, without a traceback."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _EXPECTED):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _record_failure(store: Store, run: RunInfo, reason: str, stats: RunStats) -> None:
    """Keep why the run failed with it (`evoforge show` prints it); a database that is itself the failure may
    refuse, and then the raised error still says why."""
    with contextlib.suppress(StoreError):
        store.record_event(run.id, "stop", {"reason": reason, "failed": True, "attempts": stats.attempts})


def _llm_aware_proposer(config: RunConfig, problem: Problem, store: Store, run: RunInfo, fresh: bool) -> Proposer:
    """The configured proposer, with its memory of this run (cache, instructions) and any run it replays."""
    models = config.models
    if models.offline:
        offline = _offline_proposer(problem)
        if not fresh:
            offline.restore(store.proposals(run.id), _code_reader(store))
        return offline
    own = [] if fresh else store.proposals(run.id)
    replay = None
    if models.replay:
        source = store.get_run(models.replay)
        if source is None:
            raise ProblemError(f"{named('--replay')} {models.replay}: no such run in {store.url}")
        replay = ReplaySource(source.name, store.proposals(source.id))
    instructions = None
    if models.evolve_instructions:
        instructions = InstructionPool(on_new=lambda member: store.record_event(run.id, "instruction",
                                                                                 member.as_event()))
        recorded = [e.data for e in store.events(run.id, "instruction")] if not fresh else []
        if recorded:
            outcomes = [(int(p.details["instruction"]), bool(p.details.get("improved"))) for p in own
                        if "instruction" in p.details]
            instructions.restore(recorded, outcomes)
        else:
            instructions.start()
    cache = ResponseCache(own) if models.cache else None
    proposer = make_proposer(models, problem.description, problem.evolved_names, cache=cache, replay=replay,
                             instructions=instructions, maximize=problem.settings.maximize,
                             project=problem.project)
    llm = getattr(proposer, "llm", None)
    if llm is not None and replay is None:
        for model, keys in llm.missing_env_keys().items():  # said before the first call, not after it fails
            log.warning("model %r expects %s in the environment, which is not set", model, " or ".join(keys))
    if not config.offline_share:
        return proposer
    offline = _offline_proposer(problem)
    if own:  # a resume: the offline mutator's recorded proposals replay its adapted steps and walks
        offline.restore([p for p in own if p.model == "offline"], _code_reader(store))
    return HybridProposer(proposer, offline, config.offline_share)


def _offline_proposer(problem: Problem) -> OfflineProposer:
    return OfflineProposer(problem.evolved_names, vars(problem.module).keys(), problem.project,
                           problem.settings.maximize)


def _code_reader(store: Store) -> Callable[[int], str]:
    """A program's code by id; a walk mutates one point many times, so each parent's code is read once."""
    return functools.cache(lambda pid: store.get_programs([pid])[0].code)


def _judge(config: RunConfig, store: Store) -> Judge | None:
    """The reviewer model of the run, if it has one; with --replay it answers from the replayed run's verdicts."""
    entry = config.models.judge
    if entry is None:
        return None
    replay = None
    if config.models.replay:
        source = store.get_run(config.models.replay)
        if source is None:
            raise ProblemError(f"{named('--replay')} {config.models.replay}: no such run in {store.url}")
        replay = JudgeReplay(source.name, store.judgements(source.id))
    judge = Judge(entry, retries=config.models.retries, backoff_s=config.models.backoff_s, replay=replay,
                  direct=config.models.client == "direct")
    if replay is None:
        for model, keys in judge.llm.missing_env_keys().items():
            log.warning("reviewer model %r expects %s in the environment, which is not set", model, " or ".join(keys))
    return judge


async def _search(controller: Controller, fresh: bool) -> None:
    # A run killed before its seed was recorded has nothing to restore, so it starts from the seed again.
    if fresh or not controller.restore():
        await controller.evaluate_seed()
    await controller.run_to_budget()
