"""Whether selecting parents and recording a program stay fast as a run grows to many programs.

    .venv/bin/python benchmarks/db_scale.py [--programs 100000] [--repeats 2000] [--batch 1000] [--seed 0]

A fresh SQLite database (in a temporary folder, deleted afterwards) gets one run, filled with ``--programs``
finished candidates: an offline proposal, a status-ok program of 300 to 600 characters of code, and one train
evaluation each, written with ``Store.record_candidates`` in batches of ``--batch``. Every program is also
registered in an ``IslandModel`` with 4 islands, round robin, as the controller does. Scores on 5 inputs are drawn
from a pool of signatures about a fifth the size of the run, so each island holds thousands of clusters. No island
resets are applied, so the islands keep every program: the worst case for sampling (a real run resets the worse
half every ``reset_period`` registrations and so keeps its islands smaller).

Then each operation the controller does once per candidate is timed ``--repeats`` times with
``time.perf_counter``, after a short untimed warm-up, and its median and p99 in ms are printed as a table against
the target (5 ms):

- select parents: ``IslandModel.select_parents(island, rng)`` plus ``Store.get_programs(ids)``, which reads the
  parents' code for the prompt;
- find by hash, hit and miss: ``Store.find_by_hash``, the dedupe lookup of a new program's code hash, once for
  a hash the run holds and once for one it does not;
- record program: ``Store.record_candidate`` of one new candidate (proposal, program, train evaluation) in its
  own transaction, plus ``IslandModel.register``.

The fill time and the size of the database file (its write-ahead log included) are printed too.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evoforge.db import NewCandidate, NewEvaluation, NewProgram, NewProposal, Store
from evoforge.engine.program.source import code_hash
from evoforge.islands import IslandConfig, IslandModel

TARGET_MS = 5.0
NUM_ISLANDS = 4
INPUTS = ("n8_a", "n8_b", "n9_a", "n9_b", "n10")
DISTINCT_SIGNATURE_SHARE = 0.2
WARMUP = 20

_SYSTEM = ("You improve a Python function that scores elements for a cap set. Reply with the whole function in "
           "one python code block; keep its name and signature, add no imports.")

# Statement templates for the body of a generated priority function; {c0}..{c2} are random constants.
_STATEMENTS = (
    "    score += {c0} * sum(1 for x in el if x == {k})",
    "    if el[{j}] == el[{k}]:\n        score -= {c1}",
    "    score += {c0} * (el.count(0) - el.count(2)) / max(n, 1)",
    "    for i, x in enumerate(el):\n        if x == {k}:\n            score += {c2} * (i + 1) / n",
    "    score *= 1.0 + {c1} * (sum(el) % {m}) / {m}",
    "    if sum(el) % {m} == {j}:\n        score += {c0}",
    "    score -= {c2} * abs(el.count(1) - n / 3)",
    "    weights = [{c0}, {c1}, {c2}]\n    score += sum(weights[x] for x in el) / n",
    "    score += {c1} if el[0] != el[-1] else -{c2}",
    "    score = max(score, {c0} * min(el.count(v) for v in range(3)))",
)


@dataclass(frozen=True)
class Timing:
    """The median and p99 of one operation's repeated timings, in ms."""

    name: str
    median_ms: float
    p99_ms: float

    @property
    def meets_target(self) -> bool:
        return self.median_ms < TARGET_MS and self.p99_ms < TARGET_MS


class ProgramMaker:
    """Makes varied, valid programs with scores: distinct code each time, signatures from a bounded pool."""

    def __init__(self, expected: int, seed: int) -> None:
        self._rand = random.Random(seed)
        self._made = 0
        pool = max(1, int(expected * DISTINCT_SIGNATURE_SHARE))
        # Small integer scores per input, as in cap set sizes; the pool is made of distinct tuples.
        signatures: set[tuple[float, ...]] = set()
        while len(signatures) < pool:
            signatures.add(tuple(float(self._rand.randint(0, 60)) for _ in INPUTS))
        self._signatures = sorted(signatures)

    def code(self) -> str:
        """A new priority function of about 300 to 600 characters, unique through its first constant."""
        r = self._rand
        self._made += 1
        lines = [
            "def priority(el: tuple[int, ...], n: int) -> float:",
            '    """Returns the priority with which we want to add `el` to the cap set."""',
            f"    score = {self._made}.0 / {r.randint(1000, 9999)}",
        ]
        while sum(len(line) + 1 for line in lines) < r.randint(300, 520):
            template = r.choice(_STATEMENTS)
            lines.append(template.format(
                c0=round(r.uniform(0.05, 3.0), 3), c1=round(r.uniform(0.05, 3.0), 3),
                c2=round(r.uniform(0.05, 3.0), 3), j=r.randint(0, 7), k=r.randint(0, 2), m=r.randint(2, 9),
            ))
        lines.append("    return score")
        return "\n".join(lines) + "\n"

    def scores(self) -> dict[str, float]:
        """Per-input scores: one signature of the pool, so many programs share a cluster."""
        signature = self._rand.choice(self._signatures)
        return dict(zip(INPUTS, signature))


