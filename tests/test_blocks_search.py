"""Searches of the block-based example, problems/merge_sort.py (issue 15): real sandboxes, real SQLite, the offline
proposer and a real OpenAI-speaking server. Each improves the primary metric, keeps the constraint, and `export`
writes a problem file and a project folder that import and run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.analysis import export, queries, views
from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import resume_search, run_search
from evoforge.evaluators import ProblemError, load_problem

REPO = Path(__file__).resolve().parent.parent
MERGE_SORT = REPO / "problems" / "merge_sort.py"
PROJECT = REPO / "problems" / "sort_project"
_MARKER = re.compile(r"^[ \t]*# EVOLVE-BLOCK-(START|END).*$", re.MULTILINE)

BOTH_FILES = """Two changes: shorter insertion runs, and no merge work when the runs are already in order.

sorter.py:settings
<<<<<<< SEARCH
CUTOFF = 64  # runs of at most this many items are sorted by insertion; longer ones are split in two and merged
=======
CUTOFF = 8  # shorter runs: insertion costs about n*n/4 comparisons, merging about n
>>>>>>> REPLACE

merging.py:1
<<<<<<< SEARCH
    out = []
    i = j = 0
=======
    if left and right and not less(right[0], left[-1]):
        return left + right  # already in order: one comparison
    out = []
    i = j = 0
>>>>>>> REPLACE
"""

BINARY_INSERTION = """Find each item's place by bisection:

<<<<<<< BLOCK sorter.py:small
out = []
for item in items:
    low, high = 0, len(out)
    while low < high:
        middle = (low + high) // 2
        if less(item, out[middle]):
            high = middle
        else:
            low = middle + 1
    out.insert(low, item)
return out
>>>>>>> BLOCK
"""


def outside(text: str) -> list[str]:
    pieces, at, inside = [], 0, False
    for match in _MARKER.finditer(text):
        if not inside:
            pieces.append(text[at:match.end()])
        else:
            at = match.start()
        inside = not inside
    return [*pieces, text[at:]]


def best_and_seed(db: str, name: str):
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None and run.status == "finished"
        ranked = store.best_programs(run.id, 10_000, maximize=False)
        seed = next(p for p in ranked if p.origin == "seed")
        return run, ranked[0], seed


def check_export(run, program, tmp_path: Path) -> None:
    """The exported problem file scores the program; its project folder holds the original files outside the
    blocks, byte for byte, and imports and runs on its own."""
    target = tmp_path / "export" / "best.py"
    export.write(run, program, target)
    folder = target.parent / "sort_project"
    for original in PROJECT.glob("*.py"):
        written = (folder / original.name).read_text()
        assert outside(written) == outside(original.read_text())
    done = subprocess.run([sys.executable, "best.py"], cwd=target.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    training = float(re.search(r"training score ([0-9.e+-]+)", done.stdout).group(1))
    assert training == pytest.approx(program.score)
    done = subprocess.run([sys.executable, "-c", "import json, sorter; print(json.dumps(sorter.sort_counted("
                           "[5, 3, 9, 1, 4])))"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["order"] == [3, 1, 4, 0, 2]


def test_an_offline_search_improves_the_sort_and_keeps_it_correct(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    result = run_search(RunConfig(problem=str(MERGE_SORT), name="offline", budget=40, seed=1), db, progress=False)
    assert result.status == "finished"
    run, best, seed = best_and_seed(db, "offline")
    assert best.score is not None and seed.score is not None and best.score < seed.score
    assert best.metrics["misordered"] == 0.0  # the constraint holds
    assert best.origin == "offline" and best.code.startswith("# EVOLVE-BLOCK ")
    with Store(db) as store:  # lineage, the program's page and its diff work on the blocks
        chain = queries.lineage(store, best.id)
        text = views.program(store, best.id, as_json=False)
    assert chain[0].origin == "seed" and chain[-1].id == best.id and len(chain) >= 2
    assert "# EVOLVE-BLOCK sorter.py:settings" in text and "diff against program" in text
    assert "<<<<<<< SEARCH" in text  # the offline answer that made it, naming its block
    check_export(run, best, tmp_path)


def test_an_llm_search_with_edits_across_blocks_of_two_files_improves_the_sort(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")

    def responder(request: dict) -> str:
        prompt = request["messages"][-1]["content"]
        return BOTH_FILES if "CUTOFF = 64" in prompt else BINARY_INSERTION

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with OpenAIServer(responder) as server:
        models = ModelConfig(models=(ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10),))
        config = RunConfig(problem=str(MERGE_SORT), name="llm", budget=4, seed=0, models=models)
        result = run_search(config, db, progress=False)
        prompts = [r.messages[-1]["content"] for r in server.completion_requests]
    assert result.status == "finished" and prompts
    first = prompts[0]  # the whole files, blocks marked and named, the code around them to read
    assert "### sorter.py" in first and "### merging.py" in first and "def sort_counted(values):" in first
    assert "# EVOLVE-BLOCK-START sorter.py:settings" in first and "# EVOLVE-BLOCK-START merging.py:1" in first
    run, best, seed = best_and_seed(db, "llm")
    assert best.metrics["misordered"] == 0.0 and seed.score is not None and best.score is not None
    assert best.score < 0.6 * seed.score
    assert "CUTOFF = 8" in best.code and "return left + right" in best.code  # both files' blocks changed
    problem = load_problem(MERGE_SORT)
    files = problem.project.check(best.code)
    assert all(outside(files[p]) == outside(problem.project.files[p]) for p in files)
    check_export(run, best, tmp_path)


def test_a_project_run_resumes_and_refuses_a_project_changed_since(tmp_path: Path) -> None:
    shutil.copy(MERGE_SORT, tmp_path / "merge_sort.py")
    shutil.copytree(PROJECT, tmp_path / "sort_project")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run_search(RunConfig(problem=str(tmp_path / "merge_sort.py"), name="r", budget=3, seed=2), db, progress=False)
    assert resume_search("r", db, budget=5, progress=False).status == "finished"
    merging = tmp_path / "sort_project" / "merging.py"
    merging.write_text(merging.read_text().replace("into one", "into a single one"))  # outside the blocks
    with pytest.raises(ProblemError, match="changed since run 'r' started") as refused:
        resume_search("r", db, budget=8, progress=False)
    assert f"evoforge export r --original -o {tmp_path / 'merge_sort.py'}" in str(refused.value)
    with Store(db) as store:  # what that command does: the file and the folder back as the run stored them
        export.write_original(store.get_run("r"), tmp_path / "merge_sort.py", replace=True)
    assert "into one" in merging.read_text() and "into a single one" not in merging.read_text()
    assert resume_search("r", db, budget=8, progress=False).status == "finished"
