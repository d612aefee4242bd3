"""Under numba="auto" a candidate's evaluation does not depend on which candidates its server evaluated before:
when it compiles is decided from its own calls, never from what an earlier candidate's compilation cost or paid.

Compiled and Python differ where int64 arithmetic wraps, so a program can tell which way it ran and score
differently; an earlier candidate that made compiling pay must not decide that for the next one."""

from __future__ import annotations

from pathlib import Path

from evoforge.evaluators import SandboxPool, load_problem

BIN_PACKING = Path(__file__).resolve().parent.parent / "problems" / "bin_packing.py"
TINY_AUTO = {"num_instances": "2", "num_items": "20", "held_out_instances": "1", "numba": "auto"}
# Its Python calls use far more than a compilation's time (COMPILE_AFTER_S, 0.3 s), so "auto" compiles it (and
# compiling pays): the first instance's 20 calls take about 2.5 s as Python here. (300,000 steps a call, 0.25 s in
# all on a fast machine, sometimes stayed under the threshold, and the second instance ran as Python too.)
SLOW = '''def priority(item, bins):
    s = 0.0
    for i in range(3000000):
        s += i * 1e-12
    return -(bins - item) + s * 0.0
'''
# Best fit as Python, worst fit once compiled (2**62 + 2**62 wraps to a negative int64).
TWO_FACED = '''def priority(item, bins):
    big = 4611686018427387904
    if big + big > 0:
        return -(bins - item)
    return bins - item
'''


def test_an_earlier_candidate_does_not_decide_how_the_next_one_runs():
    problem = load_problem(BIN_PACKING, TINY_AUTO)
    with SandboxPool(problem, 1) as fresh:
        alone = fresh.evaluate(TWO_FACED)
    assert alone.status == "ok" and alone.compiled is False, alone
    with SandboxPool(problem, 1) as pool:
        slow = pool.evaluate(SLOW)
        assert slow.status == "ok" and slow.compiled is True, slow
        after = pool.evaluate(TWO_FACED)
    assert after.status == "ok" and after.compiled is False, after
    assert after.score == alone.score and after.scores == alone.scores
