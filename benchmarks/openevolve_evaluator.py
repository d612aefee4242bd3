"""OpenEvolve's evaluator for online bin packing, scoring exactly as problems/bin_packing.py does.

OpenEvolve loads this file in its own interpreter and calls `evaluate(program_path)` on each candidate; so it uses
numpy and the standard library alone. The instances are those of the evoforge problem, written to the JSON file
named by EVOFORGE_PEER_INSTANCES by benchmarks/peer_openevolve.py. Each item goes, in arrival order, into the bin
with room that `priority` ranks first, never-used bins offered at full capacity (the problem's harness, run as
Python); the score is the excess of bins over the L1 bound in % of the summed bounds (the problem's `aggregate`).

OpenEvolve maximises `combined_score`, so it is the NEGATED excess. A program that fails (an exception, a wrong
output, an overfull bin) scores INVALID, below any packing, and `valid` 0: raising instead would make OpenEvolve
retry it and then record a metric-less program, which it ranks at 0, above every real packing.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

INVALID = -1000.0  # a program that did not pack: far below any packing (one bin per item is about 150 % here)


def load_instances(path: str | None = None) -> list[dict[str, Any]]:
    """The instances, in the problem's order: [{"capacity": c, "items": [...]}, ...]."""
    with open(path or os.environ["EVOFORGE_PEER_INSTANCES"]) as f:
        return list(json.load(f).values())


def pack(priority: Any, items: np.ndarray, capacity: float) -> np.ndarray:
    """The bin each item goes into, online: the first of the highest-priority bins among those with room."""
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
        best = np.argmax(np.asarray(priority(item, free)))
        if best >= len(free):
            raise IndexError("priority returned more priorities than there are bins with room")
        chosen = valid[best] if best < k else opened + best - k
        bins[chosen] -= item
        assignment[i] = chosen
        opened = max(opened, chosen + 1)
    return assignment


def l1_bound(instance: dict[str, Any]) -> int:
    return math.ceil(sum(instance["items"]) / instance["capacity"])


def excess_bins(instance: dict[str, Any], assignment: np.ndarray) -> int:
    """Bins used minus the L1 bound, after the problem's checks (every item once, no bin over capacity)."""
    items = instance["items"]
    if assignment.shape != (len(items),) or not np.issubdtype(assignment.dtype, np.integer):
        raise ValueError("expected one integer bin index per item")
    if assignment.min() < 0 or assignment.max() >= len(items):
        raise ValueError("bin index out of range")
    loads = np.bincount(assignment, weights=np.asarray(items, dtype=np.float64))
    if loads.max() > instance["capacity"]:
        raise ValueError("a bin holds more than its capacity")
    return int(np.count_nonzero(loads)) - l1_bound(instance)


def total_excess_bins(code: str, instances: list[dict[str, Any]]) -> int:
    """Excess bins over the L1 bound of a program's `priority`, summed over the instances."""
    namespace: dict[str, Any] = {"__name__": "candidate"}
    exec(compile(code, "candidate", "exec"), namespace)
    priority = namespace["priority"]
    return sum(excess_bins(inst, pack(priority, np.asarray(inst["items"], dtype=np.float64),
                                      float(inst["capacity"]))) for inst in instances)


def excess_percent(excess: int, instances: list[dict[str, Any]]) -> float:
    """The problem's aggregate: 100 * summed excess bins / summed L1 bounds."""
    return 100.0 * excess / sum(l1_bound(inst) for inst in instances)


def evaluate(program_path: str) -> dict[str, float]:
    """OpenEvolve's entry point: combined_score = -excess % (higher is better), or INVALID.

    `excess_bins` is an integer, so OpenEvolve's log (four decimals) gives the exact score back to the benchmark.
    """
    with open(program_path) as f:
        code = f.read()
    instances = load_instances()
    try:
        excess = total_excess_bins(code, instances)
    except Exception:  # the candidate's failure is its score, not the evaluator's
        return {"combined_score": INVALID, "valid": 0.0}
    return {"combined_score": -excess_percent(excess, instances), "excess_bins": float(excess), "valid": 1.0}
