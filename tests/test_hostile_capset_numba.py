"""A compiled candidate that writes past its arrays, in real sandboxes (numba: the harness's own process).

numba's `np.round(x, decimals, out)` of a scalar `x` writes `out[0]` without checking that `out` has an element,
and an empty view keeps a data pointer anywhere: `x[:10][::2][5:]` points at `x[10]`, and
`np.zeros((1, k))[::-1][1:]` (shape (0, k)) makes `out[0]` a row of k doubles before the array. Passed the
language check, such a candidate wrote where it liked in the harness's process: it steered its own priorities
(a score its Python form does not get) or corrupted the heap (glibc: "corrupted size vs. prev_size"). A function's
positional `out` is now refused for compiling (`numba_semantics.OUTPUT_AFTER`), so it runs as Python, where numpy
checks, and scores what the same code scores in-process. Code that draws from Python's `random` runs as Python
too: numba's has other seeding and a state of its own per process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from in_process import in_process

from evoforge.evaluators import SandboxPool, load_problem

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"

# Priorities from a sine of the coordinates, scaled by what the unchecked write left in x[10]: 7 where it wrote
# (compiled), 0 where numpy refused it (Python), which ties every vector. At n = 4: 17 against 16.
STEERED_CAPS = '''def priority(el, n):
    x = np.zeros(20)
    try:
        np.round(7.0, 0, x[:10][::2][5:])
    except Exception:
        pass
    return float(np.sin(1.0 + el[0] * 7.1 + el[1] * 3.3 + el[2] * 5.7 + el[-1] * 11.9)) * x[10]
'''
# 4000 doubles of zeros written before a fresh array: the harness's heap.
CORRUPTING_CAPS = '''def priority(el, n):
    try:
        np.round(0.0, 0, np.zeros((1, 4000))[::-1][1:])
    except Exception:
        pass
    return float(el[0] + 2 * el[-1])
'''
# Bin packing (numba on by default): worst fit where the write landed, best fit where it did not.
STEERED_BINS = '''def priority(item, bins):
    x = np.zeros(20)
    try:
        np.round(7.0, 0, x[:10][::2][5:])
    except Exception:
        pass
    if x[10] == 7.0:
        return bins - item
    return -(bins - item)
'''

# Python's random, seeded by the candidate itself: numba's random.seed starts another sequence (and, unseeded, a
# state of its own per process), so the compiled form scored 17 at n = 4 where Python scores 18.
SEEDED_RANDOM = '''import random


def priority(el, n):
    s = 0
    for x in el:
        s = s * 3 + int(x)
    random.seed(2 * s)
    return random.random()
'''




@pytest.fixture(scope="module")
def caps():
    # numba=true: every candidate compiled at once (cap set keeps numba off by default)
    with SandboxPool(load_problem(PROBLEMS / "cap_set.py", {"n": "4", "numba": "true"}), 1) as pool:
        yield pool


@pytest.mark.parametrize("code", [STEERED_CAPS, CORRUPTING_CAPS], ids=["steered", "heap"])
def test_cap_set_compiled_code_writes_nothing_past_its_arrays(caps, code):
    ev = caps.evaluate(code, cascade=False)
    assert ev.status == "ok" and ev.score == in_process(caps.problem, code), ev
    assert ev.compiled is False and "`round` with an output argument is not compiled" in ev.stdout, ev


def test_cap_set_the_write_would_change_the_score(caps):
    """The steered candidate's two forms score apart, so the test above would see the write."""
    written = STEERED_CAPS.replace("* x[10]", "* 7.0")
    assert in_process(caps.problem, written) == 17.0 and in_process(caps.problem, STEERED_CAPS) == 16.0


def test_bin_packing_compiled_code_writes_nothing_past_its_arrays():
    small = {"num_items": "200", "num_instances": "2", "held_out_instances": "1"}  # numba on: the default
    with SandboxPool(load_problem(PROBLEMS / "bin_packing.py", small), 1) as pool:
        assert pool.problem.settings.numba is True
        ev = pool.evaluate(STEERED_BINS)
        best_fit = in_process(pool.problem, "def priority(item, bins):\n    return -(bins - item)\n")
    assert ev.status == "ok" and ev.score == best_fit, ev


def test_python_random_runs_as_python(caps):
    ev = caps.evaluate(SEEDED_RANDOM, cascade=False)
    assert ev.status == "ok" and ev.score == in_process(caps.problem, SEEDED_RANDOM) == 18.0, ev
    assert ev.compiled is False and "Python's random module" in ev.stdout, ev
