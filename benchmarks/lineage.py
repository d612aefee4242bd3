"""Where a search's proposals went and where its improvements came from, read from run databases that
`quality.py --keep DIR` kept.

    .venv/bin/python benchmarks/lineage.py DIR/q-default-0.db [DIR/q-default-1.db ...]

A prompt's mutated parent is its last parent (the version the prompt asks to improve). Each is classed as `seed`,
`twin` (a behavioural duplicate kept as a parent: it selects with its original's score), or `valid` (evaluated in
full), with `=`, `-` or `+` for a score equal to, worse or better than the seed's. Printed per run and summed over
the runs: the proposals by the class of their mutated parent and how many of them made a new best of the run, the
outcomes (code and behavioural duplicates, valid children better or worse than their parent), the most-mutated
parents, and each new best with its mutated parent's class and the classes along its line back to the seed.
Lower scores are better (the bin packing setting quality.py measures); a maximised problem reads reversed.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evoforge.db import Store


@dataclass
class Tally:
    """What one run (or several, summed) did with its proposals."""

    prompts: Counter[str] = field(default_factory=Counter)  # mutated parent's class -> proposals
    hits: Counter[str] = field(default_factory=Counter)  # mutated parent's class -> new bests of the run
    outcomes: Counter[str] = field(default_factory=Counter)
    bests: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.prompts += other.prompts
        self.hits += other.hits
        self.outcomes += other.outcomes


def tally(db: Path) -> tuple[Tally, list[str]]:
    """The run's tally and its most-mutated parents, as printable lines."""
    url = f"sqlite:///{db}"
    with Store(url) as store:
        run = store.list_runs()[0]
        briefs = store.program_briefs(run.id)
        dups = [b.id for b in briefs if b.status == "duplicate"]
        behavioural = {p.id for p in store.get_programs(dups) if p.behaviour is not None}
        failed = len(store.proposals(run.id)) - sum(1 for b in briefs if b.proposal_id is not None)
    by_id = {b.id: b for b in briefs}
    seed = briefs[0]
    assert seed.score is not None

    def score(pid: int) -> float | None:  # the score a program selects with: a twin's is its original's
        b = by_id[pid]
        if b.status == "duplicate" and pid in behavioural and b.duplicate_of is not None:
            return score(b.duplicate_of)
        return b.score if b.status == "ok" else None

    def kind(pid: int) -> str:
        if pid == seed.id:
            return "seed"
        s = score(pid)
        base = "twin" if by_id[pid].status == "duplicate" else "valid"
        if s is None:
            return base + " (no score)"
        return base + (" =" if s == seed.score else " -" if s > seed.score else " +")

    t = Tally()
    t.outcomes["patch failed"] = failed
    targets: Counter[int] = Counter()
    best = seed.score
    for b in briefs:
        if b.proposal_id is None:
            continue
        parent = b.parent_ids[-1]
        targets[parent] += 1
        t.prompts[kind(parent)] += 1
        if b.status == "duplicate":
            t.outcomes["behavioural duplicate" if b.id in behavioural else "code duplicate"] += 1
            continue
        if b.status != "ok" or b.score is None:
            t.outcomes[b.status] += 1
            continue
        before = score(parent)
        t.outcomes["valid, better than its parent" if before is not None and b.score < before else
                   "valid, equal to its parent" if b.score == before else "valid, worse than its parent"] += 1
        if b.score < best:
            best = b.score
            t.hits[kind(parent)] += 1
            line, q = [], parent
            while q != seed.id:
                line.append(kind(q))
                q = by_id[q].parent_ids[-1]
            t.bests.append(f"proposal {b.seq}: {b.score:.4f} from a {kind(parent)} parent; line back to the seed: "
                           f"{' <- '.join(line) or '(the seed itself)'}")
    top = [f"{pid} ({kind(pid)}): {n}" for pid, n in targets.most_common(5)]
    return t, [f"distinct mutated parents {len(targets)}; most mutated: " + ", ".join(top)]


def show(name: str, t: Tally, extra: Sequence[str] = ()) -> None:
    total = sum(t.prompts.values())
    print(f"{name}: {total} proposals")
    print("  by mutated parent (proposals, new bests): " + ", ".join(
        f"{k} {n} ({n / total:.0%}), {t.hits[k]}" for k, n in t.prompts.most_common()))
    print("  outcomes: " + ", ".join(f"{k} {n}" for k, n in t.outcomes.most_common() if n))
    for line in [*extra, *t.bests]:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dbs", nargs="+", type=Path)
    args = parser.parse_args()
    total = Tally()
    for db in args.dbs:
        t, extra = tally(db)
        show(db.stem, t, extra)
        total.add(t)
    if len(args.dbs) > 1:
        show(f"all {len(args.dbs)} runs", total)


if __name__ == "__main__":
    main()
