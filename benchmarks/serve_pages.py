"""How fast `evoforge serve` answers for a big run: each page and API call, timed over real HTTP on loopback.

    .venv/bin/python benchmarks/serve_pages.py [--programs 100000] [--repeats 7] [--seed 0]

A fresh SQLite database (temporary, deleted afterwards) gets one run of ``--programs`` finished candidates made by
benchmarks/db_scale.py's generator (proposal, ok program of 300-600 characters, train evaluation; each with a
random earlier parent, round-robin islands), plus a seed. The server's application is started in this process on a
free port (aiohttp's TestServer, a real socket) and each URL is fetched ``--repeats`` times after one warm-up;
the table gives the median and the slowest time against the target (200 ms). The live page's polling call is the
curve from a recent point (``since`` near the end), which is what a page open on a running search asks every two
seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # db_scale's program generator

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from db_scale import ProgramMaker, candidate  # noqa: E402

from evoforge.db import NewCandidate, NewEvaluation, NewProgram, Store  # noqa: E402
from evoforge.engine.program.source import code_hash  # noqa: E402
from evoforge.engine.serve.app import ServeConfig, make_app  # noqa: E402

TARGET_MS = 200.0
BATCH = 1000


def fill(store: Store, programs: int, seed: int) -> tuple[str, int]:
    """One run with a seed and `programs` candidates; returns its name and a late program's id."""
    config = {"run": {"islands": {"num_islands": 4}}, "settings": {"maximize": True}, "params": {}}
    run = store.create_run(name="big", problem_name="cap_set", problem_path="problems/cap_set.py",
                           problem_source="", problem_hash="0", config=config, seed=seed)
    maker = ProgramMaker(programs, seed)
    code = maker.code()
    seed_program = NewProgram(island=0, origin="seed", code=code, code_hash=code_hash(code), status="ok",
                              score=1.0, scores={"n8_a": 1.0}, parent_ids=[])
    seed_eval = NewEvaluation(kind="train", status="ok", score=1.0, scores={"n8_a": 1.0})
    ids = [store.record_candidate(run.id, program=seed_program, evaluations=[seed_eval]).program_id]
    rand = random.Random(seed)
    while len(ids) <= programs:
        batch: list[NewCandidate] = []
        for _ in range(min(BATCH, programs + 1 - len(ids))):
            parent = rand.choice(ids)
            batch.append(candidate(maker, len(ids) % 4, [parent], code))
        ids += [r.program_id for r in store.record_candidates(run.id, batch)]
    return run.name, ids[-5]


async def measure(store: Store, name: str, late_id: int, total: int, repeats: int) -> list[tuple[str, list[float]]]:
    client = TestClient(TestServer(make_app(ServeConfig(store=store, token="benchmark"))))
    await client.start_server()
    urls = [("/", "runs page"), (f"/runs/{name}", "run page"), (f"/api/runs/{name}/curve?since=0", "whole curve"),
            (f"/api/runs/{name}/curve?since={total - 20}", "curve, new points (live poll)"),
            (f"/programs/{late_id}", "program page"), (f"/runs/{name}/lineage", "lineage tree"),
            ("/api/runs", "runs API (live poll)")]
    results = []
    try:
        for url, label in urls:
            times = []
            for i in range(repeats + 1):
                start = time.perf_counter()
                response = await client.get(url)
                await response.read()
                assert response.status == 200, (url, response.status)
                if i:  # the first fetch warms caches
                    times.append((time.perf_counter() - start) * 1000)
            results.append((f"{label}  {url}", times))
    finally:
        await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="FILE.db", help="keep the filled database here (reused when it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "big.db"
        reuse = path.exists()
        with Store(f"sqlite:///{path.resolve()}") as store:
            start = time.perf_counter()
            if reuse:
                run = store.list_runs()[0]
                briefs = store.program_briefs(run.id)
                name, late, total = run.name, briefs[-5].id, len(briefs)
                print(f"reusing {path}: a run of {total} programs")
            else:
                name, late = fill(store, args.programs, args.seed)
                total = args.programs + 1
                print(f"filled a run of {total} programs in {time.perf_counter() - start:.1f}s")
            rows = asyncio.run(measure(store, name, late, total, args.repeats))
    print(f"\n{'request':<64} {'median ms':>10} {'max ms':>8}  target {TARGET_MS:.0f} ms")
    for label, times in rows:
        med = statistics.median(times)
        verdict = "ok" if med <= TARGET_MS else "SLOW"
        print(f"{label:<64} {med:>10.1f} {max(times):>8.1f}  {verdict}")


if __name__ == "__main__":
    main()
