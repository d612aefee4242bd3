"""What a person must see of a run's best (issue 13): held-out failures, SUSPECT scores, the seed beside the best,
and candidate output that cannot drive a terminal. A real search in a real SQLite file, real sandboxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoforge.engine.analysis.textfmt import printable
from evoforge.engine.cli.main import main
from evoforge.engine.run.config import RunConfig
from evoforge.engine.run.search import run_search
from evoforge.islands import IslandConfig

BOUNDED = Path(__file__).parent / "fixtures" / "bounded_problem.py"
PAST_THE_BOUND = "def f(x):\n    return x * 200\n"  # 300 on the training inputs: past the bound of 100
FAILS_HELD_OUT = "def f(x):\n    while x == 3:\n        pass\n    return x * 3\n"  # hangs on the held-out input
SHOUTS = "def f(x):\n    print('\\x1b[2J\\x1b]0;owned\\x07cleared')\n    raise ValueError('\\x1b[31mred\\u202e')\n"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int]]:
    folder = tmp_path_factory.mktemp("trust")
    url = f"sqlite:///{folder / 'runs.db'}"
    config = RunConfig(problem=str(BOUNDED), name="bounded", budget=0, workers=1,
                       islands=IslandConfig(num_islands=1, reset_period=10))
    assert run_search(config, url, progress=False).status == "finished"
    ids = {}
    for key, code in (("suspect", PAST_THE_BOUND), ("failing", FAILS_HELD_OUT)):
        (folder / f"{key}.py").write_text(code)
        assert main(["add", "bounded", str(folder / f"{key}.py"), "--db", url]) == 0
        best = json.loads(_out(["best", "bounded", "-n", "5", "--json", "--db", url]))
        ids[key] = max(p["id"] for p in best)
    return url, ids


def _out(args: list[str]) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    return buffer.getvalue()


def test_suspect_and_failed_held_out_show_in_best_runs_and_report(db, tmp_path: Path) -> None:
    url, ids = db
    best = {p["id"]: p for p in json.loads(_out(["best", "bounded", "-n", "5", "--json", "--db", url]))}
    assert best[ids["suspect"]]["suspect"] is True and best[ids["suspect"]]["rank"] == 1
    failing = best[ids["failing"]]
    assert failing["gap"]["held_out_failed"] is True and failing["gap"]["held_out_status"] == "timeout"
    assert failing["suspect"] is False and failing["held_out_score"] is None
    assert failing["seed"]["held_out_score"] == 6.0  # the seed's own, beside every best
    text = _out(["best", "bounded", "-n", "5", "--db", url])
    assert "SUSPECT" in text and "FAILED timeout" in text and "seed       score 3, held-out 6" in text
    run = next(r for r in json.loads(_out(["runs", "--json", "--db", url])) if r["name"] == "bounded")
    assert run["best_suspect"] is True and run["best_program_id"] == ids["suspect"]
    assert "300?" in _out(["runs", "--db", url])
    show = json.loads(_out(["show", "bounded", "--json", "--db", url]))
    assert [b["suspect"] for b in show["best"]][:1] == [True] and show["seed"]["held_out_score"] == 6.0
    assert main(["report", "bounded", "-o", str(tmp_path / "r.html"), "--db", url]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "SUSPECT" in html and "FAILED" in html


def test_accept_lets_a_suspect_in_and_refuses_others(db, capsys) -> None:
    url, ids = db
    assert main(["accept", str(ids["failing"]), "--why", "x", "--db", url]) == 2
    assert "not SUSPECT" in capsys.readouterr().err
    assert main(["accept", str(ids["suspect"]), "--why", "checked by hand", "--db", url]) == 0
    best = {p["id"]: p for p in json.loads(_out(["best", "bounded", "-n", "5", "--json", "--db", url]))}
    assert best[ids["suspect"]]["suspect"] is False
    assert main(["accept", str(ids["suspect"]), "--why", "again", "--db", url]) == 2


def test_what_a_candidate_prints_cannot_drive_the_terminal(tmp_path: Path, capsys) -> None:
    candidate = tmp_path / "shout.py"
    candidate.write_text(SHOUTS)
    main(["eval", str(BOUNDED), str(candidate)])  # the candidate fails: what matters is how it shows
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b[2J" in out and "\\x1b[31mred\\u202e" in out
    assert printable("a\tb\nc\x1b") == "a\tb\nc\\x1b"


def test_the_plot_marks_a_best_whose_held_out_evaluation_failed(tmp_path: Path) -> None:
    from evoforge.db import Store
    from evoforge.engine.analysis.plots import figure
    from evoforge.engine.analysis.queries import curve

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    config = RunConfig(problem=str(BOUNDED), name="fails-held-out", budget=0, workers=1,
                       islands=IslandConfig(num_islands=1, reset_period=10))
    assert run_search(config, url, progress=False).status == "finished"
    (tmp_path / "failing.py").write_text(FAILS_HELD_OUT)
    assert main(["add", "fails-held-out", str(tmp_path / "failing.py"), "--db", url]) == 0
    with Store(url) as store:
        run = store.get_run("fails-held-out")
        assert run is not None
        c = curve(store, run)
    assert c.best_held_out_failed.tolist() == [False, True]  # the seed's held-out ran; the new best's timed out
    held_out_panel = figure(c, "fails-held-out").axes[3]
    assert "held-out evaluation FAILED" in held_out_panel.get_legend_handles_labels()[1]
    assert main(["plot", "fails-held-out", "-o", str(tmp_path / "curve.png"), "--db", url]) == 0


def test_a_seed_whose_held_out_evaluation_failed_says_so_beside_the_best(tmp_path: Path) -> None:
    """The seed line read 'held-out -' (which the legend calls 'not scored yet') and the legend said the problem
    defines no held_out_inputs, though it does and the seed failed on them."""
    problem = tmp_path / "seed_fails_held_out.py"
    problem.write_text(BOUNDED.read_text().replace("    return x * 2\n",
                                                   "    if x == 3:\n        raise ValueError('too big')\n"
                                                   "    return x * 2\n"))
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    config = RunConfig(problem=str(problem), name="seed-fails", budget=0, workers=1,
                       islands=IslandConfig(num_islands=1, reset_period=10))
    assert run_search(config, url, progress=False).status == "finished"
    for command in ("best", "show"):
        text = " ".join(_out([command, "seed-fails", "--db", url]).split())
        assert "seed score 3, held-out FAILED error" in text, text
        assert "defines no held_out_inputs" not in text
        assert "the seed's own held-out evaluation failed (error), so there is no seed's gap" in text
