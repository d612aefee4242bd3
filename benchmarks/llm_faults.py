"""A search against a flaky LLM provider: does it complete its budget, losing no candidate?

    .venv/bin/python benchmarks/llm_faults.py [--budget 300] [--fault-rate 0.2]

Starts the test server from tests/openai_server.py (a real HTTP server on 127.0.0.1 speaking the OpenAI chat API),
answers prompts for problems/bin_packing.py (small instances) with SEARCH/REPLACE edits, and injects faults at the
given rate: HTTP 500/503, 429 with Retry-After, connection resets, garbage bodies, empty and truncated answers,
and answers slower than the timeout. The same search runs again with no faults for comparison. Prints one table.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from openai_server import Fault, OpenAIServer  # noqa: E402

from evoforge.db import Store  # noqa: E402
from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig  # noqa: E402
from evoforge.engine.run.search import run_search  # noqa: E402
from evoforge.islands import IslandConfig  # noqa: E402

FAULTS = (Fault.http(500), Fault.http(503), Fault.http(429, retry_after=0.2), Fault.reset(),
          Fault.garbage("<html>bad gateway</html>"), Fault.truncated("<<<<<<< SEARCH\n    return -(bi"), "",
          Fault.delay(2.0))


def responder(fault_rate: float, seed: int):
    """Mostly valid edits of the current best heuristic; a `fault_rate` share of faults, drawn reproducibly."""
    lock, counter, draw = threading.Lock(), itertools.count(), random.Random(seed)

    def respond(request: dict) -> str | Fault:
        with lock:
            i, roll, pick = next(counter), draw.random(), draw.randrange(len(FAULTS))
        if roll < fault_rate:
            return FAULTS[pick]
        return (f"<<<<<<< SEARCH\n    return -(bins - item)\n=======\n"
                f"    return -(bins - item) + {0.0005 * (i % 40 + 1):.4f} * (bins - item) ** 2\n>>>>>>> REPLACE")

    return respond


def run(name: str, budget: int, fault_rate: float, folder: Path) -> dict[str, float]:
    db = f"sqlite:///{folder / 'faults.db'}"
    with OpenAIServer(responder(fault_rate, seed=1)) as server:
        models = ModelConfig(models=(ModelEntry("openai/bench", api_base=server.base_url, timeout_s=1.0),),
                             retries=2, backoff_s=0.05)
        config = RunConfig(problem=str(REPO / "problems" / "bin_packing.py"), name=name, budget=budget,
                           workers=2, models=models, islands=IslandConfig(num_islands=2),
                           overrides={"num_items": "200", "num_instances": "2", "held_out_instances": "1"})
        start = time.perf_counter()
        result = run_search(config, db, progress=False)
        wall = time.perf_counter() - start
    with Store(db) as store:
        run_info = store.get_run(name)
        assert run_info is not None
        proposals = store.proposals(run_info.id)
    return {"budget": budget, "recorded": len(proposals), "lost": budget - len(proposals),
            "applied": sum(p.applied for p in proposals), "retried": result.stats.retries,
            "failed calls": result.stats.failed_calls, "best": result.best_score or float("nan"), "wall s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        rows = {f"{args.fault_rate:.0%} faults": run("faulty", args.budget, args.fault_rate, Path(tmp)),
                "no faults": run("clean", args.budget, 0.0, Path(tmp))}
    columns = list(next(iter(rows.values())))
    print(f"bin_packing (small instances), budget {args.budget}, 2 workers, litellm -> local OpenAI test server")
    print(" | ".join(["run", *columns]))
    print(" | ".join("---" for _ in range(len(columns) + 1)))
    for label, row in rows.items():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
        print(" | ".join([label, *cells]))


if __name__ == "__main__":
    main()
