"""What each page shows, as plain data built from the analysis queries the CLI uses.

The report and the live server render these with the same templates; the server's JSON API returns them as they
are. Code and diffs are highlighted by pygments on our side (its output escapes the text it highlights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from evoforge.db import ProgramBrief, ProgramInfo, RunInfo, Store
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.analysis import textfmt as fmt
from evoforge.engine.analysis.llm_stats import ModelStats
from evoforge.engine.analysis.metrics import MetricSpec
from evoforge.engine.analysis.views import (
    LINEAGE_HEADER,
    MODEL_HEADER,
    gap_legend,
    lineage_rows,
    metric_legend,
    model_cells,
)


def code_html(code: str) -> Markup:
    """Python code highlighted as HTML (pygments escapes the code)."""
    return Markup(highlight(code, PythonLexer(), HtmlFormatter()))


def diff_html(diff: str) -> Markup:
    return Markup(highlight(diff, DiffLexer(), HtmlFormatter())) if diff else Markup("<p>(no change)</p>")


def highlight_css() -> str:
    return HtmlFormatter().get_style_defs(".highlight")


def _number(value: float | None) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    return None if value is None or not math.isfinite(value) else float(value)


# ------------------------------------------------------------------------------------------------- runs


def run_rows(store: Store) -> list[dict[str, Any]]:
    """One row per run: status, best, valid rate, throughput and spend (the runs page)."""
    rows = []
    for run in store.list_runs():
        s = analysis.summarize(store, run)
        rate = s.evaluated / s.duration_s if s.duration_s else None
        rows.append({"name": run.name, "problem": run.problem_name, "status": run.status,
                     "candidates": s.candidates, "evaluated": s.evaluated, "valid_rate": s.valid_rate,
                     "best_score": _number(s.best_score), "best_text": fmt.score(s.best_score),
                     "best_program_id": s.best_program_id, "throughput": rate, "cost": s.cost,
                     "cost_text": fmt.cost(s.cost), "started": fmt.when(s.started), "took": fmt.duration(s.duration_s),
                     "maximize": analysis.maximize(run)})
    return rows


@dataclass(frozen=True)
class BestRow:
    rank: int
    id: int
    score: str
    held_out: str
    gap: str
    flagged: bool
    island: int
    origin: str
    metrics: str  # its named metrics and any constraint it is over ('' when the problem has one score)


def _metrics_cell(spec: MetricSpec, p: ProgramInfo) -> str:
    if not p.metrics:
        return ""
    over = spec.over(p)
    listed = ", ".join(f"{k} {fmt.score(v)}" for k, v in p.metrics.items())
    return listed + (f"; OVER {', '.join(over)}" if over else "")


def _best_rows(spec: MetricSpec, ranked: list[analysis.Ranked]) -> list[BestRow]:
    return [BestRow(r.rank, r.program.id, fmt.score(r.program.score),
                    r.gap.held_out_text(fmt.score(r.program.held_out_score)),
                    ("SUSPECT " if r.suspect else "") + r.gap.describe(),
                    r.gap.flagged or r.gap.failed or r.suspect, r.program.island, r.program.origin,
                    _metrics_cell(spec, r.program))
            for r in ranked]


def run_view(store: Store, run: RunInfo, *, top: int = 5, stats: list[ModelStats] | None = None) -> dict[str, Any]:
    """Everything the run page shows above its program sections; `stats`: the run's per-model stats when the
    caller keeps them (a ModelTally), else they are summed here."""
    s = analysis.summarize(store, run)
    counts = store.status_counts(run.id)
    ranked = analysis.best(store, run, top)
    seed = analysis.seed_program(store, run)
    facts = [("problem", f"{run.problem_name} ({run.problem_path})"), ("status", run.status),
             ("started", fmt.when(run.created_at)), ("took", fmt.duration(s.duration_s)),
             ("candidates", f"{s.candidates} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"),
             ("valid rate", f"{s.valid_rate:.0%}"), ("cost", fmt.cost(s.cost)),
             ("best score", f"{fmt.score(s.best_score)} ({'higher' if analysis.maximize(run) else 'lower'} is better)"),
             ("seed", "-" if seed is None else
              f"program {seed.id}: score {fmt.score(seed.score)}, held-out {fmt.score(seed.held_out_score)}"),
             ("settings", ", ".join(f"{k}={v}" for k, v in run.config["settings"].items())),
             ("params", ", ".join(f"{k}={v!r}" for k, v in run.config["params"].items()))]
    models = [[m.model, *model_cells(m)] for m in (analysis.models(store, run) if stats is None else stats)]
    islands = [[i.island, i.programs, fmt.score(i.best_score), i.best_program_id or "-"]
               for i in analysis.islands(store, run)]
    rejected = [{"id": p.id, "score": fmt.score(p.score), "by": p.rejected_by, "when": fmt.when(p.rejected_at),
                 "why": p.rejected_reason}
                for p in store.get_programs([b.id for b in analysis.rejected(store, run)]) if p.rejected_at is not None]
    notes = [{"when": fmt.when(e.created_at), "by": e.data.get("by", "?"), "text": e.data.get("text", "")}
             for e in store.events(run.id, analysis.NOTE_EVENT)]
    spec = MetricSpec.of(run)
    if any(r.program.metrics for r in ranked):
        facts.append(("metrics", metric_legend(spec)))
    legend = gap_legend(analysis.seed_gap(store, run), analysis.seed_held_out_failure(store, run))
    return {"run": run, "name": run.name, "facts": facts, "best": _best_rows(spec, ranked),
            "legend": legend, "models_header": MODEL_HEADER, "models": models,
            "islands": islands, "rejected": rejected, "notes": notes, "ranked": ranked}


# ----------------------------------------------------------------------------------------------- program


def program_view(store: Store, program_id: int) -> dict[str, Any]:
    """One program: code, diff to its parent, each input's score, held-out, error, the prompt and the response."""
    d = analysis.program_detail(store, program_id)
    evaluations = [{"kind": "held-out" if ev.kind == "held_out" else "training", "status": ev.status,
                    "score": fmt.score(ev.score), "stage": ev.stage,
                    "error": fmt.printable(ev.error) if ev.error else ev.error,
                    "scores": [(name, fmt.score(value)) for name, value in ev.scores.items()],
                    "metrics": [(name, fmt.score(value)) for name, value in ev.metrics.items()],
                    "feedback": ev.feedback,
                    "timings": ", ".join(f"{k} {v * 1000:.0f}ms" for k, v in ev.timings.items()) or "-"}
                   for ev in d.evaluations]
    suspect = d.program.id in analysis.suspects(store, d.run, [d.program])
    return {"detail": d, "program": d.program, "run": d.run, "gap": d.gap.describe(),
            "flagged": d.gap.flagged or d.gap.failed, "suspect": suspect, "bound": analysis.bound(d.run),
            "held": analysis.held(store, d.run, d.program) if suspect else None,
            "judgement": analysis.judgements(store, d.run, [d.program.id]).get(d.program.id),
            "error": fmt.printable(d.program.error) if d.program.error else None,
            "code": code_html(d.program.code), "diff": diff_html(d.diff) if d.parent is not None else None,
            "evaluations": evaluations, "proposal": d.proposal}


