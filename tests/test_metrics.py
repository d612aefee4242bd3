"""Several metrics and feedback: score() returning named metrics and text, checked, stored, ranked and shown, and
the feedback reaching the prompts of a program's children. Real problem files, real sandboxes, real databases."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from openai_server import OpenAIServer

from evoforge.db import NewEvaluation, NewProgram, Store
from evoforge.engine.analysis import report
from evoforge.engine.analysis import views as inspect
from evoforge.engine.cli.main import main
from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import run_search
from evoforge.evaluators import InvalidOutput, ProblemError, SandboxPool, load_problem
from evoforge.islands import IslandConfig

REPO = Path(__file__).resolve().parent.parent
JOBS = str(REPO / "problems" / "job_schedule.py")
METRICS = {"weighted_completion", "late_jobs"}


def problem_file(tmp_path: Path, score_body: str, settings: str = "Settings()") -> Path:
    path = tmp_path / "metric_problem.py"
    path.write_text(textwrap.dedent('''\
        """A toy problem whose score returns named metrics."""
        from evoforge import Scored, Settings, evolve

        SETTINGS = {settings}

        @evolve
        def f(x):
            return x + 1

        def solve(x):
            return f(x)

        def score(x, y):
        {body}

        def inputs(params):
            return {{"a": 1, "b": 3}}
        ''').format(settings=settings, body=textwrap.indent(textwrap.dedent(score_body), "    ")))
    return path


@pytest.mark.parametrize(("body", "settings", "refusal"), [
    ("return {'speed': 1.0}", "Settings()",
     r"score\(\) returned metrics \['speed'\] without the primary metric 'score'.*\(metric_problem.py:13\)"),
    ("return {'cost': float(y), 'size': float('nan')}", "Settings(primary_metric='cost')",
     r"returned nan as metric 'size', not a finite number \(metric_problem.py:13\)"),
    ("return Scored(1.0, feedback=3)", "Settings()", r"Scored\(feedback=int\), not text"),
    ("return {1: 2.0}", "Settings()", r"a metric named 1; name metrics with strings"),
])
def test_what_score_returns_is_checked_with_the_file_and_line(tmp_path: Path, body: str, settings: str,
                                                             refusal: str) -> None:
    problem = load_problem(problem_file(tmp_path, body, settings))
    with pytest.raises(InvalidOutput, match=refusal):
        problem.score_input(1, 2)


@pytest.mark.parametrize(("settings", "refusal"), [
    ("Settings(constraints={'t': 'fast'})", "Settings(constraints="),
    ("Settings(metrics_maximize={'t': 1})", "Settings(metrics_maximize="),
    ("Settings(primary_metric='')", "Settings(primary_metric=''"),
])
def test_bad_metric_settings_name_the_line(tmp_path: Path, settings: str, refusal: str) -> None:
    with pytest.raises(ProblemError) as info:
        load_problem(problem_file(tmp_path, "return float(y)", settings))
    assert "metric_problem.py:4:" in str(info.value) and refusal in str(info.value)


def test_metrics_are_aggregated_like_the_score_and_feedback_is_bounded_and_escaped(tmp_path: Path) -> None:
    body = """\
        return Scored({"cost": float(y), "size": 10.0 * x}, feedback="\\x1b[2J" + "w" * 3000 if x == 3 else "ok")
        """
    problem = load_problem(problem_file(tmp_path, body, "Settings(primary_metric='cost', maximize=False)"))
    with SandboxPool(problem, workers=1) as pool:
        ev = pool.evaluate(problem.seed_code)
    assert ev.status == "ok" and ev.score == 3.0  # outputs 2 and 4, mean 3
    assert ev.metrics == {"cost": 3.0, "size": 20.0}
    assert ev.feedback is not None and len(ev.feedback) <= 2000
    assert ev.feedback.startswith("input a: ok\ninput b: \\x1b[2Jwww") and "\x1b" not in ev.feedback
    assert ev.feedback.endswith("[... cut]")


def test_metrics_and_feedback_round_trip_in_the_store(db_url: str) -> None:
    with Store(db_url) as store:
        run = store.create_run(name="m", problem_name="p", problem_path="p.py", problem_source='"""p"""',
                               problem_hash="h", config={}, seed=0)
        recorded = store.record_candidate(
            run.id, program=NewProgram(island=0, origin="seed", code="x", code_hash="h", status="ok", score=1.0,
                                       metrics={"score": 1.0, "t": 2.5}, feedback="input a: 2 late"),
            evaluations=[NewEvaluation(kind="train", status="ok", score=1.0, metrics={"score": 1.0, "t": 2.5},
                                       feedback="input a: 2 late")])
        program = store.get_program(recorded.program_id)
        assert program.metrics == {"score": 1.0, "t": 2.5} and program.feedback == "input a: 2 late"
        [ev] = store.evaluations(program.id)
        assert ev.metrics == {"score": 1.0, "t": 2.5} and ev.feedback == "input a: 2 late"
        plain = store.record_candidate(run.id, program=NewProgram(island=0, origin="seed", code="y", code_hash="g",
                                                                  status="ok", score=2.0))
        assert plain.program_id != program.id
        assert store.program_metrics(run.id) == {program.id: {"score": 1.0, "t": 2.5}}  # one score: no metrics
    with pytest.raises(ValueError, match=r"program metrics\['t'\] is inf"):
        NewProgram(island=0, origin="seed", code="x", code_hash="h", status="ok", score=1.0,
                   metrics={"t": float("inf")})


# Whole new versions of priority(): due dates first (few late jobs), weighted shortest first (low weighted
# completion, more late jobs), mixtures of the two, and one that fails.
VARIANTS = ["return processing_time / weight", "return float(processing_time)",
            "return due_date + 3.0 * processing_time / weight", "return due_date + 30.0 * processing_time / weight",
            "return -float(due_date)", "return None"]


def _answer(i: int) -> str:
    return ("```python\ndef priority(processing_time: int, weight: int, due_date: int) -> float:\n"
            f"    {VARIANTS[i % len(VARIANTS)]}\n```\n")


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding run 'jobs': the scheduling problem searched with answers from the test server."""
    db = f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'runs.db'}"
    answers = iter(range(10_000))
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", "sk-test-key")
    try:
        with OpenAIServer(lambda request: _answer(next(answers))) as server:
            models = ModelConfig(models=(ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10),))
            config = RunConfig(offline_share=0.0, problem=JOBS, name="jobs", budget=12, models=models,
                               islands=IslandConfig(num_islands=1, parents_per_prompt=2))
            assert run_search(config, db, progress=False).status == "finished"
    finally:
        mp.undo()
    return db


