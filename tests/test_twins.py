"""Behavioural twins judged on the first input or on every input (`behaviour_inputs`).

The toy problem doubles a number; its inputs are a=1 and b=2 and its score is the output. `2 if x == 1 else 3 * x`
answers a like doubling and b otherwise: a twin of doubling on the first input (a false twin), not on all of them.
`x + x` answers both like doubling: a true twin. Real sandboxes, a real HTTP server, real SQLite.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.run.config import ConfigError, ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import run_search
from evoforge.evaluators import SandboxPool, load_problem
from evoforge.islands import IslandConfig

TOY = str(Path(__file__).resolve().parent / "fixtures" / "toy_problem.py")
DOUBLES = "def f(x):\n    return 2 * x\n"
FALSE_TWIN = "def f(x):\n    return 2 if x == 1 else 3 * x\n"
TRUE_TWIN = "def f(x):\n    return x + x\n"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


@pytest.mark.parametrize("inputs", ["first", "all"])
def test_the_digest_covers_the_first_input_or_every_input(inputs: str) -> None:
    with SandboxPool(load_problem(TOY), 1, behaviour_inputs=inputs) as pool:
        doubles, false_twin, true_twin = (pool.evaluate(code) for code in (DOUBLES, FALSE_TWIN, TRUE_TWIN))
    assert (doubles.status, false_twin.status, false_twin.scores) == ("ok", "ok", {"a": 2.0, "b": 6.0})
    assert true_twin.behaviour == doubles.behaviour
    assert (false_twin.behaviour == doubles.behaviour) is (inputs == "first")


@pytest.mark.parametrize("inputs", ["first", "all"])
def test_a_probe_stops_only_a_twin_on_the_inputs_compared(inputs: str) -> None:
    with SandboxPool(load_problem(TOY), 1, behaviour_inputs=inputs) as pool:
        seen = {pool.evaluate(DOUBLES).behaviour: 42}  # as if program 42 had doubled before
        false_twin, true_twin = (pool.evaluate(code, probe=seen.get) for code in (FALSE_TWIN, TRUE_TWIN))
    assert (true_twin.status, true_twin.duplicate_of) == ("duplicate", 42)
    if inputs == "first":
        assert (false_twin.status, false_twin.duplicate_of) == ("duplicate", 42)
    else:
        assert (false_twin.status, false_twin.score, false_twin.duplicate_of) == ("ok", 4.0, None)  # mean of 2, 6


def test_unknown_behaviour_inputs_are_refused_and_old_runs_compared_the_first() -> None:
    with pytest.raises(ConfigError, match=r"behaviour_inputs \(--behaviour-inputs\) last: use one of first, all"):
        RunConfig(problem="p.py", name="x", behaviour_inputs="last")
    stored = RunConfig(problem="p.py", name="x", behaviour_inputs="all").to_dict()
    assert RunConfig.from_dict(stored).behaviour_inputs == "all"
    del stored["behaviour_inputs"]  # a run stored before the setting existed
    assert RunConfig.from_dict(stored).behaviour_inputs == "first"


@pytest.mark.parametrize("inputs", ["first", "all"])
def test_a_search_evaluates_a_false_twin_in_full_only_when_twins_are_judged_on_every_input(
        tmp_path: Path, inputs: str) -> None:
    answers = iter([FALSE_TWIN, TRUE_TWIN])
    lock = threading.Lock()

    def respond(request: dict) -> str:
        with lock:
            return f"```python\n{next(answers)}```"

    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(respond) as server:
        entry = ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=5)
        config = RunConfig(offline_share=0.0, problem=TOY, name=inputs, budget=2, concurrency=1,
                           behaviour_inputs=inputs,
                           islands=IslandConfig(num_islands=1, reset_period=1000),
                           models=ModelConfig(models=(entry,), backoff_s=0.05))
        run_search(config, db, progress=False)
    with Store(db) as store:
        run = store.get_run(inputs)
        assert run is not None
        programs = store.get_programs([p.id for p in store.program_briefs(run.id)])
    seed, false_twin, true_twin = programs[0], programs[1], programs[2]
    assert (seed.code, false_twin.code.strip(), true_twin.code.strip()) == (
        seed.code, FALSE_TWIN.strip(), TRUE_TWIN.strip())
    assert (true_twin.status, true_twin.duplicate_of) == ("duplicate", seed.id)
    if inputs == "first":  # taken for the seed's twin: never scored on b
        assert (false_twin.status, false_twin.duplicate_of) == ("duplicate", seed.id)
    else:
        assert (false_twin.status, false_twin.scores) == ("ok", {"a": 2.0, "b": 6.0})