def candidate(maker: ProgramMaker, island: int, parent_ids: list[int], parent_code: str) -> NewCandidate:
    """One finished offline candidate as the controller records it: proposal, ok program, train evaluation."""
    code = maker.code()
    scores = maker.scores()
    score = sum(scores.values())  # a function of the signature, as the island model requires
    prompt = json.dumps([
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"Improve this version:\n```python\n{parent_code}```"},
    ])
    proposal = NewProposal(island=island, model="offline", prompt=prompt, parent_ids=parent_ids,
                           response=f"```python\n{code}```", latency_s=0.001)
    program = NewProgram(island=island, origin="offline", code=code, code_hash=code_hash(code), status="ok",
                         parent_ids=parent_ids, score=score, scores=scores)
    evaluation = NewEvaluation(kind="train", status="ok", score=score, scores=scores, compiled=True,
                               timings={"sandbox_start": 0.004, "compile": 0.002, "solve": 0.05, "score": 0.001,
                                        "propose": 0.001})
    return NewCandidate(proposal=proposal, program=program, evaluations=(evaluation,))


def register(islands: IslandModel, program_id: int, cand: NewCandidate) -> None:
    """Register a recorded ok program on its island, as the controller does after recording it."""
    program = cand.program
    assert program is not None and program.score is not None
    signature = tuple(program.scores[name] for name in INPUTS)
    islands.register(program_id, program.island, signature, program.score, len(program.code))


def fill(store: Store, run_id: int, islands: IslandModel, maker: ProgramMaker, programs: int,
         batch: int) -> tuple[list[int], list[str]]:
    """Record ``programs`` candidates in batches and register them; returns their ids and code hashes."""
    ids: list[int] = []
    hashes: list[str] = []
    rand = random.Random(1)
    parent_code = maker.code()
    last_report = time.perf_counter()
    while len(ids) < programs:
        count = min(batch, programs - len(ids))
        cands = []
        for j in range(count):
            n = len(ids) + j
            parents = rand.sample(ids, 2) if len(ids) >= 2 else []
            cands.append(candidate(maker, n % NUM_ISLANDS, parents, parent_code))
        recorded = store.record_candidates(run_id, cands)
        for rec, cand in zip(recorded, cands):
            assert rec.program_id is not None and cand.program is not None
            register(islands, rec.program_id, cand)
            ids.append(rec.program_id)
            hashes.append(cand.program.code_hash)
        parent_code = cands[-1].program.code if cands[-1].program else parent_code
        if time.perf_counter() - last_report > 10:
            print(f"  {len(ids):,} / {programs:,} programs recorded", flush=True)
            last_report = time.perf_counter()
    return ids, hashes


def timed(name: str, repeats: int, prepare: Callable[[int], Callable[[], object]]) -> Timing:
    """Time ``prepare(i)()`` for each repeat (preparing, e.g. building the candidate, is not timed)."""
    for i in range(WARMUP):
        prepare(-1 - i)()
    samples = np.empty(repeats)
    for i in range(repeats):
        op = prepare(i)
        start = time.perf_counter()
        op()
        samples[i] = time.perf_counter() - start
    return Timing(name, 1000 * float(np.median(samples)), 1000 * float(np.percentile(samples, 99)))