def _ok_programs(store: Store) -> list:
    run = store.get_run("jobs")
    assert run is not None
    return store.best_programs(run.id, 1000, maximize=False)


def test_a_search_stores_every_metric_of_every_program(searched: str) -> None:
    problem = load_problem(JOBS)
    with Store(searched) as store:
        programs = _ok_programs(store)
        assert len(programs) >= 5
        for p in programs:
            assert set(p.metrics) == METRICS and p.metrics["weighted_completion"] == p.score
            [train] = [e for e in store.evaluations(p.id) if e.kind == "train"]
            assert train.metrics == p.metrics and train.feedback == p.feedback
            assert p.feedback is not None and p.feedback.startswith("input jobs0: ")
        seed = next(p for p in programs if p.origin == "seed")
    # The seed runs the jobs by due date: each metric is the mean over the inputs of what score() said.
    per_input = [problem.score_input(jobs, sorted(range(len(jobs)), key=lambda i: (jobs[i][2], i))).metrics
                 for jobs in problem.inputs.values()]
    for name in METRICS:
        assert seed.metrics[name] == pytest.approx(sum(m[name] for m in per_input) / len(per_input))


def test_ranking_by_a_metric_by_a_pareto_front_and_under_a_constraint(searched: str) -> None:
    with Store(searched) as store:
        programs = _ok_programs(store)
        ranked = json.loads(inspect.best(store, "jobs", 100, as_json=True))
        by_late = json.loads(inspect.best(store, "jobs", 100, as_json=True, by="late_jobs"))
        front = json.loads(inspect.best(store, "jobs", 100, as_json=True, pareto=("weighted_completion", "late_jobs")))
    within = [p for p in programs if p.metrics["late_jobs"] <= 0.25]
    over = [p for p in programs if p.metrics["late_jobs"] > 0.25]
    assert within and over, "the answers must give programs on both sides of the constraint"

    # The constraint first, then the primary (lower is better), ties to the earlier program.
    expected = sorted(within, key=lambda p: (p.score, p.seq)) + sorted(over, key=lambda p: (p.score, p.seq))
    assert [r["id"] for r in ranked] == [p.id for p in expected]
    assert all(r["over_constraints"] == ([] if r["metrics"]["late_jobs"] <= 0.25 else ["late_jobs"]) for r in ranked)
    assert min(p.score for p in over) < min(p.score for p in within)  # an over program has the best primary

    expected = sorted(within, key=lambda p: (p.metrics["late_jobs"], p.seq)) + sorted(
        over, key=lambda p: (p.metrics["late_jobs"], p.seq))
    assert [r["id"] for r in by_late] == [p.id for p in expected]

    def beaten(p) -> bool:
        return any(q.score <= p.score and q.metrics["late_jobs"] <= p.metrics["late_jobs"]
                   and (q.score, q.metrics["late_jobs"]) != (p.score, p.metrics["late_jobs"]) for q in within)

    assert {r["id"] for r in front} == {p.id for p in within if not beaten(p)}
    assert [r["metrics"]["weighted_completion"] for r in front] == sorted(
        r["metrics"]["weighted_completion"] for r in front)


