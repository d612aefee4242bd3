"""Place 11 points in the unit square so that the smallest triangle formed by any three of them has as large an area
as possible (the Heilbronn triangle problem).

`points(n)` returns an (n, 2) array of point coordinates (n = 11). Every point must lie in the closed unit square
[0, 1] x [0, 1] (points on the boundary are allowed). The score is the smallest area of the n(n-1)(n-2)/6 triangles
whose corners are three of the points; higher is better. Three collinear points (or two equal ones) make a triangle
of area 0, so the score is then 0. Containment and areas are computed exactly from the floats returned, with no
tolerance: the float just above 1 (1 + 2.2e-16) is rejected. The best known value for n = 11 in the unit square is
1/27 = 0.0370370 (Comellas and Yebra, 2002). 11 points evenly spaced on the circle inscribed in the square (the
seed) score 0.0214562. The evolved code sees its arguments, numpy as `np` and the standard modules it imports (math,
itertools, functools, collections, heapq, bisect, random, ...); nothing else of this file.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np

from evoforge import Settings, evolve

PARAMS = {"n": 11}  # points; `--set n=...` for other instances (n >= 3)
SETTINGS = Settings(maximize=True, time_limit_s=60.0, memory_limit_mb=2048, numba=False)

# Best known smallest-triangle areas in the unit square, by n (MathWorld, "Heilbronn Triangle Problem": Goldberg 1972,
# Comellas and Yebra 2002; n <= 9 are proven optimal); for reference, never used in scoring.
# AlphaEvolve's (2025) Heilbronn figure for 11 points, 0.0365 (0.036 before it), is for points in a triangle of unit
# area, a different region: it is not comparable with the scores here.
REFERENCES = {
    3: {"best_known": 0.5},
    4: {"best_known": 0.5},
    5: {"best_known": 3**0.5 / 9},
    6: {"best_known": 1 / 8},
    7: {"best_known": 0.083859},
    8: {"best_known": (13**0.5 - 1) / 36},
    9: {"best_known": (9 * 65**0.5 - 55) / 320},
    10: {"best_known": 0.046537},
    11: {"best_known": 1 / 27, "source": "Comellas and Yebra (2002)"},
    12: {"best_known": 0.032599},
}


@evolve
def points(n: int) -> np.ndarray:
    """Returns n points in the unit square whose smallest triangle is as large as possible."""
    angles = 2 * np.pi * np.arange(n) / n
    return np.column_stack([0.5 + 0.5 * np.cos(angles), 0.5 + 0.5 * np.sin(angles)])


def solve(case: dict) -> np.ndarray:
    return np.asarray(points(case["n"]), dtype=np.float64)


def score(case: dict, output: object) -> float:
    """Smallest triangle area over all triples, computed exactly on the floats returned, after checking that the
    output is n finite points in the closed unit square."""
    n = case["n"]
    pts = np.asarray(output)
    if pts.shape != (n, 2) or pts.dtype.kind not in "fiu":
        raise ValueError(f"expected an ({n}, 2) array of numbers, got shape {pts.shape} ({pts.dtype})")
    if not np.all(np.isfinite(pts)):
        raise ValueError("every coordinate must be finite")
    # Fraction(float) is the float's exact binary value, so the containment check and the areas below are exact.
    exact = [(Fraction(float(x)), Fraction(float(y))) for x, y in pts]
    for i, (x, y) in enumerate(exact):
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError(f"point {i} {pts[i].tolist()} is outside the unit square [0, 1] x [0, 1]")
    smallest = min(abs((bx - ax) * (cy - ay) - (cx - ax) * (by - ay))
                   for (ax, ay), (bx, by), (cx, cy) in itertools.combinations(exact, 3))
    return float(smallest / 2)


def inputs(params: dict) -> dict[str, dict]:
    n = int(params["n"])
    if n < 3:
        raise ValueError(f"n = {n}: the problem needs at least 3 points")
    return {f"n{n}": {"n": n}}
