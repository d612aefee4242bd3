"""First look at what runs found: `evoforge runs`, `show NAME`, `best NAME` (text or --json), all from the database."""

from __future__ import annotations

import argparse
import json
from typing import Any

from db import ProgramInfo, RunInfo, Store
from engine.progress import format_score
from evaluators import ProblemError


def _open_run(store: Store, name: str) -> RunInfo:
    run = store.get_run(name)
    if run is None:
        names = ", ".join(r.name for r in store.list_runs()) or "none"
        raise ProblemError(f"no run named '{name}' in {store.url} (runs there: {names})")
    return run


def _maximize(run: RunInfo) -> bool:
    """The run's direction, as its problem declared it when the run started."""
    return bool(run.config["settings"]["maximize"])


def _run_row(store: Store, run: RunInfo) -> dict[str, Any]:
    counts = store.status_counts(run.id)
    best = store.best_programs(run.id, 1, maximize=_maximize(run))
    evaluated = sum(n for status, n in counts.items() if status != "duplicate")
    return {"name": run.name, "problem": run.problem_name, "status": run.status,
            "candidates": store.attempts(run.id), "best_score": best[0].score if best else None,
            "valid_rate": counts.get("ok", 0) / evaluated if evaluated else 0.0, "cost": store.total_cost(run.id),
            "started": run.created_at.isoformat(timespec="seconds")}


def runs(args: argparse.Namespace) -> str:
    with Store(args.db) as store:
        rows = [_run_row(store, run) for run in store.list_runs()]
    if args.json:
        return json.dumps(rows, indent=2)
    if not rows:
        return f"no runs in {args.db}"
    lines = [f"{'name':<28} {'problem':<14} {'status':<9} {'cands':>6} {'best':>10} {'valid':>6}"]
    for r in rows:
        lines.append(f"{r['name'][:28]:<28} {r['problem'][:14]:<14} {r['status']:<9} {r['candidates']:>6} "
                     f"{format_score(r['best_score']):>10} {r['valid_rate']:>6.0%}")
    return "\n".join(lines)


def _program_dict(p: ProgramInfo) -> dict[str, Any]:
    return {"id": p.id, "island": p.island, "origin": p.origin, "status": p.status, "score": p.score,
            "held_out_score": p.held_out_score, "parent_ids": list(p.parent_ids), "code": p.code}


def show(args: argparse.Namespace) -> str:
    with Store(args.db) as store:
        run = _open_run(store, args.name)
        row = _run_row(store, run)
        row["statuses"] = store.status_counts(run.id)
        row["config"] = run.config
        best = store.best_programs(run.id, 1, maximize=_maximize(run))
    row["best_program"] = _program_dict(best[0]) if best else None
    if args.json:
        return json.dumps(row, indent=2, default=str)
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(row["statuses"].items()))
    lines = [f"run        {run.name} ({run.status})", f"problem    {run.problem_path}",
             f"candidates {row['candidates']}  [{statuses}]", f"cost       ${row['cost']:.4f}",
             f"best       {format_score(row['best_score'])}"]
    if best:
        lines.append(f"held-out   {format_score(best[0].held_out_score)}  (best program {best[0].id})")
    return "\n".join(lines)


def best(args: argparse.Namespace) -> str:
    with Store(args.db) as store:
        run = _open_run(store, args.name)
        programs = store.best_programs(run.id, args.n, maximize=_maximize(run))
    if args.json:
        return json.dumps([_program_dict(p) for p in programs], indent=2)
    parts = []
    for rank, p in enumerate(programs, 1):
        parts.append(f"# {rank}. program {p.id}  score {format_score(p.score)}  held-out "
                     f"{format_score(p.held_out_score)}  island {p.island}  origin {p.origin}\n{p.code}")
    return "\n".join(parts) if parts else f"run {run.name} has no valid program yet"
