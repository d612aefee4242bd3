"""Compiled candidates whose sizes wrap around 2**64, reaching the harness's memory past their own.

- numba checked `a.reshape(shape)` by comparing the product of the new dimensions with the array's size, in
  arithmetic that wraps: `seen[:1].reshape((7905747460161236407, 7))` (7 times 7905747460161236407 is 1 modulo
  2**64) passed, and every index into that view passed `boundscheck`, so compiled code read (and could write) the
  harness's memory beyond its argument. `evaluators/inside/numba_overflow.py` refuses such a shape.
- numba's `seq * n` for a list or a string allocates `len(seq) * n` items, wrapped, and copies `len(seq)` per
  repetition: `[x] * 7 * 7905747460161236407` allocates one item and writes seven, past the allocation.
  `numba_semantics.evoforge_mul` (and `evoforge_fit` for `*=`) refuse it as Python does.
- numba's loop over a list's slice adds the step to the index until it passes the stop: with a step near 2**63
  the index wrapped below the stop, and `sink[5:6:2**63 - 1] = [x]` went on reading past `[x]` and writing
  below `sink`. `numba_overflow.for_range_slice` ends the loop where the index overflows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.evaluators import SandboxPool, load_problem

REPO = Path(__file__).resolve().parent.parent
WIDE = "(7905747460161236407, 7)"  # its size wraps to 1; element r of the view is at (r // 7, r % 7)

# Each call sees the values before the one to guess, as a view of the whole input, which the harness holds.
PROBLEM = '''"""Guess each value from the values before it."""
import numpy as np

from evoforge import Settings, compiled_harness, evolve

SETTINGS = Settings(maximize=True, numba=True)


@evolve
def guess(seen):
    return float(seen[-1]) if len(seen) else 0.0


{runner}


def score(values, output):
    return -float(np.abs(np.asarray(output) - np.asarray(values)).sum())


def inputs(params):
    return {{"a": [float(x) for x in np.random.default_rng(0).random(50)]}}
'''
RUNNERS = {
    "compiled harness": '''@compiled_harness("(guess, float64[::1])", guess="float64(float64[::1])")
def run(guess, values):
    out = np.zeros(len(values))
    for i in range(len(values)):
        out[i] = guess(values[:i])
    return out


def solve(values):
    return run(guess, np.asarray(values, dtype=np.float64))''',
    "called from solve": '''def solve(values):
    values = np.asarray(values, dtype=np.float64)
    return [guess(values[:i]) for i in range(len(values))]''',
}
HONEST = "def guess(seen):\n    return float(seen[-1]) if len(seen) else 0.0\n"
AHEAD = f"""def guess(seen):
    if len(seen) == 0:
        return 0.0
    wide = seen[:1].reshape({WIDE})
    return float(wide[len(seen) // 7, len(seen) % 7])
"""


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_reshape_whose_size_overflows_reads_nothing_ahead(tmp_path, runner):
    path = tmp_path / "ahead.py"
    path.write_text(PROBLEM.format(runner=RUNNERS[runner]))
    with SandboxPool(load_problem(path, {}), 1) as pool:
        honest = pool.evaluate(HONEST)
        assert honest.status == "ok" and honest.compiled is True and honest.score < -5.0, honest
        ev = pool.evaluate(AHEAD)
    assert ev.status != "ok" or ev.score <= honest.score, ev  # the leak: every value but the first, exactly
    assert ev.status == "error" and "too big" in ev.error, ev


# Bin packing as it ships (numba on): the first element past the bins it was given, read through such a view.
PAST_THE_END = f"""def priority(item, bins):
    n = bins.shape[0]
    wide = bins[:1].reshape({WIDE})
    past = wide[n // 7, n % 7]
    if past == past:
        return bins - item
    return -(bins - item)
"""
RESHAPES = """def priority(item, bins):
    grid = np.zeros(bins.shape[0] * 2).reshape((-1, 2))
    grid[:, 0] = bins
    return -(grid.reshape(2 * bins.shape[0])[::2] - item) + 0.0 * grid.reshape(bins.shape[0], 2)[0, 1]
"""


@pytest.fixture(scope="module")
def bins(compiled_bin_packing):
    return compiled_bin_packing


def test_bin_packing_reads_nothing_past_its_bins_through_a_reshape(bins):
    ev = bins.evaluate(PAST_THE_END)
    assert ev.status == "error" and "too big" in ev.error, ev


def test_reshapes_that_fit_stay_compiled(bins):
    best_fit = bins.evaluate("def priority(item, bins):\n    return -(bins - item)\n")
    ev = bins.evaluate(RESHAPES)
    assert ev.status == "ok" and ev.compiled is True and ev.score == best_fit.score, ev


# Seven items written where one was allocated, each repetition; Python refuses the length, and so must numba.
REPEATS = {
    "list": ("    spill = [item, item, item, item, item, item, item] * TIMES\n", "memory", "MemoryError"),
    "list in place": ("    spill = [item, item, item, item, item, item, item]\n    spill *= TIMES + 1\n",
                      "memory", "MemoryError"),
    "string": ("    spill = 'abcdefg' * TIMES\n", "error", "repeated string is too long"),
    "string on the left": ("    spill = TIMES * 'abcdefg'\n", "error", "repeated string is too long"),
    # numba allocates (length + 1) * 4 bytes for 4-byte characters, which wraps to 4 here (and to 0 for 2-byte
    # ones times 2**63 - 1); Python refuses the allocation
    "string of 4-byte characters": ("    spill = '\\U0001F600' * 4611686018427387904\n", "memory", "MemoryError"),
    "string of 2-byte characters": ("    spill = '\\u0100' * 9223372036854775807\n", "memory", "MemoryError"),
}


@pytest.mark.parametrize("kind", sorted(REPEATS))
def test_a_repetition_whose_length_wraps_writes_nothing_past_it(bins, kind):
    body, status, words = REPEATS[kind]
    code = (f"TIMES = 7905747460161236407\n\n\ndef priority(item, bins):\n{body}"
            "    return -(bins - item) + 0.0 * len(spill)\n")
    ev = bins.evaluate(code)
    assert ev.status == status and words in ev.error, ev


# numba's np.sort of a list returns a list (numpy's, an array): a product of it judged numeric (plain_products: "numpy's
# functions return no list") stayed a plain `*`, and the wrapped repetition wrote past its allocation in the
# harness's process (glibc aborted it: 'crashed'). Python multiplies an array here; compiled, the product is checked.
SORTED_LIST = ("import numpy as np\n\n\ndef priority(item, bins):\n    ordered = np.sort([item])\n"
               "    seven = ordered * 7\n    spill = seven * 7905747460161236407\n"
               "    return -(bins - item) + 0.0 * len(spill)\n")


def test_a_list_from_numpy_is_repeated_with_the_check(bins):
    ev = bins.evaluate(SORTED_LIST)
    assert ev.status == "memory" and "MemoryError" in ev.error, ev


def test_repetitions_that_fit_stay_compiled(bins):
    code = ("def priority(item, bins):\n    k = bins.shape[0]\n    ones = [1.0] * k\n    ones *= 2\n"
            "    pad = (0.0,) * 3\n    tag = 'ab' * k\n"
            "    return -(bins - item) * ones[0] + 0.0 * (len(ones) + len(pad) + len(tag) + 2 * k)\n")
    best_fit = bins.evaluate("def priority(item, bins):\n    return -(bins - item)\n")
    ev = bins.evaluate(code)
    assert ev.status == "ok" and ev.compiled is True and ev.score == best_fit.score, ev


# Python assigns sink[5] alone (the slice has one element) and copies one element out; whatever else reaches
# `sink` or `out` came from the harness's memory, and the candidate then packs worst-fit.
SLICES = {
    "assigned": "    sink[5:6:STEP] = [item]\n    seen = sink\n",
    "read": "    seen = sink[5:6:STEP]\n    seen = seen + sink[6:7:STEP]\n",
}


@pytest.mark.parametrize("kind", sorted(SLICES))
def test_a_list_slice_with_a_step_near_2_63_stays_inside_its_lists(bins, kind):
    code = ("STEP = 9223372036854775807\n\n\ndef priority(item, bins):\n"
            "    sink = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]\n" + SLICES[kind]
            + "    for v in seen:\n        if v != 0.0 and v != item:\n            return bins - item\n"
            "    return -(bins - item)\n")
    best_fit = bins.evaluate("def priority(item, bins):\n    return -(bins - item)\n")
    ev = bins.evaluate(code)
    assert ev.status == "ok" and ev.compiled is True and ev.score == best_fit.score, ev
