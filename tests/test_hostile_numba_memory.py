"""With numba the candidate's Python runs in the harness's process: memory it is handed uninitialised must not hold
what the problem module or an earlier input left there (numpy's cache of freed small blocks bypasses malloc's
wiping), in a real sandbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from in_process import in_process

from evoforge.evaluators import SandboxPool, load_problem

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HONEST = "def predict(x):\n    return x * 0.0\n"
# np.ndarray(shape) is not compiled by numba: the program falls back to Python in the harness's process. It looks
# for a freed block of the problem module's private data (7770, 7771, ...) when its code is loaded, and for the
# answers of an earlier input (4242, 4243, ...) at each call, which it would return as its predictions.
PEEK = '''def _peek(lo, hi):
    for size in range(8, 1024, 8):
        for _ in range(7):
            block = np.ndarray((size // 8,), dtype=np.float64)
            if lo <= block[0] < hi and np.all(np.diff(block) == 1.0):
                return block
    return None

PRIVATE = _peek(7770.0, 7771.0)

def predict(x):
    if PRIVATE is not None:
        raise RuntimeError("read the problem module's private data: " + str(PRIVATE[:3]))
    seen = _peek(4242.0, 4243.0)
    if seen is not None and len(seen) >= len(x):
        return seen[:len(x)].copy()
    return x * 0.0
'''
MASKED = '''def predict(x):
    block = np.ma.masked_all(12, dtype=np.float64).data
    if block[0] == 4242.0 or block[0] == 7770.0:
        return block[:len(x)].copy()
    return x * 0.0
'''


@pytest.fixture(scope="module")
def answers():
    with SandboxPool(load_problem(FIXTURES / "answers_numba_problem.py", {}), 1) as pool:
        assert pool.problem.settings.numba
        yield pool


@pytest.mark.parametrize("code", [PEEK, MASKED], ids=["ndarray", "masked_all"])
def test_uninitialised_arrays_hold_nothing_of_the_problem_or_other_inputs(answers, code):
    honest = in_process(answers.problem, HONEST)
    for held_out in (False, True):
        ev = answers.evaluate(code, held_out=held_out)
        assert ev.status == "ok" and ev.compiled is False, ev
        assert ev.score == in_process(answers.problem, HONEST, held_out=held_out), ev
    assert answers.evaluate(HONEST).score == honest


def test_the_sandbox_hands_out_numpy_memory_through_malloc(answers):
    """The probe itself: in the server's processes numpy uses evoforge's allocator, whose small blocks malloc
    wipes (without it, a freed array of 10 floats comes back whole)."""
    code = ("def predict(x):\n    gone = (x + 4242.0) * 1.0\n    gone = None\n"
            "    block = np.ndarray((len(x),), dtype=np.float64)\n"
            "    return x * 0.0 + (100.0 if np.any(block == x + 4242.0) else 0.0)\n")
    ev = answers.evaluate(code)
    assert ev.status == "ok" and ev.score == in_process(answers.problem, HONEST), ev
    assert np.isfinite(ev.score)

