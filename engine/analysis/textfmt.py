"""Plain-text building blocks for the inspection commands: tables, durations and wrapped fields in 80 columns."""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence
from datetime import datetime

WIDTH = 80


def printable(text: str) -> str:
    """Text a candidate wrote (what it printed, its error), with control and format characters escaped (`\\x1b`,
    `\\u202e`), so that it cannot move the cursor, clear or retitle a terminal, or reorder what it shows; newlines
    and tabs stay."""
    return "".join(c if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
                   else repr(c)[1:-1] for c in text)


def score(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def duration(seconds: float | None) -> str:
    """7s, 2m05s, 1h02m, 3d04h; '-' when unknown."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def cost(value: float) -> str:
    return f"${value:.4f}" if value < 100 else f"${value:,.0f}"


def fit(text: str, width: int) -> str:
    """The text cut to `width` characters, marking a cut with '~'."""
    return text if len(text) <= width else text[: width - 1] + "~"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1, indent: str = "") -> list[str]:
    """Columns sized to their content; the first `left` columns align left, the rest right."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return (indent + "  ".join(parts)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def field(label: str, text: str, *, label_width: int = 11) -> list[str]:
    """'label      text', the text wrapped to 80 columns under itself."""
    return textwrap.wrap(text, WIDTH, initial_indent=label.ljust(label_width),
                         subsequent_indent=" " * label_width, break_on_hyphens=False) or [label]


def section(title: str) -> str:
    """'-- title ----...' across 80 columns."""
    return f"-- {title} ".ljust(WIDTH, "-")
