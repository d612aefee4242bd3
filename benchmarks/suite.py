"""Search every bundled problem with one proposer and budget, and print one table against the best known results.

    .venv/bin/python benchmarks/suite.py [--budget 60] [--seed 0] [--workers 1] [--model M [--api-base URL]]
                                         [--problems cap_set,circle_packing]

With no `--model` the offline proposer runs (no network, no key), so a fixed `--seed` and one worker give the same
search every time; wall times and rates vary with the machine. Each problem gets a fresh SQLite database in a
temporary folder. Bin packing runs on the bundled OR3 instances (FunSearch's figure is the reference).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from evoforge.db import Store
from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import run_search
from evoforge.evaluators import load_problem

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Entry:
    """One row of the suite: a problem file, its overrides, and where its best known result comes from."""

    label: str
    problem: str
    overrides: dict[str, str]
    reference: Callable[[ModuleType], float | None]  # the best known score, read from the problem's constants
    source: str  # who found the reference


@dataclass(frozen=True)
class Row:
    label: str
    maximize: bool
    seed_score: float | None
    best_score: float | None
    best_held_out: float | None
    reference: float | None
    source: str
    candidates: int
    valid_rate: float
    wall_s: float
    per_second: float


def suite() -> list[Entry]:
    """The bundled problems at their published settings."""
    bin_packing = Entry("bin_packing (OR3)", "bin_packing", {"dataset": "or3"},
                        lambda m: m.REFERENCES["or3"]["funsearch"], "FunSearch")
    return [
        Entry("cap_set (n=8)", "cap_set", {}, lambda m: float(m.REFERENCE_SIZES[8]), "FunSearch"),
        bin_packing,
        Entry("circle_packing (n=26)", "circle_packing", {}, lambda m: m.REFERENCES[26]["alphaevolve"],
              "AlphaEvolve"),
        Entry("min_max_distance (16, 2D)", "min_max_distance", {},
              lambda m: m.REFERENCES[(16, 2)]["alphaevolve"], "AlphaEvolve"),
        Entry("heilbronn (11, square)", "heilbronn", {}, lambda m: m.REFERENCES[11]["best_known"],
              "Comellas-Yebra"),
        Entry("symbolic_regression", "symbolic_regression", {}, lambda m: m.REFERENCES["true_law"], "true law"),
        Entry("train_classifier", "train_classifier", {}, lambda m: m.REFERENCES["adam_mlp"], "Adam MLP (tests)"),
    ]


def measure(entry: Entry, config: RunConfig, folder: Path) -> Row:
    """Search one problem and read its seed, best and held-out scores back from the run's database."""
    problem = load_problem(config.problem, config.overrides)
    db_url = f"sqlite:///{folder / (entry.problem + '.db')}"
    start = time.perf_counter()
    result = run_search(config, db_url, progress=False)
    wall = time.perf_counter() - start
    maximize = problem.settings.maximize
    with Store(db_url) as store:
        run = store.get_run(config.name)
        assert run is not None
        seed = next(b for b in store.program_briefs(run.id) if b.origin == "seed")
        best = store.best_programs(run.id, 1, maximize=maximize)
    stats = result.stats
    return Row(label=entry.label, maximize=maximize, seed_score=seed.score,
               best_score=best[0].score if best else None, best_held_out=best[0].held_out_score if best else None,
               reference=entry.reference(problem.module), source=entry.source, candidates=stats.done,
               valid_rate=stats.valid_rate, wall_s=wall, per_second=stats.done / wall if wall > 0 else 0.0)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.7g}"


def table(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    header = ["problem", "goal", "seed score", "best found", "held-out of best", "reference (best known)",
              "candidates", "valid", "wall s", "cand/s"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for r in rows:
        reference = "-" if r.reference is None else f"{r.reference:.9g} ({r.source})"
        lines.append(" | ".join([
            r.label, "max" if r.maximize else "min", _number(r.seed_score), _number(r.best_score),
            _number(r.best_held_out), reference, str(r.candidates), f"{r.valid_rate:.0%}", f"{r.wall_s:.1f}",
            f"{r.per_second:.2f}"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=60, help="candidates proposed per problem")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", help="a litellm model string; without it the offline proposer runs")
    parser.add_argument("--api-base", help="an OpenAI-compatible server for --model")
    parser.add_argument("--problems", help="comma-separated problem names (default: all)")
    args = parser.parse_args()
    if args.api_base and not args.model:
        parser.error("--api-base needs --model")
    models = ModelConfig(models=(ModelEntry(name=args.model, api_base=args.api_base),)) if args.model else ModelConfig()
    entries = suite()
    if args.problems:
        wanted = args.problems.split(",")
        unknown = sorted(set(wanted) - {e.problem for e in entries})
        if unknown:
            parser.error(f"--problems: unknown {unknown}; choose from {[e.problem for e in entries]}")
        entries = [e for e in entries if e.problem in wanted]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for entry in entries:
            config = RunConfig(problem=str(REPO / "problems" / f"{entry.problem}.py"), name=f"suite-{entry.problem}",
                               budget=args.budget, seed=args.seed, workers=args.workers,
                               overrides=entry.overrides, models=models)
            rows.append(measure(entry, config, Path(tmp)))
    proposer = args.model or "offline"
    print(f"proposer {proposer}, budget {args.budget} per problem, seed {args.seed}, workers {args.workers}")
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