def test_show_best_program_and_report_show_every_metric_and_the_feedback(searched: str,
                                                                        capsys: pytest.CaptureFixture) -> None:
    with Store(searched) as store:
        programs = _ok_programs(store)
        shown = inspect.show(store, "jobs", as_json=False)
        best = inspect.best(store, "jobs", 3, as_json=False)
        one = inspect.program(store, programs[0].id, as_json=False)
        one_json = json.loads(inspect.program(store, programs[0].id, as_json=True))
        html = report.render(store, "jobs")
    for text in (shown, best):
        words = " ".join(text.split())  # the legend wraps at 80 columns
        assert "weighted_completion" in words and "constraints late_jobs <= 0.25" in words
    assert "OVER late_jobs" in shown
    assert f"late_jobs {programs[0].metrics['late_jobs']:.6g}" in one
    assert "feedback from score()" in one and "input jobs0: " in one
    assert one_json["metrics"] == programs[0].metrics and one_json["evaluations"][0]["feedback"] == programs[0].feedback
    assert "late_jobs" in html and "feedback from score()" in html

    db = ["--db", searched]
    assert main(["best", "jobs", *db, "--by", "late_jobs", "-n", "2"]) == 0
    assert "best 2 by late_jobs (lower is better)" in capsys.readouterr().out
    assert main(["best", "jobs", *db, "--by", "speed"]) == 2
    assert "no metric 'speed' in this run" in capsys.readouterr().err
    assert main(["best", "jobs", *db, "--pareto", "late_jobs"]) == 2
    assert "name two different metrics" in capsys.readouterr().err


def test_feedback_reaches_the_prompts_of_the_children(searched: str) -> None:
    with Store(searched) as store:
        run = store.get_run("jobs")
        assert run is not None
        proposals = store.proposals(run.id)
        checked = 0
        for proposal in proposals:
            prompt = json.loads(proposal.prompt)[-1]["content"]
            for parent in store.get_programs(list(proposal.parent_ids)):
                assert parent.feedback
                assert "Evaluator feedback:\n<run-output id=" in prompt  # fenced as data
                assert "\n| " + parent.feedback.splitlines()[0] + "\n" in prompt
                assert "Metrics: late_jobs " in prompt
                checked += 1
    assert checked >= len(proposals) > 0


def test_the_plot_draws_each_metric_with_its_direction_running_best_and_limit(searched: str, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    import matplotlib.image
    import numpy as np

    from evoforge.engine.analysis.plots import figure
    from evoforge.engine.analysis.queries import curve, metric_curves

    with Store(searched) as store:
        run = store.get_run("jobs")
        assert run is not None
        c = curve(store, run)
        metrics = metric_curves(store, run, c)
        late = {p.id: p.metrics["late_jobs"] for p in _ok_programs(store)}  # no person rejected any
    [m] = metrics  # the primary is the score panels' business
    assert (m.name, m.maximize, m.limit) == ("late_jobs", False, 0.25)
    expected = [late.get(pid, np.nan) for pid in c.program_id.tolist()]
    np.testing.assert_array_equal(m.value, expected)

    axes = figure(c, "jobs", metrics).axes
    assert len(axes) == 5 and axes[3].get_title() == "held-out score of the running best"
    panel = axes[4]
    assert panel.get_ylabel() == "late_jobs (lower is better)"
    [best, limit] = panel.get_lines()
    drawn = np.asarray(best.get_ydata(), dtype=float)
    assert not np.isnan(drawn).any() and (np.diff(drawn) <= 0).all()  # lower is better: it never rises
    assert drawn.tolist() == np.fmin.accumulate(np.asarray(expected, dtype=float)).tolist()
    assert np.nanmax(expected) > 0.25 >= drawn[-1]  # candidates on both sides of the drawn limit
    assert limit.get_linestyle() == "--" and list(limit.get_ydata()) == [0.25, 0.25]
    assert "limit 0.25" in panel.get_legend_handles_labels()[1]

    path = tmp_path / "jobs.png"
    assert main(["plot", "jobs", "--db", searched, "-o", str(path)]) == 0
    assert "and 1 metrics besides the primary" in capsys.readouterr().err
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 900 + 300 and pixels.std() > 0.05  # taller than the four panels, and not blank


def test_a_run_scored_by_one_number_keeps_the_four_panels(tmp_path: Path) -> None:
    from evoforge.engine.analysis.plots import figure
    from evoforge.engine.analysis.queries import curve, metric_curves

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    problem = problem_file(tmp_path, "return float(y)")
    config = RunConfig(problem=str(problem), name="one", budget=0, workers=1, islands=IslandConfig(num_islands=1))
    assert run_search(config, db, progress=False).status == "finished"
    with Store(db) as store:
        run = store.get_run("one")
        assert run is not None
        c = curve(store, run)
        assert store.program_metrics(run.id) == {} and metric_curves(store, run, c) == []
    assert len(c.evaluated) == 1 and len(figure(c, "one").axes) == 4
