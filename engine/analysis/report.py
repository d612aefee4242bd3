"""`evoforge report`: one self-contained HTML file about a run, readable offline and sendable by mail.

Everything is inside the file: the plots as base64 PNG, the best programs highlighted by pygments on our side
(no script, no stylesheet or font from the network), each one's lineage and the diffs along it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from evoforge.db import ProgramBrief, ProgramInfo, RunInfo, Store
from evoforge.engine.analysis import plots
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.analysis import textfmt as fmt
from evoforge.engine.analysis.views import LINEAGE_HEADER, MODEL_HEADER, gap_legend, lineage_rows, model_cells

Note = Callable[[str], None]

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { padding: .15em .7em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
table.facts td:first-child { font-weight: 600; text-align: left; color: #555; }
img { max-width: 100%; border: 1px solid #ddd; }
.highlight { background: #f8f8f8; padding: .6em; overflow-x: auto; border: 1px solid #e4e4e4; }
.highlight pre { margin: 0; }
.flag { color: #b00; font-weight: 600; } .rejected { color: #b00; }
tr.rejected td { text-decoration: line-through; }
details { margin: .6em 0; } summary { cursor: pointer; color: #245; }
footer { margin-top: 3em; color: #777; font-size: 90%; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 0,
           row_classes: Sequence[str] = ()) -> str:
    """An HTML table of already-escaped cells; the first `left` columns align left."""
    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(f"<{tag}{' class=l' if i < left else ''}>{v}</{tag}>" for i, v in enumerate(values))

    body = "".join(f"<tr class='{row_classes[i] if i < len(row_classes) else ''}'>{cells('td', r)}</tr>"
                   for i, r in enumerate(rows))
    return f"<table><tr>{cells('th', [_e(h) for h in header])}</tr>{body}</table>"


def _code(code: str) -> str:
    return highlight(code, PythonLexer(), HtmlFormatter())


def _diff(diff: str) -> str:
    return highlight(diff, DiffLexer(), HtmlFormatter()) if diff else "<p>(no change)</p>"


def _facts(store: Store, run: RunInfo) -> str:
    s = analysis.summarize(store, run)
    counts = store.status_counts(run.id)
    rows = [("problem", f"{run.problem_name} ({run.problem_path})"), ("status", run.status),
            ("started", fmt.when(run.created_at)), ("took", fmt.duration(s.duration_s)),
            ("candidates", f"{s.candidates} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"),
            ("valid rate", f"{s.valid_rate:.0%}"), ("cost", fmt.cost(s.cost)),
            ("best score", f"{fmt.score(s.best_score)} ({'higher' if analysis.maximize(run) else 'lower'} is better)"),
            ("settings", ", ".join(f"{k}={v}" for k, v in run.config["settings"].items())),
            ("params", ", ".join(f"{k}={v!r}" for k, v in run.config["params"].items()))]
    return "<table class=facts>" + "".join(f"<tr><td>{_e(k)}</td><td class=l>{_e(v)}</td></tr>" for k, v in rows) \
        + "</table>"


def _lineage_diffs(chain: list[ProgramBrief], code: dict[int, str]) -> str:
    parts = []
    for before, after in zip(chain, chain[1:]):
        title = (f"program {before.id} &rarr; {after.id} ({after.origin}): score {_e(fmt.score(before.score))} "
                 f"&rarr; {_e(fmt.score(after.score))}")
        parts.append(f"<h5>{title}</h5>" + _diff(analysis.code_diff(code[before.id], code[after.id],
                                                                      f"program {before.id}", f"program {after.id}")))
    return "".join(parts) or "<p>(the program has no ancestors)</p>"


def _program_section(store: Store, ranked: analysis.Ranked) -> str:
    p = ranked.program
    chain = analysis.lineage(store, p.id)
    code = {q.id: q.code for q in store.get_programs([c.id for c in chain])}
    gap = ranked.gap.describe()
    gap_html = f"<span class=flag>{_e(gap)}</span>" if ranked.gap.flagged else _e(gap)
    rows = [[_e(c) for c in row] for row in lineage_rows(chain)]
    classes = ["rejected" if c.rejected else "" for c in chain]
    return (f"<section id=p{p.id}><h3>{ranked.rank}. program {p.id}: score {_e(fmt.score(p.score))}, held-out "
            f"{_e(fmt.score(p.held_out_score))}, gap {gap_html}</h3>"
            f"<p>island {p.island}, origin {_e(p.origin)}, parents {_e(list(p.parent_ids)) if p.parent_ids else '-'}"
            f"</p>{_code(p.code)}<h4>Lineage ({len(chain) - 1} steps)</h4>"
            + _table(LINEAGE_HEADER, rows, row_classes=classes)
            + f"<details{' open' if ranked.rank == 1 else ''}><summary>Diffs along the lineage</summary>"
            + _lineage_diffs(chain, code) + "</details></section>")


def _rejected(programs: list[ProgramInfo]) -> str:
    if not programs:
        return "<p>No program was rejected.</p>"
    rows = [[_e(p.id), _e(fmt.score(p.score)), _e(p.rejected_by), _e(fmt.when(p.rejected_at)), _e(p.rejected_reason)]
            for p in programs]
    return _table(["program", "score", "by", "when", "why"], rows, left=2) + "".join(
        f"<details><summary>code of rejected program {p.id}</summary>{_code(p.code)}</details>" for p in programs)


def render(store: Store, name: str, *, top: int = 5, note: Note = lambda _m: None) -> str:
    """The whole report as one HTML string."""
    run = analysis.open_run(store, name)
    note(f"reading run {run.name}")
    briefs = store.program_briefs(run.id)
    curve = analysis.curve(store, run)
    note(f"plotting {len(curve.evaluated)} evaluated candidates")
    png = base64.b64encode(plots.png_bytes(curve, f"run {run.name} ({run.problem_name})")).decode("ascii")
    ranked = analysis.best(store, run, top)
    sections = []
    for r in ranked:
        note(f"best program {r.rank}/{len(ranked)}: code, lineage and diffs")
        sections.append(_program_section(store, r))
    best_rows = [[_e(r.rank), f"<a href='#p{r.program.id}'>{r.program.id}</a>", _e(fmt.score(r.program.score)),
                  _e(fmt.score(r.program.held_out_score)),
                  f"<span class=flag>{_e(r.gap.describe())}</span>" if r.gap.flagged else _e(r.gap.describe()),
                  _e(r.program.island), _e(r.program.origin)] for r in ranked]
    models = [[_e(m.model), *(_e(c) for c in model_cells(m))] for m in analysis.models(store, run)]
    islands = [[_e(i.island), _e(i.programs), _e(fmt.score(i.best_score)), _e(i.best_program_id or "-")]
               for i in analysis.islands(run, briefs)]
    rejected = store.get_programs([p.id for p in analysis.rejected(briefs)])
    generated = datetime.now(timezone.utc)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>evoforge run {_e(run.name)}</title>
<style>{_CSS}{HtmlFormatter().get_style_defs('.highlight')}</style></head>
<body>
<h1>evoforge run {_e(run.name)}</h1>
{_facts(store, run)}
<h2>Curves</h2>
<img alt="fitness curves of run {_e(run.name)}" src="data:image/png;base64,{png}">
<h2>Best programs</h2>
{_table(["rank", "program", "score", "held-out", "gap", "island", "origin"], best_rows) if ranked
 else "<p>No valid program yet.</p>"}
<p>{_e(gap_legend(analysis.seed_gap(run, briefs)))}</p>
{"".join(sections)}
<h2>Rejected programs</h2>
{_rejected(rejected)}
<h2>Models</h2>
{_table(MODEL_HEADER, models, left=1)}
<h2>Islands</h2>
{_table(["island", "programs", "best", "program"], islands)}
<footer>Written by <code>evoforge report</code> {_e(fmt.when(generated))} from {_e(store.url)}.</footer>
</body></html>
"""


def write(store: Store, name: str, path: str | Path, *, top: int = 5, note: Note = lambda _m: None) -> Path:
    """Render the report of run `name` into `path` (an .html file) and return the path."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{path}: the report is one HTML file; name it with .html")
    text = render(store, name, top=top, note=note)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
