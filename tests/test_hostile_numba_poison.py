"""Compiled candidates that convert an out-of-range float to an integer, in real sandboxes (numba: the harness's
own process), or shift by an amount past the integer's width.

numba converts with LLVM's `fptosi`, whose result is poison for a float out of the integer's range (or NaN), and
LLVM may treat every use of poison as undefined behaviour wherever it can see it: `s[int(1e300)]` lost its bounds
check and read its character through a pointer nothing wrote (the candidate scored as if nothing happened, where
Python raises), and `bins[:1].reshape((int(1e300), 7))` compiled to a function with no body, so the harness ran on
into whatever code followed it (the evaluation 'crashed', the process exiting with status 0).
A shift by 64 (`shl`, `lshr`, `ashr`) is poison too, and `'abcdef'[(k | 1) >> n]` with `n = 64` lost its check
the same way. `evaluators/inside/numba_overflow.py` makes every such conversion the saturating one, defined for
every float, and every shift defined for every amount.
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
def bins():
    small = {"num_items": "200", "num_instances": "2", "held_out_instances": "1"}
    with SandboxPool(load_problem(REPO / "problems" / "bin_packing.py", small), 1) as pool:
        assert pool.problem.settings.numba is True
        yield pool


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
