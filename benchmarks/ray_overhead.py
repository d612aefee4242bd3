"""Candidates per second of the same search with the local executor and with Ray actors, and Ray's cost per candidate.

    .venv/bin/python benchmarks/ray_overhead.py [--budget 150] [--workers 2] [--repeats 1]
                                                [--problem problems/bin_packing.py] [--set key=value ...]
                                                [--ray-address HOST:PORT]

Both runs use the offline proposer, the same seed and the same number of sandbox workers (Ray: one actor per
worker, on a local Ray instance with this machine's CPUs unless --ray-address names a cluster). Throughput is the
steady state: candidates recorded between the first and the last proposal's commit, so starting Ray or the
sandboxes is not counted (the start-up time is printed apart). Overhead per candidate is
1/ray_rate - 1/local_rate; the target is Ray within 15% of local throughput at equal workers. With --repeats R the
two alternate R times and each row is the median, which damps other load on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from evoforge.db import Store
from evoforge.engine.run.config import ExecutorSettings, RunConfig
from evoforge.engine.run.search import run_search
from evoforge.evaluators import parse_overrides

REPO = Path(__file__).resolve().parent.parent


def measure(config: RunConfig, db_url: str) -> dict[str, float]:
    """Steady-state candidates per second, start-up seconds and wall seconds of one search."""
    start = time.perf_counter()
    result = run_search(config, db_url, progress=False)
    wall = time.perf_counter() - start
    with Store(db_url) as store:
        run = store.get_run(config.name)
        assert run is not None
        stamps = sorted(p.created_at for p in store.proposals(run.id))
    steady = (stamps[-1] - stamps[0]).total_seconds()
    rate = (len(stamps) - 1) / steady if steady > 0 else float("nan")
    return {"rate": rate, "startup": wall - steady, "wall": wall, "valid": result.stats.valid_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--problem", default=str(REPO / "problems" / "bin_packing.py"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two this many times")
    parser.add_argument("--ray-address", help="a running Ray cluster (default: start a local Ray instance)")
    args = parser.parse_args()
    executors = {
        "local": ExecutorSettings(),
        "ray": ExecutorSettings(ray=True, ray_address=args.ray_address),
    }
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in executors}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for label, executor in executors.items():
                config = RunConfig(problem=args.problem, name=f"overhead-{label}-{repeat}", budget=args.budget,
                                   seed=1, workers=args.workers, overrides=parse_overrides(args.overrides),
                                   executor=executor)
                samples[label].append(measure(config, f"sqlite:///{Path(tmp) / (label + '.db')}"))
    rows = {label: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
            for label, runs in samples.items()}
    local, ray = rows["local"], rows["ray"]
    print(f"{Path(args.problem).name}, offline proposer, budget {args.budget}, workers {args.workers}, "
          f"median of {args.repeats}")
    print("executor | cand/s (steady) | start-up s | wall s | valid")
    print("--- | --- | --- | --- | ---")
    for label, row in rows.items():
        print(f"{label} | {row['rate']:.2f} | {row['startup']:.1f} | {row['wall']:.1f} | {row['valid']:.0%}")
    overhead_ms = 1000 * (1 / ray["rate"] - 1 / local["rate"])
    ratio = ray["rate"] / local["rate"]
    verdict = "within" if ratio >= 0.85 else "NOT within"
    print(f"\nRay overhead per candidate: {overhead_ms:+.1f} ms; Ray throughput is {ratio:.0%} of local "
          f"({verdict} the 15% target)")


if __name__ == "__main__":
    main()
