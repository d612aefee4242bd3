"""How fast `evoforge serve` answers for a big run: every page and API call, timed over real HTTP on loopback.

    .venv/bin/python benchmarks/serve_pages.py [--programs 100000] [--repeats 7] [--seed 0] [--keep FILE.db]

A fresh SQLite database (temporary, deleted afterwards; with ``--keep`` kept in FILE.db and reused when it exists,
upgraded first if an older evoforge wrote it) gets a run 'big' of ``--programs`` candidates made by
benchmarks/db_scale.py's program generator, shaped like a long search: round-robin islands, each child of a recent
program (so lineages run about ``programs / 100`` steps deep), proposals from an LLM (with tokens and cost) and the
offline proposer by turns, about 88% valid, 7% invalid, 3% errors and 2% duplicates, a held-out evaluation for each
new best, two programs rejected by a person and a note. A second run 'small' of 2,000 candidates is there to be
compared with it.

The server's application runs in this process on a free port (aiohttp's TestServer, a real socket). Each request
is timed on a freshly made application, so its first answer ('first') is what a person who just started `evoforge
serve` waits for; then it is fetched ``--repeats`` more times ('median', 'max'). The live pages' polls are timed as a
page open on a running search makes them: before each poll, 10 new candidates are recorded into the run. Target:
200 ms for each. The load average is printed beside the table, since other work on the machine slows every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # db_scale's program generator

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from db_scale import ProgramMaker, candidate  # noqa: E402

from evoforge.db import NewCandidate, NewEvaluation, NewProgram, Store  # noqa: E402
from evoforge.engine.program.source import code_hash  # noqa: E402
from evoforge.engine.serve.app import ServeConfig, make_app  # noqa: E402

TARGET_MS = 200.0
BATCH = 1000
ISLANDS = 4
LIVE_BATCH = 10  # candidates recorded between two polls of a live page
CONFIG = {"run": {"islands": {"num_islands": ISLANDS}}, "settings": {"maximize": True}, "params": {}}


class Filler:
    """Writes candidates into one run the way a long search would, remembering what it needs to go on."""

    def __init__(self, store: Store, run_id: int, seed: int, expected: int, scores: dict[int, float | None]) -> None:
        self.store = store
        self.run_id = run_id
        self.maker = ProgramMaker(expected, seed)
        self.rand = random.Random(seed)
        self.code = self.maker.code()
        self.ids = list(scores)
        self.scores = scores
        self.best = max((s for s in scores.values() if s is not None), default=0.0)

    @classmethod
    def new(cls, store: Store, name: str, seed: int, expected: int) -> Filler:
        """A new run with its seed program (scored on the held-out inputs too, as a search does)."""
        run = store.create_run(name=name, problem_name="cap_set", problem_path="problems/cap_set.py",
                               problem_source="", problem_hash="0", config=CONFIG, seed=seed)
        code = ProgramMaker(1, seed).code()
        program = NewProgram(island=0, origin="seed", code=code, code_hash=code_hash(code), status="ok", score=1.0,
                             scores={"n8_a": 1.0})
        evaluations = [NewEvaluation(kind="train", status="ok", score=1.0, scores={"n8_a": 1.0}),
                       NewEvaluation(kind="held_out", status="ok", score=0.9, scores={"n9_h": 0.9})]
        first = store.record_candidate(run.id, program=program, evaluations=evaluations).program_id
        assert first is not None
        return cls(store, run.id, seed, expected, {first: 1.0})

    @classmethod
    def onto(cls, store: Store, run_id: int, seed: int) -> Filler:
        """Goes on with a run already filled, from its last few hundred programs."""
        recent = store.program_briefs(run_id, after_seq=store.attempts(run_id) - 300)
        filler = cls(store, run_id, seed, 1000, {p.id: p.score for p in recent})
        best = store.best_programs(run_id, 1, maximize=True)
        filler.best = best[0].score if best and best[0].score is not None else filler.best
        return filler

    def _one(self, n: int) -> NewCandidate:
        rand = self.rand
        ids = self.ids
        parent = ids[-rand.randint(1, min(len(ids), 200))] if rand.random() < 0.8 else rand.choice(ids)
        made = candidate(self.maker, n % ISLANDS, [parent], self.code)
        assert made.proposal is not None and made.program is not None
        program = made.program
        evaluations = made.evaluations
        kind = rand.random()
        if kind < 0.02:  # the same code as an earlier program: recorded, never evaluated
            program = dataclasses.replace(program, status="duplicate", score=None, scores={},
                                          duplicate_of=rand.choice(ids))
            evaluations = ()
        elif kind < 0.12:
            status = "invalid" if kind < 0.09 else "error"
            error = "output 3 is not a cap set" if status == "invalid" else "ZeroDivisionError: division by zero"
            program = dataclasses.replace(program, status=status, score=None, scores={}, error=error)
            evaluations = (NewEvaluation(kind="train", status=status, error=error),)
        parent_score = self.scores.get(parent)
        improved = program.score is not None and (parent_score is None or program.score > parent_score)
        llm = n % 2 == 0
        proposal = dataclasses.replace(
            made.proposal, model="gpt-4o-mini" if llm else "offline", prompt_tokens=1500 if llm else 0,
            completion_tokens=300 if llm else 0, cost=0.0004 if llm else 0.0,
            details={"model_choice": "weights", "improved": improved})
        program = dataclasses.replace(program, origin="llm" if llm else "offline")
        return NewCandidate(proposal=proposal, program=program, evaluations=evaluations)

    def add(self, count: int) -> None:
        """Record `count` more candidates, in transactions of up to BATCH; each new best gets a held-out score."""
        while count > 0:
            batch = [self._one(len(self.ids) + i) for i in range(min(BATCH, count))]
            recorded = self.store.record_candidates(self.run_id, batch)
            for rec, cand in zip(recorded, batch):
                assert rec.program_id is not None and cand.program is not None
                self.ids.append(rec.program_id)
                score = cand.program.score
                self.scores[rec.program_id] = score
                if cand.program.status == "ok" and score is not None and score > self.best:
                    self.best = score
                    held = round(score * self.rand.uniform(0.8, 1.0), 3)
                    self.store.add_evaluation(rec.program_id, NewEvaluation(kind="held_out", status="ok",
                                                                            score=held, scores={"n9_h": held}))
            last = batch[-1].program
            self.code = last.code if last is not None else self.code
            count -= len(batch)


def fill(store: Store, programs: int, seed: int) -> None:
    """The runs 'big' and 'small', with a person's rejections and a note on 'big'."""
    from evoforge.engine.run.oversight import annotate_run, reject_program

    big = Filler.new(store, "big", seed, programs)
    big.add(programs)
    ok = [i for i in big.ids[len(big.ids) // 2:] if big.scores[i] is not None][:2]
    for program_id in ok:
        reject_program(store, program_id, why="benchmark: a person rejects it", by="benchmark")
    annotate_run(store, "big", "benchmark: a person's note", by="benchmark")
    Filler.new(store, "small", seed + 1, 2000).add(2000)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


Request = tuple[str, str, Callable[[], None] | None]  # label, URL, what to do before each fetch (a live poll)


def requests(store: Store, late_id: int, total: int) -> list[Request]:
    """Every page and API call of the server; before each live poll the run gains LIVE_BATCH candidates."""
    big = store.get_run("big")
    assert big is not None
    search = Filler.onto(store, big.id, seed=12345)

    def more() -> None:
        search.add(LIVE_BATCH)

    return [
        ("runs page", "/", None),
        ("runs, live poll", "/api/runs", more),
        ("run page", "/runs/big", None),
        ("run curve, whole", "/api/runs/big/curve?since=0", None),
        ("run curve, live poll", f"/api/runs/big/curve?since={total}", more),
        ("program page", f"/programs/{late_id}", None),
        ("lineage tree (top 10)", "/runs/big/lineage", None),
        ("compare page", "/compare?a=big&b=small", None),
        ("compare, 2nd curve", "/api/runs/small/curve?since=0", None),
    ]


async def measure(store: Store, reqs: list[Request], repeats: int) -> list[Timed]:
    results = []
    for label, url, before in reqs:
        client = TestClient(TestServer(make_app(ServeConfig(store=store, token="benchmark"))))
        await client.start_server()
        try:
            times, failed = [], set()
            for _ in range(repeats + 1):
                if before is not None:
                    before()
                start = time.perf_counter()
                response = await client.get(url)
                await response.read()
                times.append((time.perf_counter() - start) * 1000)
                if response.status != 200:
                    failed.add(response.status)
        finally:
            await client.close()
        results.append(Timed(label, url, times[0], times[1:], sorted(failed)))
    return results


@dataclasses.dataclass(frozen=True)
class Timed:
    label: str
    url: str
    first_ms: float
    then_ms: list[float]
    failed: list[int]  # HTTP statuses other than 200 that it answered (a page that fails is no faster for it)


def table(rows: list[Timed]) -> str:
    lines = [f"{'page or call':<24} {'url':<34} {'first ms':>9} {'median ms':>10} {'max ms':>8}  "
             f"target {TARGET_MS:.0f} ms"]
    for r in rows:
        med = statistics.median(r.then_ms)
        verdict = ("FAILED " + ",".join(map(str, r.failed)) if r.failed
                   else "ok" if max(r.first_ms, med) <= TARGET_MS else "SLOW")
        lines.append(f"{r.label:<24} {r.url[:34]:<34} {r.first_ms:>9.1f} {med:>10.1f} {max(r.then_ms):>8.1f}  "
                     f"{verdict}")
    return "\n".join(lines)


def open_store(path: Path) -> Store:
    """The kept database, upgraded in place first when an older evoforge wrote it."""
    from evoforge.db import StoreError

    try:
        return Store(f"sqlite:///{path.resolve()}")
    except StoreError as err:
        if "evoforge upgrade" not in str(err):
            raise
    from evoforge.db.schema import upgrade_database

    start = time.perf_counter()
    steps = upgrade_database(f"sqlite:///{path.resolve()}")
    print(f"upgraded {path} in {time.perf_counter() - start:.1f}s: {'; '.join(steps)}")
    return Store(f"sqlite:///{path.resolve()}")


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
        if not reuse:
            start = time.perf_counter()
            with Store(f"sqlite:///{path.resolve()}") as store:
                fill(store, args.programs, args.seed)
            print(f"filled runs 'big' ({args.programs + 1} programs) and 'small' in "
                  f"{time.perf_counter() - start:.1f}s")
        with open_store(path) as store:
            big = store.get_run("big")
            assert big is not None
            recent = store.program_briefs(big.id, after_seq=store.attempts(big.id) - 100)
            late = next(b.id for b in reversed(recent) if b.status == "ok")
            counts = store.status_counts(big.id)
            total = sum(counts.values()) - counts.get("duplicate", 0)
            print(f"run 'big': {total} evaluated candidates; {load()}")
            rows = asyncio.run(measure(store, requests(store, late, total), args.repeats))
    print()
    print(table(rows))
    print(f"({load()}; first: the first answer of a freshly started server; median and max of {args.repeats} more)")


if __name__ == "__main__":
    main()
