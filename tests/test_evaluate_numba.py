"""Numba in the sandbox: compile only when it pays ("auto"), and reuse a program's compilation by its code hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from evoforge.evaluators import ProblemError, SandboxPool, Settings, load_problem

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def auto_pool():
    with SandboxPool(load_problem(FIXTURES / "numba_auto_problem.py"), 1) as pool:
        yield pool


def test_auto_runs_small_inputs_as_python_and_compiles_for_large_ones(auto_pool):
    small = auto_pool.evaluate(auto_pool.problem.seed_code, ["small"])
    assert small.status == "ok" and small.compiled is False and small.timings["compile"] == 0.0
    full = auto_pool.evaluate(auto_pool.problem.seed_code)
    assert full.status == "ok" and full.compiled is True and full.timings["compile"] > 0
    assert full.scores["small"] == small.scores["small"]  # compiled or not, the same numbers


def test_numba_setting_accepts_auto_from_the_command_line():
    problem = load_problem(FIXTURES / "toy_numba_problem.py", {"numba": "auto"})
    assert problem.settings.numba == "auto"
    assert load_problem(FIXTURES / "toy_numba_problem.py", {"numba": "off"}).settings.numba is False
    with pytest.raises(ProblemError, match="numba"):
        load_problem(FIXTURES / "toy_numba_problem.py", {"numba": "fast"})
    with pytest.raises(ValueError, match="numba"):
        Settings(numba="fast")


@pytest.fixture(scope="module")
def numba_pool():
    # The attacker below reads its own code object and the file system: the language check, which would refuse
    # it first, is off, to test the compile cache's own isolation.
    with SandboxPool(load_problem(FIXTURES / "toy_numba_problem.py"), 1, check_code=False) as pool:
        yield pool


def test_a_recompiled_program_loads_from_the_cache(numba_pool):
    if not numba_pool._workers[0].uid:
        pytest.skip("the compile cache needs candidates under their own uid (run as root)")
    code = "def priority(x):\n    return x * 2.0 + 0.0 * x * x\n"
    first = numba_pool.evaluate(code)
    again = [numba_pool.evaluate(code) for _ in range(3)]
    assert first.compiled is True and all(ev.compiled is True for ev in again)
    assert {ev.score for ev in again} == {first.score}
    # Loading from the cache skips type inference and LLVM: a fraction of a compilation.
    assert min(ev.timings["compile"] for ev in again) < first.timings["compile"] / 2


def test_a_program_cannot_touch_another_programs_cache(numba_pool):
    if not numba_pool._workers[0].uid:
        pytest.skip("the compile cache needs candidates under their own uid (run as root)")
    victim = "def priority(x):\n    return x * 2.0 + 1.0 - 1.0\n"
    assert numba_pool.evaluate(victim).compiled is True
    digest = hashlib.sha256(victim.encode()).hexdigest()[:32]
    # numba cannot compile file I/O, so this runs as Python; it tries to reach the victim's cache directory.
    attacker = ("def priority(x):\n    import os\n    own = os.path.dirname(priority.__code__.co_filename)\n"
                f"    victim = os.path.join(os.path.dirname(own), {digest!r})\n    reached = []\n"
                "    for action in (lambda: os.listdir(victim), lambda: open(os.path.join(victim, 'x'), 'w'),\n"
                "                   lambda: os.rename(victim, victim + '-gone')):\n"
                "        try:\n            action()\n            reached.append(action)\n"
                "        except OSError:\n            pass\n"
                "    return -1000.0 if reached else x * 2.0\n")
    ev = numba_pool.evaluate(attacker)
    assert ev.status == "ok" and ev.compiled is False and ev.scores == {"small": 90.0, "large": 9900.0}, ev
    assert numba_pool.evaluate(victim).status == "ok"
