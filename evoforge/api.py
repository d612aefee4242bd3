"""The Python API: start or open a run in one line, then ask it what it found.

    import evoforge
    run = evoforge.run("bin_packing", budget=500, db="sqlite:///runs.db", seed=1)
    run.best(5), run.curve(), run.programs(), run.lineage(run.best()[0].id), run.report("bp.html")

The same objects the command line uses: options become a RunConfig through engine.run.options, the search is
engine.run.search, the answers come from engine.analysis. Every call opens the database afresh, so a Run stays
valid while another process (a running search, `evoforge add`) writes to it. Messages go to the `evoforge` logger.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evoforge.db import DEFAULT_PATIENCE_S, ProgramBrief, ProgramInfo, RunInfo, Store
from evoforge.engine.analysis import queries
from evoforge.engine.analysis.queries import Curve
from evoforge.engine.run.config import RunConfig
from evoforge.engine.run.options import SearchOptions, default_db, refuse_missing_folder, run_config
from evoforge.engine.run.search import SearchResult, resume_search, run_search
from evoforge.evaluators import ProblemError

__all__ = ["Run", "load_run", "run"]


class Run:
    """A run in a database, by name: what `evoforge show/best/lineage/report/resume NAME` work on."""

    def __init__(self, name: str, db: str, result: SearchResult | None = None) -> None:
        self.name = name
        self.db = db
        self.result = result
        """What the last search or resume made from this object reported (None for a run only loaded)."""

    def __repr__(self) -> str:
        return f"Run({self.name!r}, db={self.db!r})"  # no database read: a repr must not fail

    def _store(self) -> Store:
        return Store(self.db, create=False)

    def _run(self, store: Store) -> RunInfo:
        return queries.open_run(store, self.name)

    @property
    def info(self) -> RunInfo:
        """The run's record as it is now: status, problem, stored config, times."""
        with self._store() as store:
            return self._run(store)

    @property
    def status(self) -> str:
        """running, finished, stopped or failed."""
        return self.info.status

    @property
    def config(self) -> RunConfig:
        """The settings the run was started with (and resumed with)."""
        return RunConfig.from_dict(self.info.config["run"])

    def best(self, n: int = 1) -> list[ProgramInfo]:
        """The `n` best programs no person rejected, best first, code and scores included."""
        with self._store() as store:
            return [ranked.program for ranked in queries.best(store, self._run(store), n)]

    def curve(self) -> Curve:
        """Every evaluated candidate in order as numpy arrays: score, running best and its held-out score, ..."""
        with self._store() as store:
            return queries.curve(store, self._run(store))

    def programs(self) -> list[dict[str, Any]]:
        """Every program as a plain dict without its code, in the order recorded: `pandas.DataFrame(rows)`."""
        with self._store() as store:
            return queries.program_records(store, self._run(store))

    def program(self, program_id: int) -> ProgramInfo:
        """One program of this run, code included."""
        with self._store() as store:
            return self._own(store, program_id)

    def lineage(self, program_id: int) -> list[ProgramBrief]:
        """The program's ancestors through each primary parent, the seed (or a person's program) first."""
        with self._store() as store:
            self._own(store, program_id)
            return queries.lineage(store, program_id)

    def report(self, path: str | Path, *, top: int = 5) -> Path:
        """Write the run's self-contained HTML report (plots, best programs, lineages, diffs) to `path`."""
        from evoforge.engine.analysis import report

        with self._store() as store:
            return report.write(store, self.name, path, top=top)

    def resume(self, budget: int | None = None, *, progress: bool = False,
               db_patience_s: float = DEFAULT_PATIENCE_S) -> Run:
        """Continue the run (stopped, killed or finished) with its stored settings; `budget` is the new total."""
        self.result = resume_search(self.name, self.db, budget=budget, progress=progress,
                                    db_patience_s=db_patience_s)
        return self

    def _own(self, store: Store, program_id: int) -> ProgramInfo:
        program = store.get_program(program_id)
        if program.run_id != self._run(store).id:
            raise ProblemError(f"program {program_id} belongs to another run, not to {self.name}")
        return program


def run(problem: str | Path, /, *, budget: int = SearchOptions.budget, db: str | None = None,
        model: str | Sequence[str] = (), seed: int = SearchOptions.seed, workers: int = SearchOptions.workers,
        progress: bool = False, db_patience_s: float = DEFAULT_PATIENCE_S, **options: Any) -> Run:
    """Search `problem` (a problem file's path, or a bundled problem's name such as "bin_packing") and return the
    run once its budget is spent (or on Ctrl-C, stopped; `evoforge resume` and Run.resume continue it).

    `db` defaults to $EVOFORGE_DB, else sqlite:///runs/evoforge.db. `model` is one litellm model string or a list
    (none: the offline proposer). `options` are the other options of `evoforge run` by their flag names:
    name, islands, parents, reset_period, concurrency, answers (per prompt), ray, ray_address, same_behaviour,
    behaviour_inputs, overrides (the --set values as a dict), strong_model, strong_prob, models (a JSON file or a
    list of model entries), api_base, temperature, max_tokens, llm_timeout, bandit, full_rewrite, evolve_instructions,
    llm_retries, llm_client ("auto", "litellm", or "direct" for openai/NAME models at an api_base), cache, replay,
    max_calls, max_total_tokens, max_cost, max_time, judge_model (the reviewer model: a model string, or a model
    entry as a dict or ModelEntry).
    """
    url = db or default_db()
    given = SearchOptions.from_keywords({**options, "budget": budget, "model": model, "seed": seed,
                                         "workers": workers})
    config = run_config(problem, given, url)
    refuse_missing_folder(url)
    result = run_search(config, url, progress=progress, db_patience_s=db_patience_s)
    return Run(result.run_name, url, result)


def load_run(name: str, /, *, db: str | None = None) -> Run:
    """The run called `name` in `db` (default $EVOFORGE_DB, else sqlite:///runs/evoforge.db)."""
    url = db or default_db()
    with Store(url, create=False) as store:
        queries.open_run(store, name)  # a missing database or run is refused now, naming the runs there
    return Run(name, url)
