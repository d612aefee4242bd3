"""Problem files a new user wrote from the README alone (freshuser8), and what went wrong with them.

The files (tests/fixtures/): a line-breaking heuristic over text whose score returns Scored metrics and feedback,
searched through the README's local mutation server; greedy graph colouring with two evolved functions and a
cascade; a shortest-superstring merge rule over strings with held-out data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from openai_server import OpenAIServer

import evoforge
from evoforge.db import Store
from evoforge.engine.cli.main import main
from evoforge.engine.program.patching import apply_response
from evoforge.engine.propose.prompts import ParentView, build_messages

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
WRAP = FIXTURES / "line_wrap_feedback_problem.py"
COLORING = FIXTURES / "coloring_two_functions_problem.py"
SUPERSTRING = FIXTURES / "superstring_text_problem.py"
sys.path.insert(0, str(REPO / "benchmarks"))
from mutation_server import MutationResponder, serve, versions  # noqa: E402  (benchmarks/ is not a package)

KEEP = "def keep(slack: int, words_on_line: int, word_len: int) -> bool:\n    return slack >= 0\n"


def test_the_mutation_server_finds_a_version_shown_with_metrics_and_feedback() -> None:
    # A problem whose score returns Scored(dict, feedback) gets 'Metrics:' and 'Evaluator feedback:' lines between
    # the version's heading and its code; the server answered 'I see no program to improve.' to every prompt
    parent = ParentView(KEEP, 6.4, "ok", metrics={"score": 6.4, "lines": 11.5},
                        feedback="input w: 13 lines; most slack on line 5")
    prompt = build_messages("Break lines.", ["keep"], [parent], maximize=False)[1]["content"]
    assert "Evaluator feedback" in prompt and "Metrics:" in prompt
    assert versions(prompt) == ([KEEP.rstrip("\n")], 0)
    answers = [MutationResponder(1)({"messages": [{"role": "user", "content": prompt}]}) for _ in range(5)]
    assert all(apply_response(a, KEEP, ["keep"]) != KEEP for a in answers)


def test_a_search_through_the_mutation_server_applies_answers_for_a_problem_with_feedback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "none")
    server = serve(0)
    try:
        db = f"sqlite:///{tmp_path / 'r.db'}"
        run = evoforge.run(str(WRAP), budget=8, db=db, seed=1, model="openai/mutation", api_base=server.base_url,
                           name="wr", concurrency=1)
    finally:
        server.stop()
    assert run.status == "finished"
    with Store(db) as store:
        info = store.get_run("wr")
        assert info is not None
        proposals = store.proposals(info.id)
    assert len(proposals) == 8 and sum(p.applied for p in proposals) >= 6


@pytest.mark.parametrize("problem", [COLORING, SUPERSTRING])
def test_the_other_two_problems_search_and_export_their_best(tmp_path: Path, problem: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    run = evoforge.run(str(problem), budget=6, db=db, seed=1, name="r")
    assert run.status == "finished"
    out = tmp_path / "best.py"
    assert main(["export", "r", "--db", db, "-o", str(out)]) == 0
    printed = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, check=True).stdout
    assert f"training score {run.best(1)[0].score:.6g}" in printed


def test_show_says_why_proposals_gave_no_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # 40 of 40 proposals gave 'no program 40' in show and nothing said why: the reason was only in the database
    monkeypatch.setenv("OPENAI_API_KEY", "none")
    server = OpenAIServer("I see no program to improve.").start()
    try:
        db = f"sqlite:///{tmp_path / 'r.db'}"
        evoforge.run(str(COLORING), budget=3, db=db, seed=1, model="openai/mutation", api_base=server.base_url,
                     name="c", concurrency=1, offline_share=0)
    finally:
        server.stop()
    assert main(["show", "c", "--db", db]) == 0
    text = capsys.readouterr().out
    assert "no program 3" in text
    assert "no program 3 x response could not be applied: no SEARCH/REPLACE block" in text
    assert main(["show", "c", "--db", db, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["no_program"]
    assert [f["count"] for f in shown] == [3] and "no SEARCH/REPLACE block" in shown[0]["reason"]


def test_a_str_annotation_does_not_keep_a_program_from_numba(capsys: pytest.CaptureFixture[str]) -> None:
    # merge_score(left: str, right: str, overlap: int) under numba=True ran as Python, with the reason "`str` is not
    # compiled (numba's text of a number differs from Python's)": the annotation was read as a call of str()
    assert main(["eval", str(SUPERSTRING), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["eval", str(SUPERSTRING), "--set", "numba=true", "--json"]) == 0
    compiled = json.loads(capsys.readouterr().out)
    assert compiled["numba"] == "compiled" and compiled["scores"] == plain["scores"]
