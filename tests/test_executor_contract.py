"""The executor contract, run against every executor the search can use: the local sandbox pool and Ray actors.

An executor's evaluation is the sandbox's verdict on the program (the same status, scores, error, output and
behaviour digest as a `SandboxPool` gives), marked with the node that ran it; each caller gets the evaluation of its
own program however many run at once; a behaviour probe either stops a duplicate early or leaves the digest for the
controller to compare. So a search with the same seed finds the same programs and scores on either executor.

Ray starts once per module (a local instance, as `--ray` without an address starts it): its start-up is slow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from search_faults import BIN_PACKING, SMALL, programs_of

from evoforge.engine.run.config import ExecutorSettings, RunConfig
from evoforge.engine.run.executor import Executor, LocalExecutor
from evoforge.engine.run.node_evaluation import NodeEvaluation
from evoforge.engine.run.search import run_search
from evoforge.evaluators import Evaluation, Problem, SandboxPool, load_problem
from evoforge.islands import IslandConfig

TOY = str(Path(__file__).resolve().parent / "fixtures" / "toy_problem.py")
WORKERS = 2

PROGRAMS = {  # the toy problem's f(x) doubles x; its score is f's output, on inputs a=1 and b=2 (held out: c=3)
    "triples": "def f(x):\n    return x * 3\n",
    "doubles": "def f(x):\n    return x + x\n",
    "prints": "def f(x):\n    print('f of', x)\n    return x - 1\n",
    "raises": "def f(x):\n    raise ValueError('no answer for ' + str(x))\n",
    "nan": "def f(x):\n    return float('nan')\n",
    "syntax": "def f(x)\n    return x\n",
    "loops": "def f(x):\n    while True:\n        pass\n",
}


def verdict(ev: Evaluation) -> tuple:
    """Everything an evaluation says about the program; timings (and the node) vary from run to run."""
    return (ev.status, ev.score, ev.scores, ev.error, ev.compiled, ev.stdout, ev.stage, ev.behaviour,
            ev.duplicate_of)


@pytest.fixture(scope="module")
def problem() -> Problem:
    return load_problem(TOY)


@pytest.fixture(scope="module")
def reference(problem: Problem) -> dict[tuple[str, bool], Evaluation]:
    """What the sandbox itself says of each program, on the training and on the held-out inputs."""
    pool = SandboxPool(problem, 1)
    try:
        return {(name, held_out): pool.evaluate(code, held_out=held_out)
                for name, code in PROGRAMS.items() for held_out in (False, True)}
    finally:
        pool.close()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray instance for the module, started as `--ray` starts one; executors made meanwhile join it."""
    pytest.importorskip("ray", reason="the Ray half of the contract needs Ray: pip install 'evoforge[ray]'")
    import ray

    from evoforge.engine.run.ray_executor import start_ray

    assert start_ray(None, 2 * WORKERS), "Ray was already running in the test process"
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the module, as a search has one for its whole life: executors may bind to it."""
    running = asyncio.new_event_loop()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module", params=["local", "ray"])
def executor(request: pytest.FixtureRequest, problem: Problem) -> Iterator[Executor]:
    made: Executor
    if request.param == "local":
        made = LocalExecutor(SandboxPool(problem, WORKERS))
    else:
        request.getfixturevalue("local_ray")
        from evoforge.engine.run.ray_executor import RayExecutor

        made = RayExecutor(problem, problem.overrides, WORKERS)
    try:
        yield made
    finally:
        made.close()


def run(loop: asyncio.AbstractEventLoop, *calls) -> list[Evaluation]:
    async def together() -> list[Evaluation]:
        return list(await asyncio.gather(*calls))

    return loop.run_until_complete(together())


def test_every_program_gets_the_sandbox_verdict_and_the_node_that_ran_it(executor, loop, reference) -> None:
    results = run(loop, *(executor.evaluate(code) for code in PROGRAMS.values()))
    for name, result in zip(PROGRAMS, results):
        assert verdict(result) == verdict(reference[name, False]), name
        assert isinstance(result, NodeEvaluation) and result.node, name
    # The reference covers every way a program can end, or this test proves little.
    assert {ev.status for ev in reference.values()} >= {"ok", "error", "invalid", "timeout"}


def test_held_out_evaluations_score_the_held_out_inputs(executor, loop, reference) -> None:
    results = run(loop, *(executor.evaluate(code, held_out=True) for code in PROGRAMS.values()))
    for name, result in zip(PROGRAMS, results):
        assert verdict(result) == verdict(reference[name, True]), name
    assert results[0].scores == {"c": 9.0}


def test_each_caller_gets_its_own_program_when_more_run_than_there_are_workers(executor, loop) -> None:
    factors = range(1, 4 * WORKERS + 1)
    results = run(loop, *(executor.evaluate(f"def f(x):\n    return x * {k}\n") for k in factors))
    assert [(r.status, r.scores) for r in results] == [("ok", {"a": k, "b": 2.0 * k}) for k in factors]


def test_a_probe_stops_a_duplicate_early_or_leaves_its_digest_to_compare(executor, loop, reference) -> None:
    seed = reference["doubles", False]
    seen = {seed.behaviour: 42}  # as if program 42 had behaved like doubling before
    twice, triple = run(loop, executor.evaluate("def f(x):\n    return 2 * x\n", probe=seen.get),
                        executor.evaluate(PROGRAMS["triples"], probe=seen.get))
    if twice.status == "duplicate":  # the executor consulted the probe
        assert twice.duplicate_of == 42
    else:  # the executor ignored the probe: the controller compares the digest instead
        assert (twice.status, twice.behaviour) == ("ok", seed.behaviour)
    assert verdict(triple) == verdict(reference["triples", False])  # a new behaviour is evaluated in full


def test_the_same_seed_finds_the_same_programs_and_scores_on_either_executor(local_ray, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"

    def search(name: str, executor: ExecutorSettings) -> None:
        # One candidate in flight: then a seed fixes the run (with more, the order they finish in may vary).
        config = RunConfig(problem=BIN_PACKING, name=name, budget=16, seed=5, overrides=dict(SMALL),
                           workers=WORKERS, concurrency=1, islands=IslandConfig(num_islands=2, reset_period=8),
                           executor=executor)
        assert run_search(config, db, progress=False).status == "finished"

    search("local", ExecutorSettings())
    search("ray", ExecutorSettings(ray=True))
    local, on_ray = programs_of(db, "local"), programs_of(db, "ray")
    assert on_ray == local
    assert len(local) == 17 and len({score for *_, score in local}) > 1  # the seed and 16 different programs
