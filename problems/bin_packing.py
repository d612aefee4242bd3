"""Online bin packing: pack items, one at a time in arrival order, into as few bins of fixed capacity as possible.

Each arriving item goes into one of the bins that still has room for it; `priority(item, bins)` receives the item's
size and a numpy array with the remaining capacity of every bin that can take the item, and returns an array of the
same length with one priority per bin. The item goes into the bin with the highest priority (ties: the first).
Unused bins are always offered, so opening a new bin is just choosing a bin whose remaining capacity is the full
capacity. The score is the percentage of excess bins over the L1 lower bound ceil(sum(items) / capacity), averaged
over the instances as FunSearch computes it; lower is better. The evolved code sees its arguments, numpy as `np` and
the standard modules it imports (math, itertools, functools, collections, heapq, bisect, random, ...); nothing else
of this file.
"""

from __future__ import annotations

import json
import math

import numpy as np

from evoforge import Settings, compiled_harness, evolve
from evoforge.problems import dataset_path

PARAMS = {
    "dataset": "",  # a bundled dataset (or3, weibull_5k) or a JSON file of name -> {capacity, items}; "" = generated
    "num_instances": 5,  # generated training instances
    "num_items": 1000,  # items per generated instance
    "held_out_instances": 5,  # generated held-out instances, never shown to the search
    "capacity": 100,
    "seed": 0,  # seed of the instance generator
}
# numba: `pack` is compiled once per problem and each candidate's `priority` alone (cached by its code); a
# priority numba cannot compile runs as Python, with the same results.
# bound: no packing beats the L1 bound (0 % excess); a program at it has most likely not packed online.
SETTINGS = Settings(maximize=False, time_limit_s=60.0, memory_limit_mb=2048, numba=True, bound=0.0)

# Published figures, % excess bins over L1 (FunSearch, Nature 2023, Table 1); for reference, never used in scoring.
REFERENCES = {
    "or3": {"first_fit": 5.74, "best_fit": 5.37, "funsearch": 3.11},
    "weibull_5k": {"first_fit": 4.23, "best_fit": 3.98, "funsearch": 0.68},
}


@evolve
def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns priority with which we want to add item to each bin."""
    return -(bins - item)


@compiled_harness("(priority, float64[::1], float64)", priority="float64[:](float64, float64[::1])")
def pack(priority, items, capacity):
    """Pack the items online: each goes into the bin, among those with room, that priority ranks first.

    Bins from `opened` on were never used and each has the full capacity, so they have room for any item and
    only the first `opened` bins are checked; priority still sees every bin with room, in index order.
    """
    n = len(items)
    bins = np.full(n, capacity)
    assignment = np.empty(n, dtype=np.int64)
    opened = 0
    for i in range(n):
        item = float(items[i])
        valid = np.nonzero(bins[:opened] - item >= 0)[0]
        k = len(valid)
        free = np.empty(k + n - opened)
        free[:k] = bins[valid]
        free[k:] = capacity
        priorities = np.asarray(priority(item, free))
        best = np.argmax(priorities)
        if best >= len(free):
            raise IndexError("priority returned more priorities than there are bins with room")
        chosen = valid[best] if best < k else opened + best - k
        bins[chosen] -= item
        assignment[i] = chosen
        opened = max(opened, chosen + 1)
    return assignment


def solve(instance: dict) -> np.ndarray:
    """Pack the items online; return the index of the bin each item went into."""
    items = np.asarray(instance["items"], dtype=np.float64)
    return pack(priority, items, float(instance["capacity"]))


def l1_bound(instance: dict) -> int:
    """The L1 lower bound on the number of bins: ceil(total size / capacity)."""
    return math.ceil(sum(instance["items"]) / instance["capacity"])


def score(instance: dict, output: object) -> float:
    """Excess bins over the L1 bound, after checking every item is packed once and no bin overflows."""
    items = instance["items"]
    assignment = np.asarray(output)
    if assignment.shape != (len(items),) or not np.issubdtype(assignment.dtype, np.integer):
        raise ValueError(f"expected one integer bin index per item ({len(items)}), got shape {assignment.shape}")
    if assignment.min() < 0:
        raise ValueError("bin indices must be non-negative")
    if assignment.max() >= len(items):  # also keeps bincount from allocating a huge array for a huge index
        raise ValueError(f"bin index {int(assignment.max())} is not below the number of items ({len(items)}); "
                         "no packing needs more bins than items")
    loads = np.bincount(assignment, weights=np.asarray(items, dtype=np.float64))
    if loads.max() > instance["capacity"]:
        raise ValueError(f"bin {int(loads.argmax())} holds {loads.max()} > capacity {instance['capacity']}")
    bins_used = int(np.count_nonzero(loads))
    return float(bins_used - l1_bound(instance))


def aggregate(scores: list[float], instances: list[dict]) -> float:
    """(mean bins used - mean L1 bound) / mean L1 bound, in %: FunSearch's figure."""
    bounds = [l1_bound(instance) for instance in instances]
    return 100.0 * sum(scores) / sum(bounds)


def _weibull_instances(count: int, num_items: int, capacity: int, seed: int, prefix: str) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    instances = {}
    for i in range(count):
        sizes = np.clip(np.round(rng.weibull(3.0, num_items) * 45.0), 1, capacity).astype(int)
        instances[f"{prefix}{i}"] = {"capacity": capacity, "items": sizes.tolist()}
    return instances


def _load_dataset(dataset: str) -> dict[str, dict]:
    raw = json.loads(dataset_path(dataset).read_text())
    return {name: {"capacity": int(inst["capacity"]), "items": [int(x) for x in inst["items"]]}
            for name, inst in raw.items()}


def inputs(params: dict) -> dict[str, dict]:
    if params["dataset"]:
        return _load_dataset(params["dataset"])
    return _weibull_instances(params["num_instances"], params["num_items"], params["capacity"],
                              params["seed"], "weibull_train_")


def held_out_inputs(params: dict) -> dict[str, dict]:
    # A different generator stream, so held-out instances never coincide with training ones.
    return _weibull_instances(params["held_out_instances"], params["num_items"], params["capacity"],
                              params["seed"] + 1_000_003, "weibull_heldout_")
