"""`evoforge report`: one self-contained HTML file about a run, readable offline and sendable by mail.

It is the live run page of `evoforge serve` frozen: the same templates and the same chart script, with the chart
library, the script and the data inside the file (no network), and a Content-Security-Policy that lets only those
scripts run. Code is highlighted by pygments on our side.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from markupsafe import Markup

from evoforge.db import Store
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.analysis import textfmt as fmt
from evoforge.engine.analysis import web
from evoforge.engine.analysis.web import curves, pages

Note = Callable[[str], None]


def _script_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render(store: Store, name: str, *, top: int = 5, note: Note = lambda _m: None) -> str:
    """The whole report as one HTML string."""
    run = analysis.open_run(store, name)
    note(f"reading run {run.name}")
    view = pages.run_view(store, run, top=top)
    curve = curves.curve_payload(store, run)
    note(f"charting {curve['total']} evaluated candidates")
    sections = []
    for ranked in view["ranked"]:
        note(f"best program {ranked.rank}/{len(view['ranked'])}: code, lineage and diffs")
        sections.append(pages.lineage_section(store, ranked))
    scripts = {"uplot_js": web.asset("uplot.iife.min.js"), "charts_js": web.asset("charts.js")}
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src "
           + " ".join(_script_hash(s) for s in scripts.values()))
    assets = {"style": Markup(web.asset("style.css")), "uplot_css": Markup(web.asset("uplot.min.css")),
              **{k: Markup(v) for k, v in scripts.items()}}
    return web.render("report.html", inline=True, csp=csp, assets=assets, highlight_css=Markup(pages.highlight_css()),
                      view=view, curve=curve, sections=sections, anchor=lambda pid: f"#p{pid}",
                      generated=fmt.when(datetime.now(timezone.utc)), source=pages.safe_url(store.url))


def write(store: Store, name: str, path: str | Path, *, top: int = 5, note: Note = lambda _m: None) -> Path:
    """Render the report of run `name` into `path` (an .html file) and return the path."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{path}: the report is one HTML file; name it with .html")
    text = render(store, name, top=top, note=note)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
