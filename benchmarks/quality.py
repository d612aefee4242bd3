"""Search quality per proposal: the mean best score after N proposals over many seeds, for each strategy variant.

    .venv/bin/python benchmarks/quality.py [--problem bin_packing] [--set num_items=5000 ...]
        [--budgets 50,100,200,300,500,1000] [--seeds 10] [--variants default,no-search,...]
        [--source mutation|offline] [--jobs 2] [--workers 1]

What a user pays for is proposals, so each variant runs `--seeds` searches of the largest budget and the running
best is read back from the database after every budget's worth of proposals (failed and duplicate proposals
count). A `hybrid-F` variant (`--offline-share F`) also proposes offline, at no call: its budgets count the
proposals paid for (model calls) alone, each search runs until `--max-calls` of the largest budget stops it, and a
free proposal counts with the paid one after it (what a run stopped by `--max-calls b` made). Printed per variant
and budget: the mean best with a 95% interval (Student t over the seeds); then the valid rate (evaluated programs
that scored), the share of candidates that ended `duplicate`, the LLM tokens paid per paid proposal (prompt and
completion; what `--answers` saves), the candidates proposed (paid or not) and those evaluated in full (neither a
failed proposal nor a duplicate of code or of behaviour, which stops after the first input), and the mean wall
time: what the budgets cost apart from calls.

Proposal sources: `mutation` (default) is benchmarks/mutation_server.py, an OpenAI-compatible server answering each
prompt with a random AST mutation of the version it asks to improve, so litellm, prompts and patching run as with
a real model; `offline` is evoforge's own offline proposer. Every search keeps one candidate in flight, so a seed
fixes its whole run. `no-search` is the baseline with no evolution: every proposal mutates the seed program.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

# Variant name -> (what it tests, RunConfig overrides as stored-config dicts). "default" changes nothing.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("evoforge's defaults", {}),
    "no-search": ("no evolution: every proposal mutates the seed", {"meta_summary": 0, "offline_share": 0.0}),
    "model-only": ("the model answers every prompt, no offline proposal beside it (the default until measured)",
                   {"offline_share": 0.0}),
    "dup-reject": ("behavioural duplicates rejected", {"same_behaviour": "reject"}),
    "dup-keep": ("behavioural duplicates evaluated in full and kept", {"same_behaviour": "keep"}),
    "dup-parent": ("behavioural duplicates kept as parents with their twin's score, not evaluated further",
                   {"same_behaviour": "parent"}),
    "twins-all": ("twins judged on every input's outputs, not the first input's: each candidate is evaluated in full",
                  {"behaviour_inputs": "all"}),
    "power-law": ("power-law rank selection with an offspring penalty",
                  {"islands": {"selection": "power_law", "offspring_penalty": 0.5}}),
    "no-elite": ("FunSearch's sampling alone, no elite exploitation", {"islands": {"elite_share": 0.0}}),
    "elite": ("elite exploitation: the best program as parent half the time", {"islands": {"elite_share": 0.5}}),
    "elite-any": ("the elite drawn from every program that behaves like the island's best, not the first alone",
                  {"islands": {"elite_member": "any"}}),
    "elite-all": ("the elite is the best program of all islands, not of the prompt's island",
                  {"islands": {"elite_scope": "all"}}),
    "today": ("evoforge before this work: duplicates rejected, FunSearch's sampling, no inspirations",
              {"same_behaviour": "reject", "islands": {"elite_share": 0.0}}),
    "inspirations": ("two inspirations from other islands in each prompt", {"inspirations": 2}),
    "no-inspirations": ("no inspirations in the prompt", {"inspirations": 0}),
    "one-island": ("a single island", {"islands": {"num_islands": 1}}),
    "crossover": ("one prompt in five a crossover of the parent with another island's high scorer",
                  {"crossover": 0.2}),
    "no-meta": ("no summary of recent improvements in the prompt (the default until it was measured)",
                {"meta_summary": 0}),
    "answers": ("four answers per prompt: one call asks for n=4 choices", {"answers": 4}),
    "hybrid-0.5": ("half the prompts answered by the offline mutator (no call), the other half by the model",
                   {"offline_share": 0.5}),
    "hybrid-0.75": ("three prompts in four answered by the offline mutator (no call), one by the model",
                    {"offline_share": 0.75}),
}


@dataclass(frozen=True)
class Outcome:
    """One search: the running best after each budget, and its rates."""

    variant: str
    seed: int
    best: tuple[float, ...]  # per budget
    valid_rate: float
    duplicate_share: float
    wall_s: float
    tokens_per_proposal: float = 0.0  # outcomes saved before it was measured read as 0
    candidates: int = 0  # proposals of any kind (offline ones too); 0: saved before it was measured
    evaluated: int = 0  # candidates evaluated in full: not failed, not a duplicate of code or of behaviour


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    problem: str
    overrides: dict[str, str]
    budgets: tuple[int, ...]
    source: str
    workers: int
    keep: Path | None = None



def run_job(job: Job) -> Outcome:
    """Run one search (in a worker process) and read its running best back at each budget."""
    from evoforge.db import Store
    from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig
    from evoforge.engine.run.search import run_search

    server = None
    models = ModelConfig()
    if job.source == "mutation":
        import mutation_server

        os.environ.setdefault("OPENAI_API_KEY", "none")  # litellm wants a key; the local server takes any
        server = mutation_server.serve(job.seed)
        models = ModelConfig(models=(ModelEntry(name="openai/mutation", api_base=server.base_url),),
                             full_rewrite=job.variant == "no-search")
    base = RunConfig(problem=str(REPO / "problems" / f"{job.problem}.py"), name=f"q-{job.variant}-{job.seed}",
                     budget=max(job.budgets), seed=job.seed, workers=job.workers, concurrency=1,
                     overrides=job.overrides, models=models)
    config = RunConfig.from_dict(_merge(base.to_dict(), VARIANTS[job.variant][1]))
    if config.offline_share:  # budgets count calls: the calls limit ends the run, the candidate budget never does
        paid = max(job.budgets)
        config = RunConfig.from_dict(_merge(config.to_dict(), {
            "budget": 2 * math.ceil(paid / (1 - config.offline_share)) + 10, "limits": {"max_calls": paid}}))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db_url = f"sqlite:///{tmp}/q.db" if job.keep is None else f"sqlite:///{job.keep}/{config.name}.db"
            proposer = _seed_only(config) if job.variant == "no-search" else None
            start = time.perf_counter()
            result = run_search(config, db_url, progress=False, proposer=proposer)
            wall = time.perf_counter() - start
            if result.status != "finished":
                raise RuntimeError(f"{config.name}: the search ended {result.status}: {result.stats.stop_reason}")
            with Store(db_url) as store:
                run = store.get_run(config.name)
                assert run is not None
                maximize = bool(run.config["settings"]["maximize"])
                proposals = store.proposals(run.id)
                paid = None if job.source == "offline" else [p.id for p in proposals if p.model != "offline"]
                if paid is not None and len(paid) < max(job.budgets):
                    raise RuntimeError(f"{config.name}: {len(paid)} paid proposals, fewer than the largest budget")
                best = running_best(store.program_briefs(run.id), [p.id for p in proposals], job.budgets, maximize,
                                    paid=paid)
                statuses = store.status_counts(run.id)
    finally:
        if server is not None:
            server.stop()
    done = max(1, result.stats.done)
    return Outcome(job.variant, job.seed, best, result.stats.valid_rate, statuses.get("duplicate", 0) / done, wall,
                   result.stats.tokens / max(1, done if paid is None else len(paid)), candidates=result.stats.done,
                   evaluated=result.stats.evaluated)


def running_best(briefs: Sequence[Any], proposal_ids: Sequence[int], budgets: Sequence[int],
                 maximize: bool, *, paid: Sequence[int] | None = None) -> tuple[float, ...]:
    """The best valid score among the seed and the programs of the first b proposals, for each budget b.

    With `paid` (the ids of the proposals a model made), b counts those alone: a free (offline) proposal counts
    with the paid one after it, so budget b holds what a run stopped by `--max-calls b` made."""
    ordered = sorted(proposal_ids)
    if paid is None:
        rank = {pid: i + 1 for i, pid in enumerate(ordered)}
    else:
        calls, rank, made = set(paid), {}, 0
        for pid in ordered:
            rank[pid] = made + 1
            made += pid in calls
    sign = 1.0 if maximize else -1.0
    steps: list[tuple[int, float]] = []
    for b in briefs:
        if b.status == "ok" and b.score is not None:
            steps.append((0 if b.proposal_id is None else rank[b.proposal_id], b.score))
    out = []
    for budget in budgets:
        scores = [s for r, s in steps if r <= budget]
        out.append(max(scores, key=lambda s: sign * s))
    return tuple(out)


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and key in base else value
    return merged


def _seed_only(config: Any) -> Any:
    """The no-search proposer: the configured one, always shown the seed alone (answers are whole functions)."""
    from evoforge.engine.propose.prompts import ParentView
    from evoforge.engine.propose.proposers import make_proposer
    from evoforge.evaluators import load_problem

    problem = load_problem(config.problem, config.overrides)
    inner = make_proposer(config.models, problem.description, problem.evolved_names,
                          maximize=problem.settings.maximize)

    class SeedOnly:
        async def propose(self, parents: Any, rng: Any, *, feedback: Any = (), answers: int = 1) -> Any:
            seed = ParentView(code=problem.seed_code, score=None, status="ok")
            return await inner.propose([seed], rng, answers=answers)

        def observe(self, proposal: Any, improved: bool, rng: Any) -> None:
            inner.observe(proposal, improved, rng)

        def stop_reason(self) -> str | None:
            return inner.stop_reason()

    return SeedOnly()


_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 14: 2.145, 19: 2.093, 29: 2.045}


def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval (Student t; 0 for a single value)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()), 0.0
    dof = x.size - 1
    t = _T975.get(dof) or _T975[max(k for k in _T975 if k <= dof)]
    half = t * float(x.std(ddof=1)) / math.sqrt(x.size)
    return float(x.mean()), half if half > 1e-12 * max(1.0, abs(float(x.mean()))) else 0.0  # equal values: 0


def table(outcomes: Sequence[Outcome], variants: Sequence[str], budgets: Sequence[int]) -> str:
    """One Markdown row per variant: mean best +- 95% interval per budget, valid rate, duplicates, tokens per
    proposal, wall time."""
    header = ["variant", *[f"best @{b}" for b in budgets], "valid", "duplicates", "tokens/proposal", "candidates",
              "evaluated", "wall s", "seeds"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for v in variants:
        mine = [o for o in outcomes if o.variant == v]
        if not mine:
            continue
        cells = [v]
        for i in range(len(budgets)):
            mean, half = interval([o.best[i] for o in mine])
            cells.append(f"{mean:.4g} ± {half:.2g}")
        duplicates = float(np.mean([o.duplicate_share for o in mine]))  # NaN: an engine that detects none
        tokens = float(np.mean([o.tokens_per_proposal for o in mine]))  # NaN: an engine whose tokens are not read
        cells += [f"{np.mean([o.valid_rate for o in mine]):.0%}",
                  "-" if math.isnan(duplicates) else f"{duplicates:.0%}",
                  "-" if math.isnan(tokens) else f"{tokens:.0f}",
                  _count(mine, "candidates"), _count(mine, "evaluated"),
                  f"{np.mean([o.wall_s for o in mine]):.0f}", str(len(mine))]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _count(outcomes: Sequence[Outcome], what: str) -> str:
    """The mean of a count over the seeds; '-' where outcomes saved before it was measured hold none."""
    values = [getattr(o, what) for o in outcomes]
    return "-" if not all(values) else f"{np.mean(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="bin_packing", help="a bundled problem's name")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="problem parameter")
    parser.add_argument("--budgets", default="50,100,200,300,500,1000")
    parser.add_argument("--seeds", type=int, default=10, help="searches per variant (seeds 0..N-1)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--variants", default="default,no-search", help=f"comma-separated, from {list(VARIANTS)}")
    parser.add_argument("--source", choices=("mutation", "offline"), default="mutation")
    parser.add_argument("--jobs", type=int, default=2, help="searches running at once (processes)")
    parser.add_argument("--workers", type=int, default=1, help="sandbox workers per search")
    parser.add_argument("--json", type=Path, help="append every outcome to this file as it finishes (JSON lines)")
    parser.add_argument("--keep", type=Path, help="keep each search's database in this folder (q-VARIANT-SEED.db), "
                        "to query which parents produced what")
    parser.add_argument("--from", dest="saved", type=Path, action="append", default=[],
                        help="print the table of outcomes saved with --json instead of searching (repeatable)")
    args = parser.parse_args()
    budgets = tuple(sorted(int(b) for b in args.budgets.split(",")))
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if "no-search" in variants and args.source != "mutation":
        parser.error("no-search needs --source mutation (its answers are whole functions of the seed)")
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.saved:
        saved = [Outcome(**{**row, "best": tuple(row["best"])}) for path in args.saved
                 for row in map(json.loads, path.read_text().splitlines()) if row["variant"] in variants]
        print(table(saved, variants, budgets))
        return
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    jobs = [Job(v, s, args.problem, overrides, budgets, args.source, args.workers,
                None if args.keep is None else args.keep.resolve())
            for v in variants for s in range(args.first_seed, args.first_seed + args.seeds)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = []
        for outcome in pool.map(run_job, jobs):
            outcomes.append(outcome)
            if args.json:
                with args.json.open("a") as out:
                    out.write(json.dumps(dataclasses.asdict(outcome)) + "\n")
            print(f"  {outcome.variant} seed {outcome.seed}: " + ", ".join(
                f"@{b} {s:.5g}" for b, s in zip(budgets, outcome.best)) + f" ({outcome.wall_s:.0f} s)",
                file=sys.stderr, flush=True)
    settings = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
    print(f"problem {args.problem} ({settings}), source {args.source}, {args.seeds} seeds from {args.first_seed}, "
          f"workers {args.workers}, one candidate in flight; took {time.perf_counter() - start:.0f} s")
    print()
    print(table(outcomes, variants, budgets))
    print()
    for v in variants:
        print(f"- {v}: {VARIANTS[v][0]}")


if __name__ == "__main__":
    main()
