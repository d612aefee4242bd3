"""Sort with as few comparisons as possible: evolve the marked blocks of an ordinary module, `sort_project/`.

`sort_project/sorter.py` is a merge sort over runs of indices: `CUTOFF` (a block) decides which runs are short,
`sort_small` (a block) sorts a short run, and `merge` in `sort_project/merging.py` (a block) merges two sorted
runs. Everything is compared only through `less(i, j)`, which counts its calls. The code between the markers
sees indices and `less`, never the values.

Metrics, per input (lists of 200 integers: random, nearly sorted, reversed, few distinct values), averaged:
- `comparisons`: comparisons per item, plus a penalty of 10 per pair of neighbours left out of order (the
  primary, lower is better), so the search never trades correctness for speed;
- `misordered`: the share of neighbouring pairs out of order, a constraint that must stay at 0.

Speed is counted, not timed: the number of comparisons is the same on every machine and every run, so a seed fixes
the search and a score means the same thing everywhere (wall time would vary with the machine's load). The count
is made by the project's own code outside the blocks, in a closure the blocks cannot reach.
"""

from __future__ import annotations

import random

from evoforge import Project, Scored, Settings

PROJECT = Project("sort_project", calls=["sorter.sort_counted"])
PARAMS = {"length": 200, "seed": 0}
# A sort that is right on every list of n items compares each item at least once: n - 1 comparisons, since with
# fewer some part of the list was never compared with the rest and could sit anywhere. So no honest program scores
# under (n - 1) / n per item, at least 0.5; below that it knows the inputs (they are made from a public seed).
SETTINGS = Settings(maximize=False, time_limit_s=10.0, primary_metric="comparisons",
                    metrics_maximize={"misordered": False}, constraints={"misordered": 0.0}, bound=0.5)
PENALTY = 10.0  # comparisons per item charged for each pair of neighbours out of order


def solve(values: list[int]) -> dict:
    """The project's sort on one list: {"order": indices, "comparisons": count}."""
    return PROJECT.call("sorter.sort_counted", values)


def score(values: list[int], output: object) -> Scored:
    """Comparisons per item (with the penalty) and the share of neighbours out of order."""
    if not isinstance(output, dict) or set(output) != {"order", "comparisons"}:
        raise ValueError("expected {'order': [...], 'comparisons': n}")
    order, comparisons = output["order"], output["comparisons"]
    if not isinstance(order, list) or sorted(order) != list(range(len(values))):
        raise ValueError(f"order must be a permutation of the indices 0..{len(values) - 1}")
    if isinstance(comparisons, bool) or not isinstance(comparisons, int) or comparisons < 0:
        raise ValueError("comparisons must be a count")
    wrong = [k for k in range(len(order) - 1) if values[order[k]] > values[order[k + 1]]]
    n = len(values)
    feedback = f"{comparisons} comparisons for {n} items"
    if wrong:
        feedback += f"; {len(wrong)} neighbouring pairs out of order, first at position {wrong[0]}"
    return Scored({"comparisons": comparisons / n + PENALTY * len(wrong), "misordered": len(wrong) / (n - 1)},
                  feedback)


def _lists(rng: random.Random, n: int) -> dict[str, list[int]]:
    shuffled = rng.sample(range(10 * n), n)
    nearly = sorted(shuffled)
    for _ in range(n // 20):
        a, b = rng.randrange(n), rng.randrange(n)
        nearly[a], nearly[b] = nearly[b], nearly[a]
    return {"random": shuffled, "nearly_sorted": nearly, "reversed": sorted(shuffled, reverse=True),
            "few_distinct": [rng.randrange(5) for _ in range(n)]}


def inputs(params: dict) -> dict[str, list[int]]:
    return _lists(random.Random(params["seed"]), params["length"])


def held_out_inputs(params: dict) -> dict[str, list[int]]:
    rng = random.Random(params["seed"] + 1_000_003)
    return {f"held_{name}": values for name, values in _lists(rng, 2 * params["length"]).items()}
