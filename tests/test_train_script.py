"""The training-script example, problems/train_script.py (issue 15): the blocks of train_project/train.py tuned under
a fixed budget of steps, in real sandboxes with real SQLite, by the offline proposer and through a real
OpenAI-speaking server; the exported files run on their own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.analysis import export
from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import run_search
from evoforge.evaluators import SandboxPool, load_problem
from evoforge.evaluators.project import program_text

REPO = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = REPO / "problems" / "train_script.py"
PROJECT = REPO / "problems" / "train_project"

MOMENTUM = """Larger batches, a higher rate and heavy-ball momentum use the 300 steps better.

train.py:hyperparameters
<<<<<<< SEARCH
LEARNING_RATE = 0.05
BATCH_SIZE = 16
=======
LEARNING_RATE = 0.1
BATCH_SIZE = 64
>>>>>>> REPLACE

train.py:hyperparameters
<<<<<<< SEARCH
MOMENTUM = 0.0
=======
MOMENTUM = 0.9
>>>>>>> REPLACE
"""


@pytest.fixture(scope="module")
def problem():
    return load_problem(TRAIN_SCRIPT)


def best_and_seed(db: str, name: str):
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None and run.status == "finished"
        ranked = store.best_programs(run.id, 10_000, maximize=False)
        return run, ranked[0], next(p for p in ranked if p.origin == "seed")


def check_export(run, program, tmp_path: Path) -> None:
    """`python best.py` scores the exported blocks as the run did; `python train.py` trains and prints its loss."""
    target = tmp_path / "export" / "best.py"
    export.write(run, program, target)
    done = subprocess.run([sys.executable, "best.py"], cwd=target.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = float(re.search(r"training score ([0-9.e+-]+)", done.stdout).group(1))
    assert printed == pytest.approx(program.score, abs=1e-5)  # best.py prints six digits
    folder = target.parent / "train_project"
    done = subprocess.run([sys.executable, "train.py"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the script's own split is the problem's at split_seed 0: the same validation images, the same loss
    printed = float(re.search(r"validation loss ([0-9.]+)", done.stdout).group(1))
    assert printed == pytest.approx(program.score, abs=1e-4)


def test_the_seed_trains_and_the_case_holds_only_training_images(problem) -> None:
    case = problem.inputs["validation"]
    assert sorted(case) == ["evaluate_on", "split_seed", "train_seed", "x", "y"]
    assert np.asarray(case["x"]).shape == (1000, 64) and np.asarray(case["y"]).shape == (1000,)
    with SandboxPool(problem, 1) as pool:
        seed = pool.evaluate(problem.seed_code)
        again = pool.evaluate(problem.seed_code)
    assert seed.status == "ok", seed.error
    assert 0.3 < seed.score < 2.3 and 0.5 < seed.metrics["accuracy"] < 0.95  # it learns, with room to learn more
    assert again.score == seed.score  # seeded: the same weights every time


@pytest.mark.parametrize("blocks, reason", [
    ({"train.py:hyperparameters": "STEPS = 3000\nLEARNING_RATE = 0.1\n"}, "rebinds STEPS"),
    ({"train.py:update": "    global gradients\n    gradients = None\n"}, "rebinds gradients"),
    # a wider network trains (the update owns the arrays) but is refused by the trusted check of the weights
    ({"train.py:update": "    if step == 0:\n        params['w1'] = np.ones((64, 64)) * 0.1\n"
                         "        params['b1'] = np.zeros(64)\n        params['w2'] = np.ones((64, 10)) * 0.1\n"},
     "w1 must be numbers of shape (64, 32)"),
    ({"train.py:update": "    params['w1'] *= np.inf\n"}, "not finite"),
])
def test_a_block_cannot_change_the_budget_or_the_network(problem, blocks, reason) -> None:
    code = program_text({**problem.project.blocks_of(problem.seed_code), **blocks})
    with SandboxPool(problem, 1) as pool:
        evaluation = pool.evaluate(code)
    assert evaluation.status in ("error", "invalid") and reason in (evaluation.error or ""), evaluation.error


def test_an_offline_search_lowers_the_validation_loss(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    result = run_search(RunConfig(problem=str(TRAIN_SCRIPT), name="offline", budget=30, seed=0), db, progress=False)
    assert result.status == "finished"
    run, best, seed = best_and_seed(db, "offline")
    assert best.origin == "offline" and best.score < 0.8 * seed.score
    assert best.metrics["accuracy"] > seed.metrics["accuracy"]
    check_export(run, best, tmp_path)


def test_an_llm_answer_editing_the_hyperparameters_lowers_the_validation_loss(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with OpenAIServer(lambda request: MOMENTUM) as server:
        models = ModelConfig(models=(ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10),))
        config = RunConfig(problem=str(TRAIN_SCRIPT), name="llm", budget=2, seed=0, models=models)
        assert run_search(config, db, progress=False).status == "finished"
        first = server.completion_requests[0].messages[-1]["content"]
    assert "# EVOLVE-BLOCK-START train.py:hyperparameters" in first and "STEPS = 300" in first
    run, best, seed = best_and_seed(db, "llm")
    assert "MOMENTUM = 0.9" in best.code and best.score < 0.3 * seed.score
    assert best.metrics["accuracy"] > 0.93
    # the held-out test loss of a new best is measured and stored, as for every problem: close to validation's
    assert best.held_out_score is not None and abs(best.held_out_score - best.score) < 0.1
    check_export(run, best, tmp_path)
