"""The MAP-Elites archive (islands/map_elites.py): binning, elites, rejection, seeded sampling, and real searches
(real sandboxes, real SQLite, the offline proposer) that fill it, resume to it, and use a problem's metric."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from evoforge.db import ProgramSummary, Store
from evoforge.engine.run.config import ConfigError, RunConfig
from evoforge.engine.run.errors import RunFailed
from evoforge.engine.run.options import SearchOptions, run_config
from evoforge.engine.run.search import resume_search, run_search
from evoforge.islands import IslandConfig
from evoforge.islands.map_elites import MapElitesArchive, MapElitesError

REPO = Path(__file__).resolve().parent.parent
BIN_PACKING = str(REPO / "problems" / "bin_packing.py")
JOB_SCHEDULE = str(REPO / "problems" / "job_schedule.py")
SMALL = {"num_items": "200", "num_instances": "2", "held_out_instances": "1"}


def archive(bins: int = 4, maximize: bool = False) -> MapElitesArchive:
    return MapElitesArchive(["code_length"], bins, maximize=maximize)


# ---- cells and elites ------------------------------------------------------------------------------------------

def test_cells_are_equal_width_bins_over_the_values_seen_so_far() -> None:
    a = archive(bins=4)
    a.register(1, 5.0, 100, {})
    assert a.cell_of(1) == (0,)  # one value: a single bin
    for pid, length in ((2, 200), (3, 149), (4, 150), (5, 175)):
        a.register(pid, 5.0 + pid, length, {})
    # range 100..200 in 4 bins of width 25; the top edge belongs to the last bin
    assert [a.cell_of(p) for p in (1, 3, 4, 5, 2)] == [(0,), (1,), (2,), (3,), (3,)]
    assert a.cells() == {(0,): 1, (1,): 3, (2,): 4, (3,): 2}  # minimising: 2 (score 7) beats 5 (score 10)


def test_a_better_program_takes_its_cell_and_a_worse_or_equal_one_does_not() -> None:
    a = MapElitesArchive(["code_length", "late_jobs"], 2, maximize=False)
    a.register(1, 3.0, 10, {"late_jobs": 0.0})
    a.register(2, 9.0, 30, {"late_jobs": 4.0})
    a.register(3, 4.0, 11, {"late_jobs": 1.0})  # cell (0, 0) with 1: worse when minimising
    assert a.cells() == {(0, 0): 1, (1, 1): 2}
    a.register(4, 3.0, 12, {"late_jobs": 0.5})  # a tie keeps the earlier program
    assert a.cells()[(0, 0)] == 1
    a.register(5, 2.5, 12, {"late_jobs": 0.5})
    assert a.cells()[(0, 0)] == 5
    maxi = MapElitesArchive(["code_length"], 2, maximize=True)
    for pid, score in ((1, 1.0), (2, 2.0)):
        maxi.register(pid, score, 10, {})
    assert maxi.cells() == {(0,): 2}


def test_a_program_without_a_descriptor_value_stays_out() -> None:
    a = MapElitesArchive(["late_jobs"], 4, maximize=False)
    assert not a.register(1, 1.0, 10, {"other": 1.0})
    assert not a.register(2, 1.0, 10, {"late_jobs": float("nan")})
    assert a.register(3, 1.0, 10, {"late_jobs": 2.0}) and len(a) == 1
    with pytest.raises(ValueError, match="already registered"):
        a.register(3, 1.0, 10, {"late_jobs": 2.0})


def test_a_rejected_elite_leaves_its_cell_to_the_next_best_or_empties_it() -> None:
    a = archive(bins=2)
    for pid, score, length in ((1, 1.0, 10), (2, 2.0, 10), (3, 0.5, 100)):
        a.register(pid, score, length, {})
    assert a.cells() == {(0,): 1, (1,): 3}
    a.withdraw(1)
    assert a.cells() == {(0,): 2, (1,): 3}
    a.withdraw(3)  # the range shrinks to one value: one bin
    assert a.cells() == {(0,): 2}
    a.withdraw(2)
    a.withdraw(2)  # twice changes nothing
    assert a.cells() == {} and a.select(2, np.random.default_rng(0)) == []


def test_sampling_is_uniform_over_occupied_cells_and_deterministic_under_a_seed() -> None:
    a = archive(bins=4)
    for pid, length in enumerate((100, 101, 102, 103, 104, 130, 160, 200), start=1):
        a.register(pid, float(pid), length, {})
    elites = a.cells()
    assert len(elites) == 4 and elites[(0,)] == 1  # five programs crowd bin 0, its best is 1 (minimising)
    draws = [a.select(1, np.random.default_rng([7, i])) for i in range(4000)]
    assert draws == [a.select(1, np.random.default_rng([7, i])) for i in range(4000)]
    share = {pid: sum(d == [pid] for d in draws) / len(draws) for pid in elites.values()}
    assert all(abs(s - 0.25) < 0.03 for s in share.values())  # uniform over cells, not over programs
    two = a.select(2, np.random.default_rng(3))
    assert len(set(two)) == 2 and set(two) <= set(elites.values())


def test_settings_are_refused_with_the_fix() -> None:
    with pytest.raises(MapElitesError, match="one or more descriptors"):
        MapElitesArchive([], 8, maximize=False)
    with pytest.raises(MapElitesError, match="distinct"):
        MapElitesArchive(["code_length", "code_length"], 8, maximize=False)
    with pytest.raises(ConfigError, match=re.escape("map_bins (--map-bins) 1")):
        RunConfig(problem=BIN_PACKING, name="x", map_elites=("code_length",), map_bins=1)
    config = run_config(BIN_PACKING, SearchOptions(map_elites="code_length, late_jobs", map_bins=3), "sqlite://")
    assert config.map_elites == ("code_length", "late_jobs") and config.map_bins == 3
    assert RunConfig.from_dict(config.to_dict()) == config  # stored as JSON, replayed on resume
    assert run_config(BIN_PACKING, SearchOptions(), "sqlite://").map_elites == ()  # off by default


# ---- real searches ---------------------------------------------------------------------------------------------

def recorded_archive(db: str, name: str) -> tuple[MapElitesArchive, list[tuple[int, ...]], list[str]]:
    """The archive rebuilt from the run's recorded history, with each proposal's parents and each program's code."""
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None
        config = RunConfig.from_dict(run.config["run"])
        a = MapElitesArchive(config.map_elites or ("code_length",), config.map_bins, maximize=False)
        for item in store.history(run.id):
            if isinstance(item, ProgramSummary) and item.status == "ok" and item.score is not None:
                a.register(item.id, item.score, item.code_length, item.metrics)
        parents = [tuple(p.parent_ids) for p in store.proposals(run.id)]
        codes = [p.code for p in store.get_programs([b.id for b in store.program_briefs(run.id)])]
    return a, parents, codes


