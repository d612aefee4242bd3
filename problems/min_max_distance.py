"""Place 16 points in the plane so that the ratio of the largest to the smallest pairwise distance is as small as
possible.

`points(n, dim)` returns an (n, dim) array of point coordinates (n = 16, dim = 2). The score is (d_max / d_min)^2,
the square of the ratio of the largest to the smallest distance between two of the points; lower is better. Scale,
rotation and translation do not matter. The points must be finite and distinct. The score is computed exactly from
the floats returned. The best known value is 12.889266 (AlphaEvolve, 2025; 12.890 before it). A 4 x 4 grid scores
18. The evolved code sees its arguments, numpy as `np` and the standard modules it imports (math, itertools,
functools, collections, heapq, bisect, random, ...); nothing else of this file.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np

from evoforge import Settings, evolve

PARAMS = {"n": 16, "dim": 2}
SETTINGS = Settings(maximize=False, time_limit_s=60.0, memory_limit_mb=2048, numba=False)

# (d_max / d_min)^2 by (n, dim): AlphaEvolve (2025) and, where we have it, the best known before; reference only.
# `--set n=14 --set dim=3` is AlphaEvolve's other instance.
REFERENCES = {(16, 2): {"before_alphaevolve": 12.890, "alphaevolve": 12.889266112},
              (14, 3): {"alphaevolve": 4.165849767}}


@evolve
def points(n: int, dim: int) -> np.ndarray:
    """Returns n points in dim dimensions whose largest and smallest pairwise distances are as close as possible."""
    side = int(np.ceil(n ** (1.0 / dim) - 1e-9))
    grid = list(itertools.product(range(side), repeat=dim))
    return np.array(grid[:n], dtype=float)


def solve(case: dict) -> np.ndarray:
    return np.asarray(points(case["n"], case["dim"]), dtype=np.float64)


def score(case: dict, output: object) -> float:
    """(d_max / d_min)^2 over all pairs, computed exactly on the floats returned, after checking shape and values."""
    n, dim = case["n"], case["dim"]
    pts = np.asarray(output)
    if pts.shape != (n, dim) or pts.dtype.kind not in "fiu":
        raise ValueError(f"expected an ({n}, {dim}) array of numbers, got shape {pts.shape} ({pts.dtype})")
    if not np.all(np.isfinite(pts)):
        raise ValueError("every coordinate must be finite")
    exact = [[Fraction(float(v)) for v in row] for row in pts]
    squared = [sum((a - b) ** 2 for a, b in zip(p, q)) for p, q in itertools.combinations(exact, 2)]
    smallest = min(squared)
    if smallest == 0:
        raise ValueError("two points coincide, so the smallest distance is 0")
    return float(max(squared) / smallest)


def inputs(params: dict) -> dict[str, dict]:
    return {f"n{params['n']}_d{params['dim']}": {"n": int(params["n"]), "dim": int(params["dim"])}}
