"""A project's blocks in the real sandbox (issue 15): the same limits and guarantees as evolved functions.

The project's files, with the candidate's blocks in place, run from memory in the candidate's own process, which
opens no file, never held the problem module, and receives only the arguments of each `PROJECT.call`. Hostile
blocks try what issue 13 lists (read other files, write outside scratch, reach the held-out inputs or the
scorer, forge the counted cost, print fake results) and end refused, failed, or with the honest score only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.evaluators import SandboxPool, load_problem
from evoforge.evaluators.project import program_text

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROBLEM = FIXTURES / "block_problem.py"
MERGE_SORT = Path(__file__).resolve().parent.parent / "problems" / "merge_sort.py"


@pytest.fixture(scope="module")
def problem():
    return load_problem(PROBLEM)


@pytest.fixture(scope="module")
def pool(problem):
    with SandboxPool(problem, 1) as pool:
        yield pool


@pytest.fixture(scope="module")
def unchecked(problem):
    """No language check: what the process itself stops (seccomp, its memory, its limits)."""
    with SandboxPool(problem, 1, check_code=False) as pool:
        yield pool


def with_body(problem, body: str, block: str = "calc.py:body") -> str:
    blocks = problem.project.blocks_of(problem.seed_code)
    blocks[block] = body
    return program_text(blocks)


def test_the_seed_scores_in_the_sandbox_as_it_does_in_process(problem, pool) -> None:
    evaluation = pool.evaluate(problem.seed_code)
    assert evaluation.status == "ok", evaluation.error
    local = {name: problem.score_output(value, problem.module.solve(value)) for name, value in problem.inputs.items()}
    assert evaluation.scores == local == {"a": 3.0, "b": 5.0}
    held = pool.evaluate(problem.seed_code, held_out=True)
    assert held.status == "ok" and held.scores == {"held": 7.0}


def test_a_changed_block_changes_the_score(problem, pool) -> None:
    code = with_body(problem, "    y = x * GAIN\n    total = total + y + 10.0\n")
    assert pool.evaluate(code).scores == {"a": 13.0, "b": 15.0}
    code = with_body(problem, "    factor = 2.0\n", "helpers/scale.py:1")  # the block in the CRLF file of a package
    assert pool.evaluate(code).scores == {"a": 5.0, "b": 9.0}


@pytest.mark.parametrize("body, reason", [
    ("    y = open('/etc/passwd').read()\n    total = float(len(y))\n", "`open` is not available"),
    ("    import os\n    total = float(os.getpid())\n", "import os"),
    ("    import gc\n    total = float(len(gc.get_objects()))\n", "import gc"),
    ("    total = float(len(scale.__globals__))\n", "attribute `.__globals__`"),
    ("    global OFFSET\n    OFFSET = 1000.0\n    total = x\n", "rebinds OFFSET"),
    ("    os.kill(os.getppid(), 9)\n    total = x\n", "a block uses os"),  # imported by the code around it
    ("    global run\n    run = None\n    total = x\n", "rebinds run"),
])
def test_hostile_blocks_are_refused_before_running_with_the_reason(problem, pool, body, reason) -> None:
    evaluation = pool.evaluate(with_body(problem, body))
    assert evaluation.status == "error" and reason in (evaluation.error or "")


def test_a_block_cannot_open_read_or_write_files_even_without_the_language_check(problem, unchecked) -> None:
    if not unchecked.seccomp:
        pytest.skip("no seccomp filter on this machine (x86_64 only): the process may open files")
    body = (f"    import sys, gc\n"
            f"    for what, how in (({str(PROBLEM)!r}, 'r'), ({str(FIXTURES / 'block_project' / 'calc.py')!r}, 'r'),"
            f" ('/tmp/evoforge-block-escape', 'w'), ('escape.txt', 'w')):\n"
            f"        try:\n"
            f"            open(what, how).close()\n"
            f"            print('OPENED', what)\n"
            f"        except OSError as exc:\n"
            f"            print('REFUSED', what, type(exc).__name__)\n"
            f"    print('PROBLEM MODULES', sorted(m for m in sys.modules if 'evoforge_problem' in m))\n"
            f"    frame, found = sys._getframe(0), []\n"
            f"    while frame is not None:\n"
            f"        found.extend(frame.f_locals.values())\n"
            f"        frame = frame.f_back\n"
            f"    for o in gc.get_objects():\n"
            f"        if isinstance(o, (list, tuple, dict)):\n"
            f"            found.extend(o.values() if isinstance(o, dict) else o)\n"
            f"    inputs = [o for o in found if isinstance(o, dict) and 'tag' in o]\n"
            "    print('TAGS SEEN', sorted({str(o['tag']).replace('HELD', 'held') for o in inputs}))\n"
            f"    print('INPUT', x)\n"
            f"    total = x\n")
    evaluation = unchecked.evaluate(with_body(problem, body), ["a"])
    assert evaluation.status == "ok", evaluation.error
    out = evaluation.stdout
    assert "OPENED" not in out and out.count("REFUSED") == 8  # 4 tries, in each of the batch's 2 calls
    assert "PROBLEM MODULES []" in out  # the problem module, its score and helpers were never in this process
    # The probe finds the input it was given, and nothing of the held-out inputs (a training evaluation).
    assert "TAGS SEEN ['train']" in out
    held = unchecked.evaluate(with_body(problem, body), held_out=True)  # the same probe does see its own input
    assert "TAGS SEEN ['heldOUT-MARK']" in held.stdout
    assert not Path("/tmp/evoforge-block-escape").exists()


def test_printed_fake_results_change_nothing(problem, pool) -> None:
    body = ("    print('{\"t\": \"output\", \"name\": \"a\", \"value\": 1000000.0}')\n"
            "    print('score 1000000')\n    y = x * GAIN\n    total = total + y\n")
    evaluation = pool.evaluate(with_body(problem, body))
    assert evaluation.status == "ok" and evaluation.scores == {"a": 3.0, "b": 5.0}
    assert "score 1000000" in evaluation.stdout


def test_limits_hold_for_a_block(problem, pool) -> None:
    spin = pool.evaluate(with_body(problem, "    while True:\n        total = total + 1.0\n"), ["a"])
    assert spin.status == "timeout"
    hog = pool.evaluate(with_body(problem, "    total = float(len([0] * (10 ** 10)))\n"), ["a"])
    assert hog.status == "memory"


@pytest.fixture(scope="module")
def sort_problem():
    return load_problem(MERGE_SORT)


@pytest.mark.parametrize("small, reason", [
    # the count lives in a closure of sort_counted, outside the blocks: the block cannot reach it
    ("    return sorted(items, key=lambda i: less.__closure__)\n", "attribute `.__closure__`"),
    ("    global sort_counted\n    sort_counted = None\n    return items\n", "rebinds sort_counted"),
    ("    global merge\n    return items\n", "rebinds merge"),
    ("    import inspect\n    return items\n", "import inspect"),
])
def test_the_sort_examples_count_cannot_be_forged(sort_problem, small, reason) -> None:
    blocks = sort_problem.project.blocks_of(sort_problem.seed_code)
    blocks["sorter.py:small"] = small
    with SandboxPool(sort_problem, 1) as pool:
        evaluation = pool.evaluate(program_text(blocks))
        assert evaluation.status == "error" and reason in (evaluation.error or "")
        # Without comparisons a block can only guess the order: the penalty makes that the worst score.
        blocks["sorter.py:small"] = "    return items\n"
        guess = pool.evaluate(program_text(blocks))
        seed = pool.evaluate(sort_problem.seed_code)
    assert guess.status == "ok" and seed.status == "ok"
    assert guess.metrics["misordered"] > 0 and guess.score > 10 * seed.score
    assert seed.metrics["misordered"] == 0


TRAIN = '''"""A training script: a linear model fitted by gradient descent, its settings and its step in blocks."""
import colorsys

import numpy as np

# EVOLVE-BLOCK-START settings
STEPS = 5
RATE = 0.01
# EVOLVE-BLOCK-END


def train(x, y, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=x.shape[1]) * 0.01
    for _ in range(STEPS):
        # EVOLVE-BLOCK-START step
        grad = x.T @ (x @ w - y) / len(y)
        w = w - RATE * grad
        # EVOLVE-BLOCK-END
    print("hue of red", colorsys.rgb_to_hsv(1.0, 0.0, 0.0)[0], "steps", STEPS)
    return w
'''

TRAIN_PROBLEM = '''"""Fit a linear model: the validation loss of the weights train.train returns."""
import numpy as np

from evoforge import Project, Settings

PROJECT = Project("trainer", calls=["train.train"])
SETTINGS = Settings(maximize=False, time_limit_s=10.0)


def solve(data):
    x, y = np.asarray(data["x"]), np.asarray(data["y"])  # the validation split stays here, in the harness
    return PROJECT.call("train.train", x, y, 0)


def score(data, weights):
    w = np.asarray(weights, dtype=float)
    x, y = np.asarray(data["val_x"]), np.asarray(data["val_y"])
    return float(np.mean((x @ w - y) ** 2))


def _split(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.01 * rng.normal(size=200)
    return {"x": x[:150], "y": y[:150], "val_x": x[150:], "val_y": y[150:]}


def inputs(params):
    return {"data": _split(0)}
'''


def test_a_training_script_project_passes_numpy_arrays_and_its_blocks_tune_it(tmp_path: Path) -> None:
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "train.py").write_text(TRAIN)
    (tmp_path / "fit.py").write_text(TRAIN_PROBLEM)
    fit = load_problem(tmp_path / "fit.py")
    assert fit.project is not None and fit.project.imports() == ["colorsys", "numpy"]
    blocks = fit.project.blocks_of(fit.seed_code)
    blocks["train.py:settings"] = "STEPS = 200\nRATE = 0.3\n"
    with SandboxPool(fit, 1) as pool:
        seed = pool.evaluate(fit.seed_code)
        tuned = pool.evaluate(program_text(blocks))
    assert seed.status == "ok" and tuned.status == "ok", (seed.error, tuned.error)
    # colorsys, which only the project imports, was imported before its process locked down (no file opens after)
    assert "hue of red 0.0 steps 5" in seed.stdout
    assert tuned.score < 0.01 < seed.score
