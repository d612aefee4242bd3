"""False twins: how often a mutant that answers the first input like its parent answers the other inputs otherwise.

    .venv/bin/python benchmarks/twins.py [--set num_items=5000] [--mutants 200] [--seed 0] [--db RUN.db ...]
        [--parents 4] [--per-parent 50] [--duplicates 100]

A candidate whose outputs on the first input (the behaviour window) equal an earlier program's is recorded as a
`duplicate` and, by default, joins its island with its twin's score, never evaluated further. This measures what
that misses. Every candidate here is evaluated on every training input through evoforge's own sandbox, and its
outputs' digest is kept per input. Three sources of candidates:

- mutants of the seed, drawn with benchmarks/mutation_server.py's operators (`--mutants`);
- mutants of programs from real runs (`--db`, databases kept by `quality.py --keep`): the best valid programs
  of each run that are not the seed's twins (`--parents`, `--per-parent` mutants each);
- the duplicates those runs recorded (`--duplicates`), each beside the program it was taken as a twin of.

Printed per source: the candidates, the valid ones, how many score better than their parent (or original), how
many are twins of it on the first input, how many of those differ from it on another input, how many of those
score better and worse, and the wall time of a full evaluation (numba compiles each new `priority`); then each
false twin's scores per input beside its reference's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from mutation_server import mutate_answer  # noqa: E402

import evoforge.evaluators.sandbox as sandbox_module  # noqa: E402
from evoforge.engine.program.patching import apply_response  # noqa: E402
from evoforge.engine.program.source import PatchError  # noqa: E402
from evoforge.evaluators import Problem, SandboxPool, load_problem  # noqa: E402
from evoforge.evaluators.scoring import StreamScorer  # noqa: E402


class _Recording(StreamScorer):
    """The sandbox's scorer, keeping a digest of each input's encoded output (the last one made is `latest`)."""

    latest: _Recording | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outputs: list[str] = []
        _Recording.latest = self

    def add(self, name: Any, encoded: Any) -> bool:
        self.outputs.append(hashlib.sha256(json.dumps(encoded, sort_keys=True).encode()).hexdigest())
        return super().add(name, encoded)


sandbox_module.StreamScorer = _Recording  # type: ignore[misc]  # the pool builds its scorer by this name


@dataclass(frozen=True)
class Full:
    """A program evaluated on every input: status, score, per-input scores and per-input output digests."""

    status: str
    score: float | None
    scores: tuple[float, ...]
    outputs: tuple[str, ...]
    seconds: float


def evaluate(pool: SandboxPool, code: str) -> Full:
    """Evaluate `code` on every training input (no probe, no cascade) and keep each input's output digest."""
    start = time.perf_counter()
    ev = pool.evaluate(code, cascade=False)
    seconds = time.perf_counter() - start
    assert _Recording.latest is not None
    return Full(ev.status, ev.score, tuple(ev.scores.values()), tuple(_Recording.latest.outputs), seconds)


def mutants(parent: str, problem: Problem, count: int, rng: np.random.Generator) -> list[str]:
    """Up to `count` distinct programs, each one mutation of `parent` that applies (as the server would answer)."""
    out: list[str] = []
    seen = {parent}
    for _ in range(count * 3):
        if len(out) == count:
            break
        try:
            code = apply_response(mutate_answer(parent, [], rng), parent, problem.evolved_names)
        except (PatchError, SyntaxError):
            continue
        if code not in seen:
            seen.add(code)
            out.append(code)
    return out


@dataclass
class Tally:
    """Counts for one source of candidates."""

    candidates: int = 0
    valid: int = 0
    twins: int = 0  # same output on the first input as the reference
    false_twins: int = 0  # ... and a different output on some other input
    better: int = 0
    worse: int = 0
    equal_score: int = 0
    improved: int = 0  # valid and better than the reference, twin or not
    seconds: list[float] = field(default_factory=list)
    first_differs: Counter[int] = field(default_factory=Counter)  # false twins by the first input they differ on
    details: list[str] = field(default_factory=list)  # one line per false twin: scores per input, its and the ref's

    def add(self, ref: Full, child: Full, maximize: bool) -> None:
        """Count `child` against the program it is compared with (its parent, or its twin)."""
        self.candidates += 1
        self.seconds.append(child.seconds)
        if child.status != "ok" or child.score is None or ref.score is None:
            return
        self.valid += 1
        sign = 1.0 if maximize else -1.0
        self.improved += sign * child.score > sign * ref.score
        if child.outputs[0] != ref.outputs[0]:
            return
        self.twins += 1
        if child.outputs[1:] == ref.outputs[1:]:
            return
        self.false_twins += 1
        self.first_differs[next(i for i in range(1, len(ref.outputs)) if child.outputs[i] != ref.outputs[i])] += 1
        self.details.append(f"{child.score:.4f} {child.scores} against {ref.score:.4f} {ref.scores}")
        if sign * child.score > sign * ref.score:
            self.better += 1
        elif sign * child.score < sign * ref.score:
            self.worse += 1
        else:
            self.equal_score += 1

    def row(self, name: str) -> str:
        secs = self.seconds or [0.0]
        return (f"{name} | {self.candidates} | {self.valid} | {self.improved} | {self.twins} | {self.false_twins} | "
                f"{self.better} | {self.worse} | {self.equal_score} | {statistics.median(secs):.2f} | "
                f"{statistics.mean(secs):.2f}")