# ----------------------------------------------------------------------------------------------- lineage


def lineage_section(store: Store, ranked: analysis.Ranked) -> dict[str, Any]:
    """A best program with its code, lineage table and the diffs along it (the report's program sections)."""
    p = ranked.program
    chain = analysis.lineage(store, p.id)
    code = {q.id: q.code for q in store.get_programs([c.id for c in chain])}
    diffs = [{"title": f"program {a.id} → {b.id} ({b.origin}): score {fmt.score(a.score)} → {fmt.score(b.score)}",
              "diff": diff_html(analysis.code_diff(code[a.id], code[b.id], f"program {a.id}", f"program {b.id}"))}
             for a, b in zip(chain, chain[1:])]
    return {"ranked": ranked, "program": p, "code": code_html(p.code),
            "judgement": next(reversed(store.judgements(p.run_id, [p.id])), None),
            "gap": ("SUSPECT " if ranked.suspect else "") + ranked.gap.describe(),
            "held_out": ranked.gap.held_out_text(fmt.score(p.held_out_score)),
            "flagged": ranked.gap.flagged or ranked.gap.failed or ranked.suspect, "lineage_header": LINEAGE_HEADER,
            "lineage": lineage_rows(chain),
            "rejected_steps": [c.rejected for c in chain], "steps": len(chain) - 1, "diffs": diffs}


