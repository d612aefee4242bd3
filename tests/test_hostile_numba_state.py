"""With numba, what the problem exposes reaches the candidate as a copy, compiled (numba freezes a copy) or as Python
(in the candidate's own process), so that changing it in place changes nothing solve reads, in a real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.evaluators import SandboxPool, load_problem

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HONEST = "def predict(x):\n    return x * 0.0 + BOUNDS[1]\n"


@pytest.mark.parametrize("code", [
    "def predict(x):\n    BOUNDS[1] = 1000.0\n    return x * 0.0 + 1000.0\n",
    "def predict(x):\n    BOUNDS.insert(1, 1000.0)\n    return x * 0.0 + 1000.0\n",
    "HIGH = BOUNDS\nHIGH[1] = 1000.0\n\ndef predict(x):\n    return x * 0.0 + HIGH[1]\n",
], ids=["item", "method", "at-load"])
def test_an_exposed_constant_changed_in_place_does_not_change_what_solve_reads(code):
    with SandboxPool(load_problem(FIXTURES / "exposed_numba_problem.py", {}), 1) as pool:
        assert pool.problem.settings.numba
        honest = pool.evaluate(HONEST)
        assert honest.status == "ok" and honest.score == 5.0, honest
        ev = pool.evaluate(code)
        assert ev.status == "ok" and ev.score == 5.0, ev


def test_without_numba_the_candidate_had_a_copy_already():
    with SandboxPool(load_problem(FIXTURES / "exposed_numba_problem.py", {"numba": "false"}), 1) as pool:
        ev = pool.evaluate("def predict(x):\n    BOUNDS[1] = 1000.0\n    return x * 0.0 + 1000.0\n")
        assert ev.status == "ok" and ev.score == 5.0, ev