def run_programs(db: Path, problem: Problem) -> tuple[list[Any], dict[int, Any]]:
    """The programs of the one run in a kept database, by id."""
    from evoforge.db import Store

    with Store(f"sqlite:///{db}") as store:
        run = store.get_run(db.stem)  # quality.py names each kept database after its run
        if run is None:
            raise SystemExit(f"{db}: no run named {db.stem} in it; give a database kept by quality.py --keep")
        briefs = store.program_briefs(run.id)
        programs = store.get_programs([b.id for b in briefs])
    return programs, {p.id: p for p in programs}


def _cached(pool: SandboxPool, by_id: dict[int, Any], full: dict[int, Full]) -> Any:
    """A program's full evaluation by id, evaluated once."""
    def of(pid: int) -> Full:
        if pid not in full:
            full[pid] = evaluate(pool, by_id[pid].code)
        return full[pid]
    return of


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="bin_packing")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--mutants", type=int, default=200, help="mutants of the seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", type=Path, action="append", default=[], help="a database kept by quality.py --keep")
    parser.add_argument("--parents", type=int, default=4, help="programs per database to mutate")
    parser.add_argument("--per-parent", type=int, default=50)
    parser.add_argument("--duplicates", type=int, default=100, help="recorded duplicates per database to check")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    problem = load_problem(REPO / "problems" / f"{args.problem}.py", overrides)
    maximize = problem.settings.maximize
    rng = np.random.default_rng(args.seed)
    tallies: dict[str, Tally] = {}
    start = time.perf_counter()
    with SandboxPool(problem, 1) as pool:
        seed = evaluate(pool, problem.seed_code)
        print(f"seed: {seed.score} per input {seed.scores} ({seed.seconds:.2f} s)", file=sys.stderr)
        tally = tallies.setdefault("mutants of the seed", Tally())
        for code in mutants(problem.seed_code, problem, args.mutants, rng):
            tally.add(seed, evaluate(pool, code), maximize)
        for db in args.db:
            programs, by_id = run_programs(db, problem)
            full: dict[int, Full] = {}
            of = _cached(pool, by_id, full)

            seed_behaviour = next(p.behaviour for p in programs if p.origin == "seed")
            parents = sorted((p for p in programs if p.status == "ok" and p.score is not None
                              and p.origin != "seed" and p.behaviour != seed_behaviour),
                             key=lambda p: p.score if maximize else -p.score, reverse=True)[:args.parents]
            tally = tallies.setdefault("mutants of run programs", Tally())
            for parent in parents:
                ref = of(parent.id)
                print(f"{db.name}: parent {parent.id} scores {ref.score}", file=sys.stderr)
                for code in mutants(parent.code, problem, args.per_parent, rng):
                    tally.add(ref, evaluate(pool, code), maximize)
            dups = [p for p in programs if p.status == "duplicate" and p.behaviour is not None]
            picked = rng.choice(len(dups), size=min(args.duplicates, len(dups)), replace=False) if dups else []
            tally = tallies.setdefault("duplicates recorded in runs", Tally())
            for i in sorted(picked):
                dup = dups[int(i)]
                assert dup.duplicate_of is not None
                tally.add(of(dup.duplicate_of), evaluate(pool, dup.code), maximize)
    print(f"problem {args.problem} ({', '.join(args.set) or 'defaults'}), mutation seed {args.seed}, "
          f"took {time.perf_counter() - start:.0f} s")
    print()
    print("source | candidates | valid | better than ref | twins on input 1 | differ elsewhere | better | worse | "
          "same score | median s | mean s")
    print("--- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ---")
    for name, tally in tallies.items():
        print(tally.row(name))
    print()
    for name, tally in tallies.items():
        print(f"{name}: false twins by the first input (1-based) they differ on: "
              + ", ".join(f"input {i + 1}: {n}" for i, n in sorted(tally.first_differs.items())))
        for line in tally.details:
            print(f"  false twin: {line}")


if __name__ == "__main__":
    main()
