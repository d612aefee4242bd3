"""Which products a compiled candidate keeps as `*` (plain_products.py), and that a list or a string can never reach
one: every `seq * n` still goes through evoforge_mul, which refuses a length that wraps (test_hostile_numba_sizes)."""

from __future__ import annotations

import pytest

from evoforge.evaluators.inside.numba_semantics import MUL, for_numba

PRIORITY = "def priority(item, bins):\n"
BOTH = {"priority": {0, 1}}  # the bin packing harness declares (float64, float64[::1])


@pytest.mark.parametrize("body", [
    "    return -(bins * (1 - 0.475 * -(bins - item)) - item)\n",  # declared arguments and literals
    "    r = -(bins - item)\n    r = r * (1 - 6.09 * (r < 6.61))\n    return r\n",  # a local of numeric values
    "    t = np.min(bins) + 0.4 * (np.max(bins) - np.min(bins))\n    return bins * t * item\n",  # numpy's results
    "    s = bins[0]\n    for i in range(3):\n        s = s * item\n    return bins * s\n",  # a loop's own products
    "    return bins * (item if item > 1 else 2) * bins.shape[0]\n",
])
def test_products_of_numbers_and_arrays_stay_plain(body):
    source = for_numba(PRIORITY + body, BOTH, ["np"])
    assert MUL not in source, source


@pytest.mark.parametrize("code", [
    # a local that is also bound by a loop to a list
    PRIORITY + "    r = bins - item\n    for r in [[1.0]]:\n        pass\n    return r * item\n",
    # a helper whose parameter has the declared argument's name: there it may be a list
    PRIORITY + "    return bins * item\n\n\ndef helper(bins, n):\n    return bins * n\n",
    # the evolved function called from the candidate's own code, where it may be compiled for a list
    PRIORITY + "    return bins * item + priority(item, [1.0])[0]\n",
    # a global of the same name read elsewhere
    PRIORITY + "    return -(bins - item)\n\n\ndef helper(n):\n    return bins * n\n",
    # numpy rebound by the candidate
    "np = [1.0]\n\n\n" + PRIORITY + "    return np.copy() * bins\n",
    # a local assigned from a call that is not numpy's
    PRIORITY + "    r = helper(item)\n    return r * bins\n\n\ndef helper(x):\n    return [x]\n",
    # numba's np.sort of a list is a list, and so is what a numpy call makes of any argument that is not numeric
    PRIORITY + "    r = np.sort([item])\n    return r * bins.shape[0]\n",
    PRIORITY + "    return np.sort([item, 2.0], kind='quicksort') * bins.shape[0]\n",
    # a walrus binding besides the plain assignment
    PRIORITY + "    r = bins\n    if (r := [item]):\n        pass\n    return r * bins.shape[0]\n",
])
def test_a_product_whose_side_may_be_a_sequence_is_checked(code):
    source = for_numba(code, BOTH, ["np"])
    assert f"{MUL}(" in source, source


def test_literal_factors_that_cannot_repeat_past_an_intp_stay_plain():
    code = "def f(x, y):\n    return x * 0.5 + 3 * y + x * (y < 2) + (x / y) * y + x * 2.0j\n"
    assert MUL not in for_numba(code)  # no declared types needed
    assert f"{MUL}(" in for_numba("def f(x, y):\n    return x * (1 << 40)\n")  # a large count is checked


def test_only_declared_positions_of_functions_the_harness_calls_count():
    code = PRIORITY + "    return bins * item\n"
    assert f"{MUL}(" in for_numba(code)  # no declared types: the harness-less path
    assert f"{MUL}(" in for_numba(code, {"other": {0, 1}}, ["np"])
    assert f"{MUL}(" in for_numba(code, {"priority": {1}}, ["np"])  # item undeclared: it may be an int count
    assert MUL not in for_numba(code, {"priority": {0, 1}}, ["np"])


# In the sandbox: a candidate whose products stay plain is compiled and scores as Python does; a helper that takes
# a list under the declared argument's name still has its repetition checked (7 items written where 1 was allocated
# when the length wraps, without the check).
PLAIN = (PRIORITY + "    r = -(bins - item)\n    t = np.min(bins) + 0.4 * (np.max(bins) - np.min(bins))\n"
         "    return r * (1 - 0.5 * (bins < t)) * item\n")
HELPER_REPEAT = ("TIMES = 7905747460161236407\n\n\n" + PRIORITY
                 + "    return -(bins - item) + 0.0 * spill([item, item, item, item, item, item, item], TIMES)\n\n\n"
                 "def spill(bins, item):\n    return len(bins * item)\n")


def test_plain_products_compile_and_score_as_python(compiled_bin_packing):
    from in_process import in_process

    ev = compiled_bin_packing.evaluate(PLAIN)
    assert ev.status == "ok" and ev.compiled is True, ev
    assert ev.score == in_process(compiled_bin_packing.problem, PLAIN)


def test_a_helper_repeating_a_list_under_a_declared_name_is_still_refused(compiled_bin_packing):
    assert f"{MUL}(bins, item)" in for_numba(HELPER_REPEAT, BOTH, ["np"])
    ev = compiled_bin_packing.evaluate(HELPER_REPEAT)
    assert ev.status == "memory" and "MemoryError" in ev.error, ev


def test_numpy_is_recognised_as_the_sandbox_shows_it_to_candidates():
    """The restricted namespace holds a view of numpy (module_copy), not numpy itself; both count, nothing else."""
    import numpy as np

    from evoforge.evaluators.inside.jit_compile import numpy_names
    from evoforge.evaluators.inside.namespace import module_copy

    namespace = {"np": module_copy("numpy"), "numpy": np, "math": module_copy("math"), "bins": [1.0]}
    assert numpy_names(namespace) == ["np", "numpy"]