def search(name: str, budget: int, **options: object) -> RunConfig:
    return RunConfig(problem=BIN_PACKING, name=name, budget=budget, overrides=dict(SMALL), concurrency=1,
                     islands=IslandConfig(num_islands=1, reset_period=1000), **options)  # type: ignore[arg-type]


def test_a_search_fills_several_cells_and_resumes_to_the_same_archive(tmp_path: Path) -> None:
    whole, split = f"sqlite:///{tmp_path / 'whole.db'}", f"sqlite:///{tmp_path / 'split.db'}"
    run_search(search("grid", 16, map_elites=("code_length",), map_bins=4), whole, progress=False)
    run_search(search("grid", 8, map_elites=("code_length",), map_bins=4), split, progress=False)
    resume_search("grid", split, budget=16, progress=False)
    one, parents_one, codes_one = recorded_archive(whole, "grid")
    two, parents_two, codes_two = recorded_archive(split, "grid")
    assert len(one.cells()) >= 2
    assert (parents_two, codes_two, two.cells()) == (parents_one, codes_one, one.cells())
    with Store(whole) as store:
        assert store.get_run("grid").config["run"]["map_elites"] == ["code_length"]


def test_rejected_elites_leave_the_archive_on_resume(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    run_search(search("grid", 8, map_elites=("code_length",), map_bins=4), db, progress=False)
    grid, before, _ = recorded_archive(db, "grid")
    with Store(db) as store:
        seed = store.program_briefs(store.get_run("grid").id, origin="seed")[0].id
        rejected = {pid for pid in grid.cells().values() if pid != seed}
        for pid in rejected:
            store.reject_program(pid, by="tester", why="games the score")
    assert rejected
    resume_search("grid", db, budget=20, progress=False)
    _, after, _ = recorded_archive(db, "grid")
    assert len(after) == 20 and not rejected & {pid for ids in after[len(before):] for pid in ids}


def test_the_archive_changes_which_parents_are_drawn(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    run_search(search("off", 16), db, progress=False)
    run_search(search("on", 16, map_elites=("code_length",), map_bins=4), db, progress=False)
    _, off, _ = recorded_archive(db, "off")
    grid, on, _ = recorded_archive(db, "on")
    assert len(grid.cells()) >= 2
    with Store(db) as store:
        first = {r: store.program_briefs(store.get_run(r).id)[0].id for r in ("off", "on")}
    shift = first["on"] - first["off"]  # program ids of the second run follow the first's
    assert [tuple(p - shift for p in ids) for ids in on] != off


def test_a_search_bins_a_metric_of_the_problem(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    config = RunConfig(problem=JOB_SCHEDULE, name="jobs", budget=10, concurrency=1, map_elites=("late_jobs",),
                       islands=IslandConfig(num_islands=1, reset_period=1000))
    result = run_search(config, db, progress=False)
    assert result.status == "finished"
    grid, _, _ = recorded_archive(db, "jobs")
    assert len(grid.cells()) >= 2 and all(len(cell) == 1 for cell in grid.cells())
    wrong = RunConfig(problem=JOB_SCHEDULE, name="typo", budget=2, map_elites=("late_job",))
    with pytest.raises(RunFailed, match="descriptors available are: code_length, late_jobs"):
        run_search(wrong, db, progress=False)


def test_the_cli_flag_and_the_api_build_the_same_archive_search(tmp_path: Path) -> None:
    import evoforge
    from evoforge.engine.cli.main import main

    db = f"sqlite:///{tmp_path / 'r.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    assert main(["run", "bin_packing", "--budget", "4", "--map-elites", "code_length", "--map-bins", "3",
                 "--db", db, "--name", "cli", "--quiet", *sets]) == 0
    api = evoforge.run("bin_packing", budget=4, map_elites=["code_length"], map_bins=3, db=db, name="api",
                       overrides=SMALL)
    cli = evoforge.load_run("cli", db=db)
    assert cli.config.map_elites == ("code_length",) and cli.config.map_bins == 3
    assert {**cli.config.to_dict(), "name": "api"} == api.config.to_dict()


def test_a_program_rejected_while_the_run_goes_on_leaves_its_cell_to_the_next_best(tmp_path: Path, monkeypatch:
                                                                                   pytest.MonkeyPatch) -> None:
    from openai_server import OpenAIServer, sequence
    from test_controller import TOY, Rig, answer, drive, programs

    from evoforge.engine.analysis.queries import REJECT_EVENT
    from evoforge.engine.propose.proposers import make_proposer
    from evoforge.engine.run.config import ModelConfig, ModelEntry
    from evoforge.engine.run.oversight import reject_program
    from evoforge.evaluators import load_problem

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    rig = Rig(tmp_path)
    with OpenAIServer(sequence(answer("    return x * 9"))) as server:
        models = ModelConfig(models=(ModelEntry("openai/scripted", api_base=server.base_url, timeout_s=10),),
                             retries=0, cache=False)
        problem = load_problem(TOY)
        controller = rig.controller(make_proposer(models, problem.description, problem.evolved_names), budget=1)
        controller.map_elites = MapElitesArchive(["code_length"], 4, maximize=True)
        try:
            drive(controller)
            seed, best = programs(rig.store, controller.run.id)
            assert len(seed.code) == len(best.code) and controller.map_elites.cells() == {(0,): best.id}
            reject_program(rig.store, best.id, why="it reads the answer")
            controller.apply_action(REJECT_EVENT, best.id)
            assert controller.map_elites.cells() == {(0,): seed.id}
        finally:
            rig.close()
