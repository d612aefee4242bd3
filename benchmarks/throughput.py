"""Candidates per second with the offline proposer on each bundled problem, and where the time of a candidate goes.

    .venv/bin/python benchmarks/throughput.py [--budget 60] [--workers 1]

Each problem gets a fresh SQLite database in a temporary folder. The split is per candidate evaluated, in ms:
propose and patch happen in the controller; sandbox start, compile and solve inside the sandbox; score is the
trusted scoring; database is the one transaction per candidate.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from evoforge.engine.run.config import RunConfig
from evoforge.engine.run.search import run_search

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = ("cap_set", "bin_packing")
PARTS = ("propose", "patch", "sandbox_start", "compile", "solve", "score", "database")


def measure(problem: str, budget: int, workers: int, folder: Path) -> dict[str, float]:
    config = RunConfig(problem=str(REPO / "problems" / f"{problem}.py"), name=f"throughput-{problem}",
                       budget=budget, workers=workers)
    result = run_search(config, f"sqlite:///{folder / (problem + '.db')}", progress=False)
    stats = result.stats
    evaluated = max(1, stats.evaluated)
    row = {"cand/s": stats.throughput, "valid": stats.valid_rate, "evaluated": stats.evaluated,
           "duplicates": stats.duplicates, "failed": stats.failed_proposals}
    row.update({part: 1000 * stats.seconds.get(part, 0.0) / evaluated for part in PARTS})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {name: measure(name, args.budget, args.workers, Path(tmp))
                for name in PROBLEMS}
    header = ["problem", "cand/s", "valid", "eval'd", "dup", "failed"] + [f"{p} ms" for p in PARTS]
    print(f"offline proposer, budget {args.budget}, workers {args.workers}")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, row in rows.items():
        cells = [name, f"{row['cand/s']:.2f}", f"{row['valid']:.0%}", str(row["evaluated"]),
                 str(row["duplicates"]), str(row["failed"])] + [f"{row[p]:.1f}" for p in PARTS]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
