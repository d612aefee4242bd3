"""`evoforge plot`: a run's fitness curves as one PNG (matplotlib's Agg renderer, no display needed).

Four panels: best-so-far per island and overall against candidates evaluated, the same against wall time, the
valid rate over a sliding window, and the held-out score of the running best beside its training score (a red X
where the running best's held-out evaluation failed).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from evoforge.engine.analysis.queries import Curve


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


def figure(c: Curve, title: str) -> Figure:
    """The four-panel figure of a run's curve."""
    fig = Figure(figsize=(13, 9), layout="constrained")
    (a, b), (v, h) = fig.subplots(2, 2)
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


def png_bytes(c: Curve, title: str, *, dpi: int = 100) -> bytes:
    """The figure as PNG data (for embedding in a report)."""
    buffer = io.BytesIO()
    figure(c, title).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(c: Curve, title: str, path: str | Path) -> Path:
    """Write the figure to `path` as PNG and return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the plot is written as PNG; name the file with .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(c, title))
    return path
