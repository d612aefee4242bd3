"""`evoforge plot`: a run's fitness curves as one PNG (matplotlib's Agg renderer, no display needed).

Four panels: best-so-far per island and overall against candidates evaluated, the same against wall time, the
valid rate over a sliding window, and the held-out score of the running best beside its training score (a red X
where the running best's held-out evaluation failed). A run whose programs report named metrics other than the
primary gets one more panel per metric below them (up to three a row): each valid candidate's value, its running
best in the metric's own direction, and the constraint's limit as a dashed line where the problem declares one.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from evoforge.engine.analysis.queries import Curve, MetricCurve


def _best_panel(ax: Axes, x: np.ndarray, c: Curve, xlabel: str) -> None:
    ok = c.valid & ~c.rejected
    ax.scatter(x[ok], c.score[ok], s=6, color="0.75", label="valid candidates", zorder=1)
    if c.rejected.any():
        ax.scatter(x[c.rejected], c.score[c.rejected], s=40, marker="x", color="crimson", label="rejected",
                   zorder=3)
    colours = [f"C{i % 10}" for i in range(c.num_islands)]
    for island, colour in enumerate(colours):
        ax.step(x, c.island_best(island), where="post", color=colour, linewidth=1.2, zorder=5,
                label=f"island {island}" if c.num_islands <= 10 else None)
    ax.step(x, c.best, where="post", color="black", linewidth=3.5, alpha=0.45, label="overall best", zorder=4)
    ax.set_ylim(*_focus(np.concatenate([c.island_best(i) for i in range(c.num_islands)] + [c.best])))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"score ({'higher' if c.maximize else 'lower'} is better)")
    ax.grid(alpha=0.3)


def _focus(curves: np.ndarray) -> tuple[float, float]:
    """Y limits around the best-so-far curves, so a few very bad candidates do not flatten them."""
    values = curves[np.isfinite(curves)]
    if values.size == 0:
        return (0.0, 1.0)
    low, high = float(values.min()), float(values.max())
    pad = 0.25 * (high - low) or 0.05 * abs(high) or 1.0
    return (low - pad, high + pad)


def _metric_panel(ax: Axes, x: np.ndarray, m: MetricCurve) -> None:
    shown = ~np.isnan(m.value)
    ax.scatter(x[shown], m.value[shown], s=6, color="0.75", label="valid candidates", zorder=1)
    ax.step(x, m.best, where="post", color="black", linewidth=2, label="best so far", zorder=4)
    focus = [m.best]
    if m.limit is not None:
        ax.axhline(m.limit, color="crimson", linestyle="--", linewidth=1.2, label=f"limit {m.limit:g}", zorder=3)
        focus.append(np.array([m.limit]))
    if shown.any():  # the bulk of the values, without the few far-off ones
        focus.append(np.percentile(m.value[shown], [5, 95]))
    ax.set_ylim(*_focus(np.concatenate(focus)))
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel(f"{m.name} ({'higher' if m.maximize else 'lower'} is better)")
    ax.set_title(f"metric {m.name}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _per_row(n: int) -> int:
    """Metric panels on one row: two rows of two for four, else up to three a row."""
    return 2 if n == 4 else min(n, 3)


def figure(c: Curve, title: str, metrics: Sequence[MetricCurve] = ()) -> Figure:
    """The four-panel figure of a run's curve, and one panel per named metric in `metrics` below them."""
    per_row = _per_row(len(metrics)) if metrics else 1
    rows = -(-len(metrics) // per_row)
    fig = Figure(figsize=(13, 9 + 3.6 * rows), layout="constrained")
    grid = fig.add_gridspec(2 + rows, 6, height_ratios=[4.5, 4.5] + [3.6] * rows)
    (a, b), (v, h) = [[fig.add_subplot(grid[r, 3 * col:3 * col + 3]) for col in (0, 1)] for r in (0, 1)]
    span = 6 // per_row
    for i, m in enumerate(metrics):
        row, col = divmod(i, per_row)
        _metric_panel(fig.add_subplot(grid[2 + row, span * col:span * (col + 1)]), c.evaluated, m)
    fig.suptitle(title)
    if len(c.evaluated) == 0:
        for ax in (a, b, v, h):
            ax.text(0.5, 0.5, "no candidates evaluated yet", ha="center", va="center", transform=ax.transAxes)
        return fig
    _best_panel(a, c.evaluated, c, "candidates evaluated")
    a.set_title("best so far, per island and overall")
    a.legend(fontsize=7, ncol=2)
    _best_panel(b, c.seconds, c, "wall time since the run started (s)")
    b.set_title("best so far against wall time")

    window = max(10, len(c.evaluated) // 20)
    v.plot(c.evaluated, 100 * c.valid_rate(window), color="C2")
    v.set_ylim(-5, 105)
    v.set_xlabel("candidates evaluated")
    v.set_ylabel(f"valid, % of the last {window}")
    v.set_title("valid rate")
    v.grid(alpha=0.3)

    h.step(c.evaluated, c.best, where="post", color="black", linewidth=2, label="training score of the best")
    h.step(c.evaluated, c.best_held_out, where="post", color="C3", linewidth=2, linestyle="--",
           label="held-out score of the best")
    failed = c.best_held_out_failed
    if failed.any():  # no held-out score to draw: mark where the best failed there, at its training score
        h.scatter(c.evaluated[failed], c.best[failed], s=60, marker="X", color="crimson", zorder=5,
                  label="held-out evaluation FAILED")
    elif np.isnan(c.best_held_out).all():
        h.text(0.5, 0.1, "no held-out scores: the problem has no held-out inputs", ha="center",
               transform=h.transAxes)
    h.set_xlabel("candidates evaluated")
    h.set_ylabel("score")
    h.set_title("held-out score of the running best")
    h.legend(fontsize=8)
    h.grid(alpha=0.3)
    return fig


def png_bytes(c: Curve, title: str, *, metrics: Sequence[MetricCurve] = (), dpi: int = 100) -> bytes:
    """The figure as PNG data (for embedding in a report)."""
    buffer = io.BytesIO()
    figure(c, title, metrics).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(c: Curve, title: str, path: str | Path, *, metrics: Sequence[MetricCurve] = ()) -> Path:
    """Write the figure to `path` as PNG and return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the plot is written as PNG; name the file with .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(c, title, metrics=metrics))
    return path
