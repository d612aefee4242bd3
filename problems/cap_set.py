"""Find large cap sets in the vector space F_3^n.

A cap set is a set of vectors in {0, 1, 2}^n in which no three distinct vectors lie on a line, i.e. no three
distinct vectors a, b, c satisfy a + b + c = 0 (mod 3). The larger the cap set, the better.

The cap set is built greedily: every vector of F_3^n gets a priority from `priority(el, n)`; vectors are taken in
order of decreasing priority and each is added unless it would complete a line with two vectors already chosen.
Improve `priority` so that the greedy construction finds a larger cap set. `el` is a tuple of n ints in {0, 1, 2};
the function returns a float. The evolved code sees its arguments, numpy as `np` and the standard modules it imports
(math, itertools, functools, collections, heapq, bisect, random, ...); nothing else of this file.

The program is run for every dimension from 3 up to n (default 8); its score is the cap set size in dimension n.
The smaller dimensions are cheap and come first, so a program that is clearly worse than the trivial one there
is dropped before the expensive dimension n runs.
"""

from __future__ import annotations

import itertools

import numpy as np

from evoforge import Settings, Stage, batch, evolve

PARAMS = {"n": 8}
# numba off: priority takes a tuple whose length is the dimension, so it would compile once per dimension and be
# called from Python once per vector; measured (benchmarks/eval_overhead.py), numba="auto" gains nothing at n = 8
# or n = 10, and a candidate's whole evaluation at n = 8 costs less than one compilation.
SETTINGS = Settings(maximize=True, time_limit_s=60.0, memory_limit_mb=2048, numba=False)

# Best sizes known per dimension (n=8: FunSearch, Nature 2023); for reference in reports, never used in scoring.
REFERENCE_SIZES = {3: 9, 4: 20, 5: 45, 6: 112, 7: 236, 8: 512}
SMALLEST_N = 3
# The seed finds 2^d in dimension d (the vectors of {0, 1}^d); a cascade stage lets a program go on to larger d
# only if it reaches this fraction of that in its stage's largest dimension.
CULL_BELOW = 0.75


@evolve
def priority(el: tuple[int, ...], n: int) -> float:
    """Returns the priority with which we want to add `el` to the cap set."""
    return 0.0


def solve(n: int) -> list[list[int]]:
    """Greedy construction: add vectors by decreasing priority unless they complete a line."""
    vectors = np.array(list(itertools.product((0, 1, 2), repeat=n)), dtype=np.int64)
    powers = 3 ** np.arange(n - 1, -1, -1)
    # The priorities do not depend on each other: one batch crosses to the candidate's process once, not 3^n times.
    calls = [(tuple(int(x) for x in v), n) for v in vectors]
    priorities = np.array([float(p) for p in batch(priority, calls)], dtype=np.float64)
    capset = np.empty((0, n), dtype=np.int64)
    while np.any(priorities != -np.inf):
        best = int(np.argmax(priorities))
        vector = vectors[best]
        # The third point on the line through `vector` and each chosen point is blocked from now on.
        blocked = ((-capset - vector) % 3) @ powers
        priorities[blocked] = -np.inf
        priorities[best] = -np.inf
        capset = np.vstack([capset, vector])
    return capset.tolist()


def score(n: int, output: object) -> float:
    """Size of the cap set, after checking every vector and that no three of them lie on a line."""
    points = np.asarray(output)
    if points.ndim != 2 or points.shape[1] != n or points.shape[0] == 0:
        raise ValueError(f"expected a non-empty list of length-{n} vectors, got shape {points.shape}")
    if not np.issubdtype(points.dtype, np.integer) or points.min() < 0 or points.max() > 2:
        raise ValueError("every coordinate must be an integer in {0, 1, 2}")
    codes = points.astype(np.int64) @ (3 ** np.arange(n - 1, -1, -1))
    if len(np.unique(codes)) != len(codes):
        raise ValueError("the set repeats a vector")
    member = np.zeros(3**n, dtype=bool)
    member[codes] = True
    for i in range(len(points) - 1):
        # For a != b the third point c = -(a + b) mod 3 is distinct from both; it must not be in the set.
        thirds = ((-(points[i] + points[i + 1 :])) % 3) @ (3 ** np.arange(n - 1, -1, -1))
        if member[thirds].any():
            j = i + 1 + int(np.argmax(member[thirds]))
            raise ValueError(f"vectors {points[i].tolist()} and {points[j].tolist()} complete a line")
    return float(len(points))


def inputs(params: dict) -> dict[str, int]:
    """Every dimension from 3 to n, named n3 ... n8; the cascade runs the small ones first."""
    return {f"n{d}": d for d in range(SMALLEST_N, int(params["n"]) + 1)}


def aggregate(scores: list[float], dims: list[int]) -> float:
    """The cap set size in the largest dimension evaluated: n for a full evaluation, a stage's top one in a cascade."""
    return float(scores[dims.index(max(dims))])


def CASCADE(params: dict) -> list[Stage]:
    """Dimensions 3-5, then 6 up to n-1, each stage culling programs below CULL_BELOW x 2^d; n itself runs last."""
    n = int(params["n"])
    groups = [range(SMALLEST_N, min(6, n)), range(6, n)]
    return [Stage(inputs=tuple(f"n{d}" for d in group), threshold=CULL_BELOW * 2 ** max(group))
            for group in groups if len(group)]
