"""Pack n disjoint circles into the unit square so that the sum of their radii is as large as possible.

`pack(n)` returns n circles as rows [x, y, r]: centre (x, y) and radius r > 0. Every circle must lie inside the unit
square [0, 1] x [0, 1] (x - r >= 0, x + r <= 1, and the same for y) and no two circles may overlap (the distance
between two centres must be at least the sum of their radii; touching is allowed). These conditions are checked
exactly, on the exact values of the floats returned, with no tolerance: a packing that overlaps by 1e-17 is
rejected. Leave a tiny margin (say 1e-12) rather than rely on rounding. `safe_radii(centres)` is available: for an
(n, 2) array of centres it returns radii that always pass (each circle as large as the walls and half the distance
to its nearest neighbour allow, less 1e-12). The score is the sum of the radii; higher is better. The best known sum
for n=26 is 2.6358628 (AlphaEvolve, 2025; 2.634 before it). The evolved code sees its arguments, numpy as `np` and
the standard modules it imports (math, itertools, functools, collections, heapq, bisect, random, ...) and
`safe_radii`; nothing else of this file.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from evoforge import Settings, evolve

PARAMS = {"n": 26}  # circles; AlphaEvolve published n=26 and n=32
SETTINGS = Settings(maximize=True, time_limit_s=60.0, memory_limit_mb=2048, numba=False)

# Best sums of radii known (AlphaEvolve, 2025, and the best before it); for reference, never used in scoring.
REFERENCES = {
    26: {"before_alphaevolve": 2.634, "alphaevolve": 2.6358628},
    32: {"before_alphaevolve": 2.936, "alphaevolve": 2.9379445},
}


EXPOSE = ["safe_radii", "MARGIN"]  # what the evolved code may use of this file (safe_radii reads MARGIN)
MARGIN = 1e-12  # what safe_radii leaves between circles, far above float rounding (about 1e-16 here)


def safe_radii(centres: np.ndarray) -> np.ndarray:
    """Radii that make a valid packing around these centres: each the smallest of the distances to the four walls
    and half the distance to the nearest other centre, less MARGIN (so r_i + r_j <= d_ij - 2 MARGIN)."""
    centres = np.asarray(centres, dtype=np.float64)
    x, y = centres[:, 0], centres[:, 1]
    walls = np.minimum.reduce([x, y, 1 - x, 1 - y])
    gaps = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(gaps, np.inf)
    return np.minimum(walls, gaps.min(axis=1) / 2) - MARGIN


@evolve
def pack(n: int) -> np.ndarray:
    """Returns n circles [x, y, r] inside the unit square that do not overlap."""
    k = math.ceil(math.sqrt(n))
    centres = np.array([((i + 0.5) / k, (j + 0.5) / k) for j in range(k) for i in range(k)][:n])
    return np.column_stack([centres, safe_radii(centres)])


def solve(n: int) -> np.ndarray:
    return np.asarray(pack(n), dtype=np.float64)


def _exact(values: np.ndarray) -> list[list[Fraction]]:
    # Fraction(float) is the float's exact binary value, so every comparison below is exact.
    return [[Fraction(float(v)) for v in row] for row in values]


def score(n: int, output: object) -> float:
    """Sum of radii, after checking exactly that all n circles lie in the unit square and none overlap."""
    circles = np.asarray(output)
    if circles.shape != (n, 3) or circles.dtype.kind not in "fiu":
        raise ValueError(f"expected {n} rows [x, y, r], got an array of shape {circles.shape} ({circles.dtype})")
    if not np.all(np.isfinite(circles)):
        raise ValueError("every x, y and r must be finite")
    if np.any(circles[:, 2] <= 0):
        raise ValueError(f"circle {int(np.argmin(circles[:, 2]))} has radius {circles[:, 2].min()} <= 0")
    exact = _exact(circles)
    for i, (x, y, r) in enumerate(exact):
        if x - r < 0 or y - r < 0 or x + r > 1 or y + r > 1:
            raise ValueError(f"circle {i} {circles[i].tolist()} sticks out of the unit square")
    for i in range(n):
        xi, yi, ri = exact[i]
        for j in range(i + 1, n):
            xj, yj, rj = exact[j]
            if (xi - xj) ** 2 + (yi - yj) ** 2 < (ri + rj) ** 2:
                raise ValueError(f"circles {i} {circles[i].tolist()} and {j} {circles[j].tolist()} overlap")
    return math.fsum(circles[:, 2].tolist())


def inputs(params: dict) -> dict[str, int]:
    return {f"n{params['n']}": int(params["n"])}
