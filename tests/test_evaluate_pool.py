"""SandboxPool lifecycle and configuration errors (real sandboxes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evoforge.evaluators import SandboxError, SandboxPool, load_problem
from evoforge.evaluators.isolation import available_levels, scrubbed_env

FIXTURES = Path(__file__).parent / "fixtures"
TOY = FIXTURES / "toy_problem.py"


def test_strongest_level_is_chosen_and_recorded():
    levels = available_levels(TOY)
    assert levels and levels[-1] == "rlimits-only"
    with SandboxPool(load_problem(TOY), 1) as pool:
        assert pool.isolation == levels[0]


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        SandboxPool(load_problem(TOY), 1, level="docker")


def test_memory_limit_below_baseline_is_refused():
    with pytest.raises(SandboxError, match="memory_limit_mb"):
        SandboxPool(load_problem(TOY, {"memory_limit_mb": "80"}), 1)


def test_close_stops_every_server_and_is_idempotent():
    pool = SandboxPool(load_problem(TOY), 2)
    procs = [w.proc for w in pool._workers]
    assert pool.evaluate("def f(x):\n    return x * 2\n").ok
    pool.close()
    pool.close()
    assert all(p.poll() is not None for p in procs)
    assert not os.path.exists(pool.host_scratch)
    with pytest.raises(RuntimeError, match="closed"):
        pool.evaluate("def f(x):\n    return x\n")


def test_overrides_reach_the_sandbox():
    problem = load_problem(TOY, {"time_limit_s": "0.3"})
    with SandboxPool(problem, 1) as pool:
        ev = pool.evaluate("def f(x):\n    while True:\n        pass\n")
        assert ev.status == "timeout" and "0.3 s" in ev.error  # the override's limit, not the file's


def test_scrubbed_env_carries_no_engine_variables(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-pass")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    env = scrubbed_env("/tmp")
    assert "OPENAI_API_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["PYTHONHASHSEED"] == "0" and env["OMP_NUM_THREADS"] == "1"
