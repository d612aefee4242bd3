"""Measure sandbox overhead per evaluation (total minus solve time) at each isolation level on this machine.

    python benchmarks/eval_overhead.py [PROBLEM] [-n 200] [--workers 1]

Prints one row per level: median and p90 of the overhead, of the total, and of the fork-to-ready time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluators import SandboxPool, load_problem  # noqa: E402
from evaluators.isolation import available_levels  # noqa: E402

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "toy_problem.py"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", nargs="?", default=str(DEFAULT))
    parser.add_argument("-n", type=int, default=200, help="evaluations per level")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    problem = load_problem(args.problem)
    print(f"problem {problem.path.name}, {args.n} evaluations of the seed per level, {args.workers} worker(s)")
    print(f"{'level':<14}{'start s':>9}{'overhead ms (median/p90)':>28}{'total ms (median)':>20}"
          f"{'fork->ready ms':>16}")
    for level in available_levels(problem.path):
        t0 = time.perf_counter()
        with SandboxPool(problem, args.workers, level=level) as pool:
            started = time.perf_counter() - t0
            for _ in range(5):  # warm up
                pool.evaluate(problem.seed_code)
            evs = [pool.evaluate(problem.seed_code) for _ in range(args.n)]
        bad = [e for e in evs if e.status != "ok"]
        if bad:
            print(f"{level}: {len(bad)} evaluations failed, e.g. {bad[0].status}: {bad[0].error}")
        overhead = [(e.timings["total"] - e.timings["solve"]) * 1000 for e in evs]
        total = [e.timings["total"] * 1000 for e in evs]
        ready = [e.timings["sandbox_start"] * 1000 for e in evs]
        print(f"{level:<14}{started:>9.2f}{statistics.median(overhead):>17.2f} / {_pct(overhead, 0.9):>7.2f}"
              f"{statistics.median(total):>20.2f}{statistics.median(ready):>16.2f}")


if __name__ == "__main__":
    main()
