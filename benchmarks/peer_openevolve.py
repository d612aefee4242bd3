"""OpenEvolve 0.4.0 on evoforge's bin-packing problem, fed by the same mutation server as benchmarks/quality.py.

    .venv/bin/python benchmarks/peer_openevolve.py [--openevolve-python /work/oe-venv/bin/python]
        [--set num_items=5000 ...] [--budgets 100,300] [--seeds 3] [--first-seed 0] [--json out.jsonl]
    .venv/bin/python benchmarks/peer_openevolve.py --from peer.jsonl --from quality.jsonl   # one table of both

OpenEvolve runs in its own interpreter (install it apart: `python3 -m venv /work/oe-venv &&
/work/oe-venv/bin/pip install openevolve==0.4.0`), from its command line, on the instances of
problems/bin_packing.py (the same `--set` parameters as quality.py), starting from the problem's seed `priority`.
Its evaluator, benchmarks/openevolve_evaluator.py, computes the problem's score (excess bins over L1, in %);
OpenEvolve maximises, so its combined_score is the negated score, and this table shows the score itself, lower is
better. Each seed s runs OpenEvolve with random_seed s against benchmarks/mutation_server.py seeded with s, as
quality.py does for evoforge. OpenEvolve's configuration is its defaults but for what the setting needs:
max_iterations (the largest budget; one iteration is one proposal), random_seed, one model (name "mutation",
weight 1) at the server's api_base with a placeholder api_key. Defaults kept include diff-based evolution, 5
islands, population 1000, MAP-Elites over complexity and diversity, 1 parallel evaluation, cascade evaluation
(the evaluator has no stages, so it evaluates directly), 300 s evaluation timeout.

The running best after b proposals is read from OpenEvolve's own log (each iteration's child and its metrics, or
its error): the best valid score among the seed and the children of iterations 1..b. Printed like quality.py:
mean best with a 95% interval, valid rate (children evaluated that packed), wall time; OpenEvolve has no
duplicate detection, so that column reads "-".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from openevolve_evaluator import excess_percent  # noqa: E402
from quality import Outcome, table  # noqa: E402

DEFAULT_PYTHON = Path("/work/oe-venv/bin/python")
VARIANT = "openevolve"
ORDER = ("default", "no-search", VARIANT)  # the rows of a combined table, when present

_CHILD = re.compile(r" - Iteration (\d+): Program (\S+) \(parent: \S+\) completed in")
_ERROR = re.compile(r" - Iteration (\d+) error: ")
_METRICS = re.compile(r" - INFO - Metrics: (.*)$")
_EVALUATED = re.compile(r" - Evaluated program (\S+) in [\d.]+s: (.*)$")


@dataclasses.dataclass(frozen=True)
class Step:
    """One iteration as OpenEvolve's log tells it: the child's excess bins, None if invalid, or no child at all."""

    iteration: int
    child: bool
    excess_bins: int | None


def parse_metrics(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(", ") if "=" in part)


def read_log(text: str) -> tuple[int | None, list[Step]]:
    """The seed's excess bins and every iteration's outcome, from an OpenEvolve log."""
    seed: int | None = None
    seen_initial = False
    steps: list[Step] = []
    pending: int | None = None
    for line in text.splitlines():
        if not seen_initial and "Adding initial program to database" in line:
            seen_initial = True
            continue
        if seen_initial and seed is None and (m := _EVALUATED.search(line)):
            seed = _excess(parse_metrics(m.group(2)))
            continue
        if m := _CHILD.search(line):
            pending = int(m.group(1))
        elif (m := _METRICS.search(line)) and pending is not None:
            steps.append(Step(pending, True, _excess(parse_metrics(m.group(1)))))
            pending = None
        elif m := _ERROR.search(line):
            steps.append(Step(int(m.group(1)), False, None))
    return seed, steps


def _excess(metrics: dict[str, str]) -> int | None:
    if float(metrics.get("valid", "0")) != 1.0:
        return None
    return int(round(float(metrics["excess_bins"])))


def running_best(seed: int, steps: list[Step], budgets: tuple[int, ...], instances: list[Any]) -> tuple[float, ...]:
    """The best (lowest) valid excess in % among the seed and the children of iterations 1..b, for each budget b."""
    out = []
    for budget in budgets:
        excess = [seed] + [s.excess_bins for s in steps if s.iteration <= budget and s.excess_bins is not None]
        out.append(excess_percent(min(excess), instances))
    return tuple(out)


def problem_files(overrides: dict[str, str], folder: Path) -> tuple[Path, Path, list[Any]]:
    """The problem's training instances (JSON) and its seed as OpenEvolve's initial program."""
    from evoforge.evaluators import load_problem

    problem = load_problem(str(REPO / "problems" / "bin_packing.py"), overrides)
    instances = folder / "instances.json"
    instances.write_text(json.dumps(problem.inputs))
    initial = folder / "initial_program.py"
    initial.write_text("import numpy as np\n\n\n" + problem.seed_code)
    return instances, initial, list(problem.inputs.values())


def config_yaml(iterations: int, seed: int, api_base: str) -> str:
    """OpenEvolve's config: only what the setting needs; everything else stays OpenEvolve's default."""
    return (f"max_iterations: {iterations}\nrandom_seed: {seed}\n"
            f"llm:\n  api_base: {api_base}\n  api_key: none\n  models:\n    - name: mutation\n      weight: 1.0\n")


def run_seed(seed: int, overrides: dict[str, str], budgets: tuple[int, ...], python: Path,
             keep: Path | None) -> Outcome:
    """One OpenEvolve search of the largest budget against a mutation server seeded with `seed`."""
    import mutation_server

    with tempfile.TemporaryDirectory() as tmp:
        folder = keep / f"seed{seed}" if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        instances_path, initial, instances = problem_files(overrides, folder)
        server = mutation_server.serve(seed)
        try:
            config = folder / "config.yaml"
            config.write_text(config_yaml(max(budgets), seed, server.base_url))
            output = folder / "output"
            env = {**os.environ, "EVOFORGE_PEER_INSTANCES": str(instances_path)}
            command = [str(python), "-m", "openevolve.cli", str(initial),
                       str(REPO / "benchmarks" / "openevolve_evaluator.py"), "--config", str(config),
                       "--output", str(output), "--iterations", str(max(budgets))]
            start = time.perf_counter()
            with (folder / "console.log").open("w") as console:
                done = subprocess.run(command, env=env, stdout=console, stderr=subprocess.STDOUT, cwd=folder)
            wall = time.perf_counter() - start
        finally:
            server.stop()
        logs = sorted((output / "logs").glob("*.log"))
        if done.returncode != 0 or not logs:
            tail = (folder / "console.log").read_text()[-2000:]
            raise RuntimeError(f"OpenEvolve (seed {seed}) exited {done.returncode}:\n{tail}")
        seed_excess, steps = read_log(logs[-1].read_text())
    if seed_excess is None:
        raise RuntimeError(f"seed {seed}: the log shows no valid score for the initial program")
    if len(steps) != max(budgets):
        raise RuntimeError(f"seed {seed}: the log shows {len(steps)} iterations, not {max(budgets)}")
    children = [s for s in steps if s.child]
    valid = sum(s.excess_bins is not None for s in children)
    return Outcome(VARIANT, seed, running_best(seed_excess, steps, budgets, instances),
                   valid / len(children) if children else 0.0, math.nan, wall,
                   tokens_per_proposal=math.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openevolve-python", type=Path, default=DEFAULT_PYTHON,
                        help="the interpreter OpenEvolve 0.4.0 is installed in")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="bin_packing parameter")
    parser.add_argument("--budgets", default="100,300")
    parser.add_argument("--seeds", type=int, default=3, help="searches (seeds first-seed .. first-seed+N-1)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="append every outcome to this file as it finishes (JSON lines)")
    parser.add_argument("--keep", type=Path, help="keep each seed's OpenEvolve files (config, logs) here")
    parser.add_argument("--from", dest="saved", type=Path, action="append", default=[],
                        help="print one table of outcomes saved with --json, by this script or quality.py")
    args = parser.parse_args()
    budgets = tuple(sorted(int(b) for b in args.budgets.split(",")))
    if args.saved:
        rows = [Outcome(**{**row, "best": tuple(row["best"])}) for path in args.saved
                for row in map(json.loads, path.read_text().splitlines())]
        variants = [v for v in ORDER if any(o.variant == v for o in rows)]
        print(table(rows, variants, budgets))
        return
    python = args.openevolve_python
    if not python.exists() or subprocess.run([str(python), "-c", "import openevolve"],
                                             capture_output=True).returncode != 0:
        sys.exit(f"OpenEvolve is missing: {python} does not exist or cannot import openevolve. Install it apart: "
                 "python3 -m venv /work/oe-venv && /work/oe-venv/bin/pip install openevolve==0.4.0, "
                 "or name its interpreter with --openevolve-python")
    overrides = dict(item.split("=", 1) for item in args.set)
    os.environ.setdefault("OPENAI_API_KEY", "none")
    start = time.perf_counter()
    outcomes = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        outcome = run_seed(seed, overrides, budgets, python, args.keep)
        outcomes.append(outcome)
        if args.json:
            with args.json.open("a") as out:
                out.write(json.dumps(dataclasses.asdict(outcome)) + "\n")
        print(f"  {VARIANT} seed {seed}: " + ", ".join(f"@{b} {s:.5g}" for b, s in zip(budgets, outcome.best))
              + f" ({outcome.wall_s:.0f} s)", file=sys.stderr, flush=True)
    settings = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
    print(f"problem bin_packing ({settings}), OpenEvolve 0.4.0 with the mutation server, {args.seeds} seeds from "
          f"{args.first_seed}, one model, OpenEvolve's defaults otherwise; took {time.perf_counter() - start:.0f} s")
    print()
    print(table(outcomes, [VARIANT], budgets))


if __name__ == "__main__":
    main()
