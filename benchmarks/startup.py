"""How long each `evoforge` command takes to answer, on a run of 10,000 programs, and how soon `run` proposes.

    .venv/bin/python benchmarks/startup.py [--programs 10000] [--repeats 5]

A fresh SQLite database in a temporary folder (deleted afterwards) gets one run of bin_packing's stored config,
filled through ``Store.record_candidates`` with ``--programs`` candidates: offline proposals and programs of a few
hundred characters, nine in ten valid, each the child of an earlier one (so lineages are long), one train
evaluation each, and an island reset every 500 programs. Then each inspection command (`runs`, `show`, `best`,
`program`, `lineage`, and `--help`) runs ``--repeats`` times as a fresh ``python -m evoforge`` process and the
median wall time is printed against the target (0.5 s), with the median CPU time (user + system) beside it: on a
loaded machine the wall time grows with the load average (printed first), the CPU time far less.

`run` is timed from the moment its process starts to its first proposal: with an LLM, to the arrival of the first
chat request at a local OpenAI-speaking server (tests/openai_server.py); with the offline proposer, to the first
proposal row in the database, which also includes evaluating that candidate (an upper bound). Target: 3 s.

The package is byte-compiled first, as `pip install` does: a process that must compile evoforge's sources (an
editable install under PYTHONDONTWRITEBYTECODE, say) spends about 0.3 s more on each command.
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from openai_server import OpenAIServer  # noqa: E402

from evoforge.db import NewCandidate, NewEvaluation, NewProgram, NewProposal, Store  # noqa: E402
from evoforge.engine.program.source import code_hash  # noqa: E402
from evoforge.engine.run.config import RunConfig  # noqa: E402
from evoforge.engine.run.search import stored_config  # noqa: E402
from evoforge.evaluators import load_problem  # noqa: E402

INSPECT_TARGET_S = 0.5
RUN_TARGET_S = 3.0
PROBLEM = REPO / "problems" / "bin_packing.py"
SMALL = {"num_items": "300", "num_instances": "3", "held_out_instances": "2"}
BATCH = 50  # small batches: a child's parent is among the last batches, so lineages run hundreds deep
RESET_EVERY = 500

_LINES = ("    score = bins - item", "    score = -(bins - item) ** 2",
          "    score = np.where(bins >= item, score, -1e9)", "    score += {c} * (bins == bins.max())",
          "    score -= {c} * np.log1p(bins)", "    score = score / (1.0 + {c} * bins)")


def _code(rng: random.Random) -> str:
    body = [line.format(c=round(rng.uniform(0.1, 3.0), 4)) for line in rng.sample(_LINES, 4)]
    return "def priority(item, bins):\n" + "\n".join(body) + "\n    return score\n"


def build_run(url: str, programs: int, seed: int = 0) -> int:
    """Fill a run named 'big' with `programs` programs; return the last program's id."""
    rng = random.Random(seed)
    problem = load_problem(str(PROBLEM), SMALL)
    config = RunConfig(problem=str(problem.path), name="big", budget=programs, overrides=dict(SMALL))
    with Store(url) as store:
        run = store.create_run(name="big", problem_name=problem.name, problem_path=str(problem.path),
                               problem_source=problem.source, problem_hash=problem.source_hash,
                               config=stored_config(config, problem), seed=0)
        ids: list[int] = []
        seed_code = problem.seed_code
        seed_rec = store.record_candidate(run.id, program=NewProgram(
            island=0, origin="seed", code=seed_code, code_hash=code_hash(seed_code), status="ok", score=0.05,
            scores={"train_0": 0.05}), evaluations=[NewEvaluation(kind="train", status="ok", score=0.05)])
        ids.append(seed_rec.program_id)
        while len(ids) < programs:
            batch = []
            for i in range(len(ids), len(ids) + min(BATCH, programs - len(ids))):
                parent = ids[-rng.randint(1, min(len(ids), 20))]
                code = _code(rng)
                ok = rng.random() < 0.9
                score = round(rng.uniform(0.01, 0.05), 6) if ok else None
                batch.append(NewCandidate(
                    proposal=NewProposal(island=i % 4, model="offline", prompt="[]", parent_ids=[parent],
                                         response=code, latency_s=0.001),
                    program=NewProgram(island=i % 4, origin="offline", code=code, code_hash=code_hash(code),
                                       status="ok" if ok else "error", parent_ids=[parent], score=score,
                                       scores={"train_0": score} if ok else {},
                                       error=None if ok else "ZeroDivisionError: division by zero"),
                    evaluations=(NewEvaluation(kind="train", status="ok" if ok else "error", score=score,
                                               timings={"solve": 0.01}),)))
            recorded = store.record_candidates(run.id, batch)
            ids += [r.program_id for r in recorded]
            if len(ids) % RESET_EVERY < BATCH:
                store.record_event(run.id, "reset", {"islands": [2, 3], "founders": [ids[-1], ids[-2]],
                                                     "source_islands": [0, 1]})
        store.set_run_status(run.id, "finished")
    return ids[-1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(args: list[str], repeats: int) -> tuple[float, float]:
    """Median wall time and CPU time (user + system) of `python -m evoforge ARGS` in a fresh process; it must
    succeed. On a loaded machine the wall time grows with the load, the CPU time much less."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run([sys.executable, "-m", "evoforge", *args], capture_output=True, text=True, env=_env())
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu)
        if proc.returncode != 0:
            raise SystemExit(f"evoforge {' '.join(args)} failed:\n{proc.stderr}")
    return statistics.median(walls), statistics.median(cpus)


def _run_args(folder: Path, name: str) -> list[str]:
    args = ["run", str(PROBLEM), "--name", name, "--db", f"sqlite:///{folder / 'run.db'}", "--budget", "1",
            "--quiet"]
    for key, value in SMALL.items():
        args += ["--set", f"{key}={value}"]
    return args


def time_to_offline_proposal(folder: Path, name: str) -> float:
    """Seconds from starting `evoforge run` (offline) to its first proposal row (which includes its evaluation)."""
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "evoforge", *_run_args(folder, name)], capture_output=True,
                          text=True, env=_env())
    if proc.returncode != 0:
        raise SystemExit(f"evoforge run failed:\n{proc.stderr}")
    with Store(f"sqlite:///{folder / 'run.db'}") as store:
        run = store.get_run(name)
        assert run is not None
        first = store.proposals(run.id)[0]
    return first.created_at.timestamp() - start


def time_to_llm_request(folder: Path, name: str) -> float:
    """Seconds from starting `evoforge run --model ...` to the first chat request reaching the server."""
    with OpenAIServer(lambda _request: "```python\ndef priority(item, bins):\n    return -(bins - item)\n```") as srv:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "evoforge", *_run_args(folder, name), "--model",
                               "openai/bench-model", "--api-base", srv.base_url], capture_output=True, text=True,
                              env={**_env(), "OPENAI_API_KEY": "sk-bench"})
        if proc.returncode != 0:
            raise SystemExit(f"evoforge run --model failed:\n{proc.stderr}")
        requests = srv.completion_requests
    if not requests:
        raise SystemExit("evoforge run --model made no request")
    return requests[0].received_at - start


def _ok(seconds: float, target: float) -> str:
    return "yes" if seconds < target else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for package in ("engine", "db", "islands", "evaluators", "problems", "evoforge"):
        compileall.compile_dir(REPO / package, quiet=1)
    with tempfile.TemporaryDirectory(prefix="evoforge-startup-") as tmp:
        folder = Path(tmp)
        db = f"sqlite:///{folder / 'big.db'}"
        start = time.perf_counter()
        last = build_run(db, args.programs)
        print(f"built a run of {args.programs} programs in {time.perf_counter() - start:.1f} s; "
              f"{args.repeats} repeats each, median wall time\n")
        rows = [("--help", ["--help"]), ("runs", ["runs", "--db", db]), ("show", ["show", "big", "--db", db]),
                ("best -n 5", ["best", "big", "-n", "5", "--db", db]),
                ("program", ["program", str(last), "--db", db]), ("lineage", ["lineage", str(last), "--db", db]),
                ("runs --json", ["runs", "--json", "--db", db]), ("show --json", ["show", "big", "--json", "--db", db])]
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
        print(f"{'command':<28} {'wall s':>8} {'cpu s':>7} {'target':>7}  ok")
        baseline = time_command(["--version"], args.repeats)
        print(f"{'--version (imports only)':<28} {baseline[0]:8.3f} {baseline[1]:7.3f}")
        for label, command in rows:
            seconds, cpu = time_command(command, args.repeats)
            print(f"{label:<28} {seconds:8.3f} {cpu:7.3f} {INSPECT_TARGET_S:7.1f}  {_ok(seconds, INSPECT_TARGET_S)}")
        runs = max(1, args.repeats // 2)
        for label, measure in (("run: first proposal offline", time_to_offline_proposal),
                               ("run: first LLM request", time_to_llm_request)):
            seconds = statistics.median(measure(folder, f"{label[-3:]}-{i}") for i in range(runs))
            print(f"{label:<28} {seconds:8.3f} {'':>7} {RUN_TARGET_S:7.1f}  {_ok(seconds, RUN_TARGET_S)}")


if __name__ == "__main__":
    main()
