"""Compiled candidates that convert an out-of-range float to an integer, in real sandboxes (numba: the harness's
own process), or shift by an amount past the integer's width.

numba converts with LLVM's `fptosi`, whose result is poison for a float out of the integer's range (or NaN), and
LLVM may treat every use of poison as undefined behaviour wherever it can see it: `s[int(1e300)]` lost its bounds
check and read its character through a pointer nothing wrote (the candidate scored as if nothing happened, where
Python raises), and `bins[:1].reshape((int(1e300), 7))` compiled to a function with no body, so the harness ran on
into whatever code followed it (the evaluation 'crashed', the process exiting with status 0).
numba also adds with `nsw`, which makes a signed overflow poison: after `if n < 0`, `seen[n + C]` lost the lower
half of its bounds check, and an index that wrapped to -2**63 passed and read the start of the array `seen` views
(the harness's whole input) where seen was empty: the value to guess, exactly.
A shift by 64 (`shl`, `lshr`, `ashr`) is poison too, and `'abcdef'[(k | 1) >> n]` with `n = 64` lost its check
the same way. `evaluators/inside/numba_overflow.py` makes every such conversion the saturating one, defined for
every float, every shift defined for every amount, and integer arithmetic wrapping.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.evaluators import SandboxPool, load_problem

REPO = Path(__file__).resolve().parent.parent
BEST_FIT = "def priority(item, bins):\n    return -(bins - item)\n"
POISONED = {  # the candidate's line, and words of the error Python (and now compiled code) ends with
    "string index": ("    c = 'abcdef'[int(1e300)]\n    k = ord(c)\n", "string index out of range"),
    "reshape": ("    wide = bins[:1].reshape((int(1e300), 7))\n    k = wide[0, 0]\n", "too big"),
}


@pytest.fixture(scope="module")
def bins(compiled_bin_packing):
    return compiled_bin_packing


@pytest.mark.parametrize("kind", sorted(POISONED))
def test_an_out_of_range_conversion_keeps_the_checks_that_use_it(bins, kind):
    line, words = POISONED[kind]
    ev = bins.evaluate(f"def priority(item, bins):\n{line}    return -(bins - item) + 0.0 * k\n")
    assert ev.status == "error" and words in (ev.error or ""), ev


def test_conversions_in_range_stay_compiled_and_exact(bins):
    best_fit = bins.evaluate(BEST_FIT)
    code = ("import math\n\n\ndef priority(item, bins):\n"
            "    k = int(item * 3.7) + round(item) + math.floor(item) + np.int64(item * 2.0) - int(-item)\n"
            "    return -(bins - item) + 0.0 * k\n")
    ev = bins.evaluate(code)
    assert best_fit.status == "ok" and best_fit.compiled is True, best_fit
    assert ev.status == "ok" and ev.compiled is True and ev.score == best_fit.score, ev


# Python shifts every bit out (0), so the character is 'a' and the candidate packs best fit; compiled, the shift by
# 64 was poison and the read went through a pointer nothing wrote.
SHIFTED = """def priority(item, bins):
    n = 64
    c = 'abcdef'[(int(item) | 1) >> n]
    if c == 'a':
        return -(bins - item)
    return bins - item
"""


def test_a_shift_past_the_width_reads_inside_its_string(bins):
    best_fit = bins.evaluate(BEST_FIT)
    ev = bins.evaluate(SHIFTED)
    assert ev.status == "ok" and ev.compiled is True and ev.score == best_fit.score, ev


# Each call sees the values before the one to guess, as a view of the whole input (which the harness holds), and
# an int the harness passes (8, as cap set passes n).
GUESS = '''"""Guess each value from the values before it."""
import numpy as np

from evoforge import Settings, evolve

SETTINGS = Settings(maximize=True, numba=True)


@evolve
def guess(seen, n):
    return float(seen[-1]) if len(seen) else 0.0


def solve(values):
    values = np.asarray(values, dtype=np.float64)
    return [guess(values[:i], 8) for i in range(len(values))]


def score(values, output):
    return -float(np.abs(np.asarray(output) - np.asarray(values)).sum())


def inputs(params):
    return {"a": [float(x) for x in np.random.default_rng(0).random(50)]}
'''
HONEST = "def guess(seen, n):\n    return float(seen[-1]) if len(seen) else 0.0\n"
# n + 9223372036854775800 is 2**63, which wraps to -2**63, and seen[-2**63] lies 8 * -2**63 bytes (0, as 2**66
# wraps) from seen's start; LLVM took `n >= 0` and the `nsw` add to mean the index cannot be negative, so only
# `index < len(seen)` was checked. On the first call seen is empty, and its start is the value it must guess.
AHEAD = """def guess(seen, n):
    if n < 0:
        return 0.0
    return seen[n + 9223372036854775800]
"""


def test_an_index_that_overflows_reads_nothing_ahead(tmp_path):
    path = tmp_path / "guess.py"
    path.write_text(GUESS)
    with SandboxPool(load_problem(path, {}), 1) as pool:
        honest = pool.evaluate(HONEST)
        assert honest.status == "ok" and honest.compiled is True, honest
        ev = pool.evaluate(AHEAD)
    assert ev.status != "ok" or ev.score <= honest.score, ev  # the leak: the first value, exactly
    assert ev.status == "error" and "out of bounds" in (ev.error or ""), ev
