"""The HTML of a run, shared by `evoforge report` (one static file) and `evoforge serve` (live pages).

One set of Jinja templates and one chart script (uPlot, vendored under static/, MIT licence) serve both, so the
report and the live pages never disagree. Templates autoescape everything: candidate code, errors and printed
output reach a page only as text.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
STATIC_FILES = ("uplot.iife.min.js", "uplot.min.css", "charts.js", "style.css")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment: autoescaping on for every template, undefined names an error."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(WEB_DIR / "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context: Any) -> str:
    """One page as HTML."""
    return environment().get_template(template).render(**context)


@cache
def asset(name: str) -> str:
    """The text of a static file (the chart library, our chart script, the stylesheet)."""
    if name not in STATIC_FILES:
        raise KeyError(f"no static file {name!r}; there are {', '.join(STATIC_FILES)}")
    return (STATIC_DIR / name).read_text(encoding="utf-8")
