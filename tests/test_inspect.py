"""Inspection and oversight on a real run: a real search in a real SQLite file, then every command on it."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evoforge.db import Store
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.analysis.overfit import WIDENING_LIMIT, gap, relative_gap
from evoforge.engine.cli.main import main
from evoforge.engine.run.config import RunConfig
from evoforge.engine.run.search import resume_search, run_search
from evoforge.islands import IslandConfig

REPO = Path(__file__).resolve().parent.parent
BIN_PACKING = str(REPO / "problems" / "bin_packing.py")
OVERRIDES = {"num_instances": "2", "held_out_instances": "2"}  # 1000 items each: the seed scores 4.84
LONG_NAME = "bin_packing-20261122-034533"  # as long as a default run name

# FunSearch's heuristic for Weibull instances: 2.85 here, far better than anything 60 offline mutations find.
HUMAN = '''import numpy as np


def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """FunSearch's heuristic for Weibull instances."""
    max_bin_cap = max(bins)
    score = (bins - max_bin_cap) ** 2 / item + bins**2 / (item**2)
    score += bins**2 / item**3
    score[bins > item] = -score[bins > item]
    score[1:] -= score[:-1]
    return score
'''


def config(name: str, budget: int) -> RunConfig:
    return RunConfig(problem=BIN_PACKING, name=name, budget=budget, workers=2, overrides=dict(OVERRIDES),
                     islands=IslandConfig(num_islands=2, reset_period=10))


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 'insp': 20 offline candidates, then a person's program on island 1, then 30 more; and a seed-only run."""
    folder = tmp_path_factory.mktemp("inspect")
    url = f"sqlite:///{folder / 'runs.db'}"
    assert run_search(config("insp", 20), url, progress=False).status == "finished"
    (folder / "mine.py").write_text(HUMAN)
    assert main(["add", "insp", str(folder / "mine.py"), "--island", "1", "--db", url]) == 0
    assert resume_search("insp", url, budget=50, progress=False).status == "finished"
    assert run_search(config(LONG_NAME, 0), url, progress=False).status == "finished"
    return folder / "runs.db"


@pytest.fixture
def db(base_db: Path, tmp_path: Path) -> str:
    """A private copy of the module's database, which the test may change."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{base_db}{suffix}").exists():
            shutil.copy(f"{base_db}{suffix}", tmp_path / f"runs.db{suffix}")
    return f"sqlite:///{tmp_path / 'runs.db'}"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def narrow(text: str) -> bool:
    return all(len(line) <= 80 for line in text.splitlines())


def best_of(db: str, name: str = "insp"):
    with Store(db) as store:
        run = analysis.open_run(store, name)
        return run, analysis.best(store, run, 1)[0].program


def store_briefs(db: str):
    with Store(db) as store:
        return store.program_briefs(analysis.open_run(store, "insp").id)


def best_proposed(db: str) -> int:
    """The best program a proposal made (not the seed, not the person's)."""
    with Store(db) as store:
        run = analysis.open_run(store, "insp")
        return next(p.id for p in store.best_programs(run.id, 100, maximize=False) if p.proposal_id is not None)


# ------------------------------------------------------------------------------------------------ listings


def test_runs_lists_every_run_within_80_columns(capsys, db: str) -> None:
    rc, out, _ = cli(capsys, "runs", "--db", db)
    assert rc == 0 and narrow(out)
    assert "insp" in out and LONG_NAME in out and "bin_packing" in out and "finished" in out
    rc, out, _ = cli(capsys, "runs", "--db", db, "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"insp", LONG_NAME}
    insp = rows["insp"]
    assert insp["candidates"] == 52 and insp["status"] == "finished" and 0 < insp["valid_rate"] <= 1
    assert insp["best_score"] <= rows[LONG_NAME]["best_score"]  # the seed-only run has the seed's score
    assert insp["cost"] == 0.0 and insp["duration_s"] > 0 and insp["started"].startswith("20")


def test_show_summarises_settings_models_islands_and_held_out(capsys, db: str) -> None:
    rc, out, _ = cli(capsys, "show", "insp", "--db", db)
    assert rc == 0 and narrow(out), out
    run, best = best_of(db)
    for expected in ("minimise", "num_instances=2", "offline", "island", "held-out", f"{best.held_out_score:.6g}",
                     f"{best.score:.6g}", "seed's"):
        assert expected in out, expected
    rc, out, _ = cli(capsys, "show", "insp", "--db", db, "--json")
    data = json.loads(out)
    assert sum(data["statuses"].values()) == 52  # 50 proposals, all applied, the seed and the person's
    assert data["models"][0]["model"] == "offline" and data["models"][0]["proposals"] == 50
    assert [i["island"] for i in data["islands"]] == [0, 1]
    top = data["best"][0]
    assert top["id"] == best.id and top["gap"]["train"] == best.score and top["gap"]["held_out"] is not None


def test_best_program_and_lineage(capsys, db: str) -> None:
    rc, out, _ = cli(capsys, "best", "insp", "-n", "3", "--db", db, "--json")
    ranked = json.loads(out)
    scores = [r["score"] for r in ranked]
    assert [r["rank"] for r in ranked] == [1, 2, 3] and scores == sorted(scores)  # lower is better
    assert ranked[0]["score"] < 3.0  # the person's program, or a child of it, beats best fit's 4.84
    assert ranked[0]["gap"]["held_out"] == ranked[0]["held_out_score"] is not None

    rc, out, _ = cli(capsys, "best", "insp", "--db", db)
    assert rc == 0 and "def priority" in out and f"program {ranked[0]['id']}" in out and "held-out" in out
    assert narrow(out.split("\n-- ")[0])

    proposed = best_proposed(db)
    rc, out, _ = cli(capsys, "lineage", str(proposed), "--db", db, "--json")
    chain = json.loads(out)
    assert chain[0]["origin"] in ("seed", "human") and chain[-1]["id"] == proposed and len(chain) > 1
    for older, newer in zip(chain, chain[1:]):
        assert newer["parent_ids"][-1] == older["id"]
    rc, out, _ = cli(capsys, "lineage", str(proposed), "--db", db)
    assert rc == 0 and narrow(out) and f"{len(chain) - 1} step" in out

    rc, out, _ = cli(capsys, "program", str(proposed), "--db", db)
    assert rc == 0
    text_out = out
    for expected in (f"program {proposed} of run insp", f"diff against program {chain[-2]['id']}", "+++",
                     "weibull_train_0", "proposal   offline", "-- response", "def priority"):
        assert expected in out, expected
    rc, out, _ = cli(capsys, "program", str(proposed), "--db", db, "--json")
    data = json.loads(out)
    assert data["proposal"]["model"] == "offline" and data["evaluations"][0]["kind"] == "train"
    assert data["diff"].startswith(f"--- program {chain[-2]['id']}")
    # bin packing sets numba=True: whether numba was used for each evaluation is in the text too, not only the JSON
    said = re.findall(r"^  numba +(compiled|ran as Python)", text_out, re.M)
    assert said == [{True: "compiled", False: "ran as Python"}[e["compiled"]] for e in data["evaluations"]]

    rc, _, err = cli(capsys, "show", "nope", "--db", db)
    assert rc == 2 and "no run named 'nope'" in err and "insp" in err


def test_best_held_out_scores_the_programs_that_lack_one(capsys, db: str) -> None:
    rc, out, _ = cli(capsys, "best", "insp", "-n", "8", "--db", db, "--json")
    before = json.loads(out)
    assert any(r["held_out_score"] is None for r in before), "some of the 8 best were never a new best"
    rc, out, err = cli(capsys, "best", "insp", "-n", "8", "--held-out", "--db", db, "--json")
    after = json.loads(out)
    assert rc == 0 and "held-out inputs of program" in err
    assert [r["id"] for r in after] == [r["id"] for r in before]
    assert all(r["held_out_score"] is not None and r["gap"]["relative_gap"] is not None for r in after)
    with Store(db) as store:
        assert all([e.kind for e in store.evaluations(r["id"])] == ["train", "held_out"] for r in after)


def test_curve_arrays_for_notebooks(db: str) -> None:
    with Store(db) as store:
        run = analysis.open_run(store, "insp")
        c = analysis.curve(store, run)
        records = analysis.program_records(store, run)
        best = store.best_programs(run.id, 1, maximize=False)[0]
    evaluated = [r for r in records if r["status"] != "duplicate"]
    assert len(c.evaluated) == len(evaluated) and list(c.program_id) == [r["id"] for r in evaluated]
    assert np.all(np.diff(c.best) <= 0) and c.best[-1] == best.score  # minimised: never rises
    assert c.best_program_id[-1] == best.id and c.best_held_out[-1] == best.held_out_score
    assert np.all(np.diff(c.seconds) >= 0)
    for island in range(2):
        assert np.all(c.island_best(island) >= c.best)
    rate = c.valid_rate(10)
    assert rate.shape == c.evaluated.shape and np.all((rate >= 0) & (rate <= 1))


# --------------------------------------------------------------------------------------- plots and reports


def test_plot_writes_a_png_that_is_not_blank(capsys, db: str, tmp_path: Path) -> None:
    import matplotlib.image

    path = tmp_path / "curves.png"
    rc, out, err = cli(capsys, "plot", "insp", "--db", db, "-o", str(path))
    assert rc == 0 and str(path) in out and "plotting" in err
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 600
    assert pixels[..., :3].std() > 0.05  # curves, axes and text: far from a blank canvas
    with pytest.raises(SystemExit) as refused:
        main(["plot", "insp", "--db", db, "-o", str(tmp_path / "curves.jpg")])
    assert refused.value.code == 2


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium before `make test`")
        pytest.skip("chromium is not installed (apt-get install chromium); CI always runs this test")
    return found


def test_report_is_self_contained_and_opens_in_headless_chromium(capsys, db: str, tmp_path: Path) -> None:
    import matplotlib.image

    chromium = _chromium()
    path = tmp_path / "report.html"
    rc, out, err = cli(capsys, "report", "insp", "--db", db, "-o", str(path), "-n", "2")
    assert rc == 0 and "best program 2/2" in err
    page = path.read_text()
    _, best = best_of(db)
    assert 'id="curve-data"' in page and 'class="highlight"' in page and "Lineage" in page
    assert "Content-Security-Policy" in page  # only the embedded chart scripts may run
    assert f'id="p{best.id}"' in page and f"{best.held_out_score:.6g}" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the report must need no network"

    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,1600", "--enable-logging=stderr", "--v=0",
         path.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1200) and pixels[..., :3].std() > 0.05


def test_export_is_a_problem_file_that_scores_alone(capsys, db: str, tmp_path: Path) -> None:
    from evoforge.evaluators import load_problem

    path = tmp_path / "best.py"
    rc, out, _ = cli(capsys, "export", "insp", "--db", db, "-o", str(path))
    assert rc == 0 and "program" in out
    run, best = best_of(db)
    exported = load_problem(path)  # the run's --set values are written into the file: none needed here
    assert exported.seed_code.strip() == best.code.strip()
    assert exported.params == run.config["params"] and exported.params["num_instances"] == 2
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    train = re.search(r"^training score (\S+)", done.stdout, re.M)
    held = re.search(r"^held-out score (\S+)", done.stdout, re.M)
    assert train and float(train.group(1)) == pytest.approx(best.score, rel=1e-5)
    assert held and float(held.group(1)) == pytest.approx(best.held_out_score, rel=1e-5)


def test_export_never_overwrites_another_file_unless_forced(capsys, db: str, tmp_path: Path) -> None:
    """Exporting beside the original problem must not replace the user's file by accident."""
    path = tmp_path / "mine.py"
    path.write_text("# the user's own problem file\n")
    rc, _, err = cli(capsys, "export", "insp", "--db", db, "-o", str(path))
    assert rc != 0 and "already exists" in err and "--force" in err
    assert path.read_text() == "# the user's own problem file\n"
    rc, _, _ = cli(capsys, "export", "insp", "--db", db, "-o", str(path), "--force")
    assert rc == 0 and "def " in path.read_text()
    exported = path.read_text()
    rc, _, _ = cli(capsys, "export", "insp", "--db", db, "-o", str(path))  # the same text again: nothing to lose
    assert rc == 0 and path.read_text() == exported


# ----------------------------------------------------------------------------------------------- oversight


def test_adding_a_failing_program_does_not_promise_it_selection(capsys, db: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def priority(item, bins):\n    return 1 / 0\n")
    rc, out, _ = cli(capsys, "add", "insp", str(broken), "--db", db)
    assert rc == 1 and "ZeroDivisionError" in out
    assert "enters selection" not in out and "stays out of selection" in out


def test_a_human_program_joins_selection_and_a_rejected_one_leaves_it(capsys, db: str, tmp_path: Path) -> None:
    with Store(db) as store:
        run = analysis.open_run(store, "insp")
        human = next(store.get_program(p.id) for p in store.program_briefs(run.id) if p.origin == "human")
        resets = [e for e in store.history(run.id) if e.kind == "reset" and e.seq > human.seq]
        evaluations = store.evaluations(human.id)
        searched = store.evaluations(next(p.id for p in store.program_briefs(run.id) if p.origin == "seed"))
    assert human.proposal_id is None and human.island == 1 and human.status == "ok"
    assert human.held_out_score is not None and [e.kind for e in evaluations] == ["train", "held_out"]
    # recorded by the same builder as the search's own evaluations: the node that ran it is kept
    assert {e.node for e in evaluations} == {e.node for e in searched} == {socket.gethostname()}
    mine = tmp_path / "again.py"
    mine.write_text(HUMAN.replace("Weibull instances", "Weibull instances, again"))
    rc, _, err = cli(capsys, "add", "insp", str(mine), "--db", db)
    assert rc == 2 and f"already has this program (program {human.id}" in err  # comments aside, the same code

    # The resume after `add` selected it as a parent and, as the best island's best, it founded resets: it, or a
    # descendant of it that beat it first (with two workers the order of the candidates, and so which child comes
    # before the next reset, depends on timing).
    briefs = store_briefs(db)
    children = [p for p in briefs if human.id in p.parent_ids]
    lineage = {human.id}
    for brief in sorted(briefs, key=lambda b: b.seq):
        if lineage & set(brief.parent_ids):
            lineage.add(brief.id)
    assert children and any(lineage & set(e.data["founders"]) for e in resets)

    rc, out, _ = cli(capsys, "reject", str(human.id), "--why", "too good to be true", "--by", "alice", "--db", db)
    assert rc == 0 and "alice" in out
    _, best = best_of(db)
    assert best.id != human.id
    rc, out, _ = cli(capsys, "best", "insp", "--db", db)
    assert f"rejected, not shown: {human.id}" in out
    rc, out, _ = cli(capsys, "show", "insp", "--db", db)
    assert "REJECTED" in out and "alice" in out and "too good to be true" in " ".join(out.split()) and narrow(out)
    rc, out, _ = cli(capsys, "program", str(human.id), "--db", db)
    assert "** REJECTED **" in out and "by alice" in out
    rc, out, _ = cli(capsys, "lineage", str(children[0].id), "--db", db)
    assert "REJECTED" in out

    # The resume replays history without it, also where a reset had copied it in as a founder.
    before = max(p.seq for p in store_briefs(db))
    assert resume_search("insp", db, budget=65, progress=False).status == "finished"
    later = [p for p in store_briefs(db) if p.seq > before]
    assert later and not any(human.id in p.parent_ids for p in later)


def test_reject_refuses_the_seed_and_a_second_rejection(capsys, db: str) -> None:
    seed = store_briefs(db)[0]
    rc, _, err = cli(capsys, "reject", str(seed.id), "--why", "x", "--db", db)
    assert rc == 2 and "seed" in err
    other = next(p for p in store_briefs(db) if p.origin != "seed")
    assert cli(capsys, "reject", str(other.id), "--why", "hack", "--db", db)[0] == 0
    rc, _, err = cli(capsys, "reject", str(other.id), "--why", "again", "--db", db)
    assert rc == 2 and "already rejected" in err
    with Store(db) as store:
        rejected = store.get_program(other.id)
    assert rejected.rejected_reason == "hack" and rejected.rejected_by and rejected.rejected_at is not None


# --------------------------------------------------------------------------------------------- the gap rule


def test_gap_rule_flags_a_gap_that_widened_past_the_seeds() -> None:
    assert relative_gap(10.0, 9.0, maximize=True) == pytest.approx(0.1)
    assert relative_gap(4.0, 5.0, maximize=False) == pytest.approx(0.25)
    assert relative_gap(4.0, 3.0, maximize=False) == pytest.approx(-0.25)  # better on held-out
    seed = relative_gap(5.0, 5.2, maximize=False)  # the inputs differ: the seed has a gap of its own
    assert not gap(4.0, 4.2, maximize=False, baseline=seed).flagged
    widened = gap(3.0, 4.0, maximize=False, baseline=seed)
    assert widened.flagged and "OVERFIT?" in widened.describe()
    edge = 0.05 + WIDENING_LIMIT
    assert not gap(100.0, 100.0 - 100 * edge + 0.01, maximize=True, baseline=0.05).flagged
    assert gap(100.0, 100.0 - 100 * edge - 0.01, maximize=True, baseline=0.05).flagged
    missing = gap(4.0, None, maximize=False, baseline=seed)
    assert missing.relative is None and not missing.flagged and missing.describe() == "-"


@pytest.mark.parametrize("command", [["runs"], ["show", "insp"], ["best", "insp"], ["program", "1"]])
def test_looking_at_a_database_that_is_not_there_says_so_and_creates_nothing(capsys, tmp_path: Path, command):
    missing = tmp_path / "typo" / "evoforge.db"
    rc, _out, err = cli(capsys, *command, "--db", f"sqlite:///{missing}")
    assert rc != 0 and "no evoforge database at" in err and "--db" in err
    assert not missing.exists() and not missing.parent.exists()


def test_a_resume_shows_its_new_budget_and_its_idle_gap_is_not_counted(capsys, db: str) -> None:
    rc, out, _ = cli(capsys, "show", "insp", "--db", db, "--json")
    assert rc == 0 and json.loads(out)["config"]["run"]["budget"] == 50  # resumed with --budget 50, not 20
    with Store(db) as store:
        run = analysis.open_run(store, "insp")
        before = analysis.active_seconds(store, run)
        time.sleep(1.5)  # a stopped run waiting: this must not count as searching
        store.record_event(run.id, "resume", {"budget": 50})
        after = analysis.active_seconds(store, analysis.open_run(store, "insp"))
    assert before is not None and after == pytest.approx(before, abs=1e-6)


def test_a_program_added_while_the_run_waits_does_not_count_as_searching(db: str) -> None:
    from evoforge.db import NewProgram
    from evoforge.engine.program.source import code_hash

    with Store(db) as store:
        run = analysis.open_run(store, "insp")
        before = analysis.active_seconds(store, run)
        time.sleep(1.5)  # the run is finished and waits; then a person adds a program, then it resumes
        store.record_candidate(run.id, program=NewProgram(island=0, origin="human", code=HUMAN,
                                                          code_hash=code_hash(HUMAN + "#2"), status="ok", score=3.0,
                                                          scores={"x": 3.0}))
        store.record_event(run.id, "resume", {"budget": 50})
        after = analysis.active_seconds(store, analysis.open_run(store, "insp"))
    assert before is not None and after == pytest.approx(before, abs=1e-6)


# ------------------------------------------------------------------------------------------------ start-up


HEAVY = ("litellm", "numba", "matplotlib", "ray", "sklearn", "numpy", "alembic", "sqlalchemy.orm",
         "evoforge.evaluators.sandbox")


def test_looking_at_a_run_imports_none_of_the_search_machinery(db: str) -> None:
    """The inspection commands answer fast because they import only the database layer and the views."""
    with Store(db) as store:
        program = best_proposed(db)
        assert store.get_run("insp") is not None
    commands = [["runs"], ["show", "insp"], ["best", "insp", "-n", "3"], ["program", str(program)],
                ["lineage", str(program)], ["runs", "--json"], ["show", "insp", "--json"]]
    script = ("import contextlib, io, json, sys\nfrom evoforge.engine.cli.main import main\n"
              "with contextlib.redirect_stdout(io.StringIO()) as out:\n    rc = main(sys.argv[1:])\n"
              f"print(json.dumps([rc, len(out.getvalue()), [m for m in {HEAVY!r} if m in sys.modules]]))")
    for command in commands:
        proc = subprocess.run([sys.executable, "-c", script, *command, "--db", db], capture_output=True, text=True,
                              cwd=REPO, timeout=120)
        assert proc.returncode == 0, proc.stderr
        rc, printed, loaded = json.loads(proc.stdout)
        assert rc == 0 and printed > 0, command
        assert loaded == [], f"evoforge {' '.join(command)} imported {loaded}"
