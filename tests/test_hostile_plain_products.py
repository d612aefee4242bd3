"""Compiled candidates that try to get a string to a product whose repetition numba does not check.

numpy arrays can hold text: numba compiles `np.full(1, 'abcdefg')` (and `np.asarray('abcdefg')`, `np.empty(1, 'U7')`)
to an array of `UnicodeCharSeq`, whose item times an integer is numba's string repetition (charseq.py:
`str(a) * b`), with the length in wrapping arithmetic: times 7905747460161236407 it allocates one character and
writes seven. plain_products.py counted every numpy result and its items as numbers, so the product stayed a plain
`*`; and evoforge_mul checked lists and `str` only, so even the checked product repeated such an item unchecked.
Python refuses the length (OverflowError), and so must the compiled candidate.
"""

from __future__ import annotations

import pytest

from evoforge.evaluators.inside.jit_compile import numeric_arguments
from evoforge.evaluators.inside.numba_semantics import MUL, for_numba

HEAD = "import numpy as np\n\nTIMES = 7905747460161236407\n\n\ndef priority(item, bins):\n"
TAIL = "    return -(bins - item) + 0.0 * len(spill)\n"
# The text reaches the product through numpy's functions, array methods and a numeric-looking count.
TEXTS = {
    "item of np.full": "    s = np.full(1, 'abcdefg')[0]\n    spill = s * 7905747460161236407\n",
    "on the right": "    spill = 7905747460161236407 * np.full(1, 'abcdefg')[0]\n",
    "through np.sort": "    t = np.full(1, 'abcdefg')\n    spill = np.sort(t)[0] * 7905747460161236407\n",
    "through np.max": "    spill = np.max(np.full(2, 'abcdefg')) * 7905747460161236407\n",
    "through a method": "    spill = np.full(1, 'abcdefg').ravel()[0] * 7905747460161236407\n",
    "a 0-d array": "    spill = np.asarray('abcdefg')[()] * 7905747460161236407\n",
    "a global count": "    spill = np.full(1, 'abcdefg')[0] * TIMES\n",  # evoforge_mul's own check
}


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_text_from_numpy_is_repeated_checked(compiled_bin_packing, kind):
    code = HEAD + TEXTS[kind] + TAIL
    assert f"{MUL}(" in for_numba(code, {"priority": {0, 1}}, ["np"])
    ev = compiled_bin_packing.evaluate(code)
    assert ev.status == "error" and "repeated string is too long" in ev.error, ev


def test_text_repeated_within_an_intp_stays_compiled(compiled_bin_packing):
    code = HEAD + "    spill = np.full(1, 'abcdefg')[0] * bins.shape[0]\n" + TAIL
    best_fit = compiled_bin_packing.evaluate("def priority(item, bins):\n    return -(bins - item)\n")
    ev = compiled_bin_packing.evaluate(code)
    assert ev.status == "ok" and ev.compiled is True and ev.score == best_fit.score, ev


def test_only_arrays_of_numbers_are_numeric_arguments():
    signatures = {"f": "float64(UnicodeCharSeq(7)[::1], float64[::1], float64, unicode_type)"}
    assert numeric_arguments(signatures) == {"f": frozenset({1, 2})}