TREE_LIMIT = 20_000  # programs read for one tree at most: the nearest ancestors of the bests
LINE = 3  # a longer line of ancestors with one child each and no best among them is folded into its count


@dataclass
class TreeNode:
    """A program in the lineage tree of a run's best programs, with the children that lead to one of them."""

    brief: ProgramBrief
    score: str
    best_rank: int | None
    children: list[TreeNode]
    folded: int = 0  # ancestors in a line between this program and the one above it, not shown


def lineage_tree(store: Store, run: RunInfo, *, top: int = 10) -> list[TreeNode]:
    """The ancestors of the run's `top` best programs merged into one tree (roots: the seed, human programs, or
    the oldest ancestor read), long lines of single descent folded into a count.

    The database walks the parent links of these programs alone, so a long run's others are never read.
    """
    ranked = analysis.best(store, run, top)
    links = store.primary_ancestors([r.program.id for r in ranked], limit=TREE_LIMIT)
    chains = [analysis.ancestry(links, r.program.id)[::-1] for r in ranked]
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for chain in chains:
        for above, pid in zip([None, *chain], chain):
            siblings = roots if above is None else children.setdefault(above, [])
            if pid not in siblings:
                siblings.append(pid)
    ranks = {r.program.id: r.rank for r in ranked}
    shown: dict[int, tuple[int, list[int]]] = {}  # program -> (ancestors folded above it, children shown)
    stack = [(pid, 0) for pid in reversed(roots)]
    while stack:
        pid, folded = stack.pop()
        below: list[int] = []
        for child in children.get(pid, []):
            end, line = child, 0
            while len(children.get(end, [])) == 1 and end not in ranks:  # one child each, no best: a line
                end, line = children[end][0], line + 1
            shown_child, fold = (end, line) if line > LINE else (child, 0)
            stack.append((shown_child, fold))
            below.append(shown_child)
        shown[pid] = (folded, below)
    briefs = {b.id: b for b in store.program_briefs(run.id, ids=set(shown))}
    nodes = {pid: TreeNode(briefs[pid], fmt.score(briefs[pid].score), ranks.get(pid), [], folded)
             for pid, (folded, _) in shown.items()}
    for pid, (_, below) in shown.items():
        nodes[pid].children = [nodes[c] for c in below]
    return [nodes[pid] for pid in roots]


def tree_items(roots: list[TreeNode]) -> list[tuple[str, TreeNode]]:
    """The tree as a flat list of ('open', node) and ('close', node), depth first: a template renders a tree of
    any depth from it without recursing."""
    items: list[tuple[str, TreeNode]] = []
    stack: list[tuple[str, TreeNode]] = [("open", n) for n in reversed(roots)]
    while stack:
        kind, node = stack.pop()
        items.append((kind, node))
        if kind == "open":
            stack.append(("close", node))
            stack.extend(("open", c) for c in reversed(node.children))
    return items


def safe_url(url: str) -> str:
    """A database URL fit to show on a page: its password, if any, replaced by ***."""
    from sqlalchemy.engine import make_url

    from evoforge.db.connection import masked

    try:
        return masked(make_url(url))
    except Exception:  # not a URL SQLAlchemy can parse: show nothing of it rather than a secret
        return "(database)"
