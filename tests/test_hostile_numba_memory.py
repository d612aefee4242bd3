"""With numba the candidate's Python runs in the harness's process: memory it is handed uninitialised must not hold
what the problem module or an earlier input left there (numpy's cache of freed small blocks bypasses malloc's
wiping), in a real sandbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from in_process import in_process

from evoforge.evaluators import SandboxPool, load_problem
from evoforge.evaluators.validator import Refused, check

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


# Bin packing under its default settings: numba cannot compile `resize`, so the candidate's priority runs as Python
# in the harness's process. On the last call of an instance it resizes arrays without numpy's reference check,
# keeping views of their freed blocks; the next instance's items array is allocated in one of them, and the first
# calls of that instance would read every item to come (online packing, played offline).
FUTURE_ITEMS = '''HOLES = []
KEEP = []
CALLS = [0]

def priority(item, bins):
    CALLS[0] += 1
    if CALLS[0] % 1000 == 0:
        for _ in range(6):
            a = np.zeros(1000)
            KEEP.append(np.zeros(1000))
            HOLES.append(a[:])
            a.resize(200000, REFCHECK)
    if CALLS[0] > 1000 and CALLS[0] % 1000 == 5:
        for v in HOLES:
            if np.all(v >= 1.0) and np.all(v <= 100.0) and np.all(v == np.round(v)):
                raise RuntimeError("saw every item of this instance in advance: " + str(v[:8]))
    return -(bins - item)
'''


@pytest.mark.parametrize("refcheck", ["refcheck=False", "**{'refcheck': False}"], ids=["keyword", "unpacked"])
def test_a_resize_that_frees_memory_views_still_use_is_refused(refcheck):
    code = FUTURE_ITEMS.replace("REFCHECK", refcheck)
    with SandboxPool(load_problem(FIXTURES.parent.parent / "problems" / "bin_packing.py", {}), 1) as pool:
        assert pool.problem.settings.numba is True
        ev = pool.evaluate(code)
        assert ev.status == "error" and ev.error.startswith("refused before running") and "resize" in ev.error, ev
        held = pool.evaluate(code.replace("a.resize(200000, " + refcheck + ")", "a = np.resize(a, 200000)"))
        assert held.status == "ok" and held.score == in_process(pool.problem, BEST_FIT), held


BEST_FIT = "def priority(item, bins):\n    return -(bins - item)\n"


@pytest.mark.parametrize("code", [
    "def f(a):\n    g = a.resize\n    g(9, refcheck=False)\n",
    "def f(a):\n    return list(map(np.ndarray.resize, [a], [9]))\n",
    "def f(a):\n    import functools\n    return functools.partial(a.resize, refcheck=False)\n",
    "def f(a, kw):\n    a.resize(9, **kw)\n",
])
def test_resize_reached_any_other_way_is_refused(code):
    with pytest.raises(Refused, match="resize|refcheck"):
        check(code)


def test_resize_called_directly_stays_allowed():
    check("def f(a):\n    b = np.resize(a, 9)\n    a.resize(3)\n    return b\n")