def measure(store: Store, run_id: int, islands: IslandModel, maker: ProgramMaker, ids: list[int],
            hashes: list[str], repeats: int, seed: int) -> list[Timing]:
    """Time each per-candidate operation on the filled run."""
    rand = random.Random(seed + 2)

    def select_parents(i: int) -> Callable[[], object]:
        rng = np.random.default_rng([seed, len(ids) + i])
        island = i % NUM_ISLANDS

        def op() -> object:
            parent_ids = islands.select_parents(island, rng)
            parents = store.get_programs(parent_ids)
            return [p.code for p in parents]
        return op

    def find_hit(_i: int) -> Callable[[], object]:
        digest = rand.choice(hashes)
        return lambda: store.find_by_hash(run_id, digest)

    def find_miss(_i: int) -> Callable[[], object]:
        digest = code_hash(maker.code())
        return lambda: store.find_by_hash(run_id, digest)

    parent_code = maker.code()

    def record_program(i: int) -> Callable[[], object]:
        island = i % NUM_ISLANDS
        parent_ids = rand.sample(ids, 2)
        cand = candidate(maker, island, parent_ids, parent_code)

        def op() -> object:
            recorded = store.record_candidate(run_id, proposal=cand.proposal, program=cand.program,
                                              evaluations=cand.evaluations)
            assert recorded.program_id is not None
            register(islands, recorded.program_id, cand)
            return recorded
        return op

    return [
        timed("select parents", repeats, select_parents),
        timed("find by hash (hit)", repeats, find_hit),
        timed("find by hash (miss)", repeats, find_miss),
        timed("record program", repeats, record_program),
    ]


def file_size(db_path: Path) -> int:
    """Bytes of the database file plus its write-ahead log and shared-memory index, if present."""
    return sum(p.stat().st_size for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")) if p.exists())


def table(rows: list[Timing]) -> Iterator[str]:
    header = ["operation", "median ms", "p99 ms", "target ms", "meets target"]
    yield "| " + " | ".join(header) + " |"
    yield "|" + "|".join("---" for _ in header) + "|"
    for t in rows:
        cells = [t.name, f"{t.median_ms:.3f}", f"{t.p99_ms:.3f}", f"{TARGET_MS:g}", "yes" if t.meets_target else "NO"]
        yield "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=100_000, help="programs to fill the run with")
    parser.add_argument("--repeats", type=int, default=2000, help="timed repetitions of each operation")
    parser.add_argument("--batch", type=int, default=1000, help="candidates per transaction while filling")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.programs < 2 or args.repeats < 1 or args.batch < 1:
        parser.error("--programs must be >= 2, --repeats and --batch >= 1")

    with tempfile.TemporaryDirectory(prefix="evoforge-db-scale-") as tmp:
        db_path = Path(tmp) / "scale.db"
        store = Store(f"sqlite:///{db_path}")
        try:
            run = store.create_run(name="db-scale", problem_name="cap_set", problem_path="problems/cap_set.py",
                                   problem_source="# benchmark", problem_hash="0" * 64,
                                   config={"benchmark": "db_scale", "programs": args.programs}, seed=args.seed)
            islands = IslandModel(IslandConfig(num_islands=NUM_ISLANDS), maximize=True)
            maker = ProgramMaker(args.programs, args.seed)

            print(f"filling a run with {args.programs:,} programs in batches of {args.batch:,} ...", flush=True)
            start = time.perf_counter()
            ids, hashes = fill(store, run.id, islands, maker, args.programs, args.batch)
            fill_s = time.perf_counter() - start
            clusters = [len(islands.cluster_probabilities(i)) for i in range(NUM_ISLANDS)]
            print(f"filled in {fill_s:.1f} s ({args.programs / fill_s:,.0f} programs/s); "
                  f"islands hold {islands.island_sizes()} programs in {clusters} clusters", flush=True)

            print(f"timing each operation {args.repeats:,} times ...", flush=True)
            rows = measure(store, run.id, islands, maker, ids, hashes, args.repeats, args.seed)
            size = file_size(db_path)
            print()
            print(f"SQLite, {args.programs:,} programs (+{args.repeats + WARMUP:,} recorded while timing), "
                  f"{NUM_ISLANDS} islands, {args.repeats:,} repeats each")
            for line in table(rows):
                print(line)
            print()
            print(f"database file: {size / 2**20:.1f} MiB ({size / (args.programs + args.repeats + WARMUP):,.0f} "
                  "bytes per candidate, write-ahead log included)")
        finally:
            store.close()


if __name__ == "__main__":
    main()
