"""Candidates that read the harness's memory instead of computing (issue 13), in real sandboxes.

With numba (bin packing's default) the evolved functions run in the harness's own process, next to the inputs:
compiled, or as Python where numba refuses them. Memory is then the boundary, and two doors were open:
- numba checks plain indexing only; parts of its library read past an array's end (`a.flat[-j]`,
  `np.take_along_axis`, a ufunc's positional `out`, `a += b` with shapes that do not broadcast), so a compiled
  `priority` could read the instance it is packing online and steer the packing;
- memory handed out uninitialised (`np.empty`, `np.ndarray(shape)`) held what the process had freed: the lists
  of item sizes the server decoded from the request, every instance of the evaluation.
Each candidate below reads that way and packs worst-fit once it sees the instance, so a leak shows as a score far
from best fit's; after the fix each one ends in an error (the read is refused) or scores exactly as best fit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.evaluators import SandboxPool, load_problem

REPO = Path(__file__).resolve().parent.parent
SMALL = {"num_items": "200", "num_instances": "2", "held_out_instances": "1"}  # numba on: the default
BEST_FIT = "def priority(item, bins):\n    return -(bins - item)\n"

# Reads `probe` from the harness's memory, then packs worst-fit if it holds a long run of item sizes beyond bins.
STEER = '''def priority(item, bins):
    n = 400000
{read}
    run = 0
    best = 0
    for j in range(bins.shape[0] + 64, n):
        v = probe[j]
        if v >= 1.0 and v <= 99.0 and v == np.floor(v):
            run += 1
            if run > best:
                best = run
        else:
            run = 0
    if best >= 150:
        return bins - item
    return -(bins - item)
'''
OUT_OF_BOUNDS = {
    "in-place operator": "    probe = np.zeros(n)\n    probe += bins[::-1]",
    "flat": "    probe = np.zeros(n)\n    for j in range(n):\n        probe[j] = bins.flat[-j]",
    "take_along_axis": "    probe = np.take_along_axis(bins[::-1], np.arange(n), 0)",
    "ufunc out": "    probe = np.zeros(n)\n    np.add(probe, bins[::-1], probe)",
}

# As Python (the name `lib` makes numba refuse it, so it runs in the harness's process as plain Python): at its
# first call it looks through uninitialised memory for arrays of pointers to the small ints an item
# list holds, and prints the runs it found (but its own `ids`).
STALE = '''def priority(item, bins):
    global SEEN
    lib = 0
    try:
        SEEN
    except Exception:
        SEEN = 1
        ids = np.array([id(k) for k in range(0, 101)], dtype=np.uint64)
        found = []
        kept = []
        for k in range(5, 17):
            for rep in range(48):
                for block in (np.ndarray(((1 << k) + rep * 24) // 8, dtype=np.uint64),
                              np.empty(((1 << k) + rep * 24) // 8, dtype=np.uint64)):
                    kept.append(block)  # kept, so that each allocation is a chunk of its own
                    hit = np.concatenate(([False], np.isin(block, ids), [False])).astype(np.int8)
                    edges = np.flatnonzero(np.diff(hit))
                    for start, stop in zip(edges[::2], edges[1::2]):
                        run = (block[start:stop] - ids[0]) // (ids[1] - ids[0])
                        if stop - start >= 12 and np.mean(np.diff(run) == 1) < 0.5:  # not its own ids
                            found.append(run[:40].tolist())
        print("STALE", found[:100])
    return -(bins - item)
'''


@pytest.fixture(scope="module")
def bins():
    with SandboxPool(load_problem(REPO / "problems" / "bin_packing.py", SMALL), 1) as pool:
        assert pool.problem.settings.numba is True
        yield pool


@pytest.fixture(scope="module")
def best_fit(bins):
    honest = bins.evaluate(BEST_FIT)
    assert honest.status == "ok" and honest.compiled is True, honest
    return honest


@pytest.mark.parametrize("door", sorted(OUT_OF_BOUNDS))
def test_compiled_code_reads_nothing_past_its_arrays(bins, best_fit, door):
    ev = bins.evaluate(STEER.format(read=OUT_OF_BOUNDS[door]))
    assert ev.status != "ok" or ev.score == best_fit.score, ev
    if ev.status == "ok":
        return
    assert ev.status == "error" and ("out of bounds" in ev.error or "broadcast" in ev.error), ev


def test_the_door_check_leaves_honest_compiled_code_compiled(bins, best_fit):
    """In-place operators that broadcast, ufuncs called with their inputs, array members: still compiled."""
    code = ("def priority(item, bins):\n    score = np.zeros(bins.shape[0])\n    score += bins\n"
            "    score -= item\n    gap = np.maximum(score, 0.0)\n    gap *= -1.0\n    out = np.empty_like(gap)\n"
            "    out[:] = gap\n    return out + 0.0 * np.sum(bins.reshape(-1)) * bins.size\n")
    ev = bins.evaluate(code)
    assert ev.status == "ok" and ev.compiled is True and ev.score == best_fit.score, ev


def _runs_of(items: list[int], length: int) -> set[tuple[int, ...]]:
    return {tuple(items[i:i + length]) for i in range(len(items) - length + 1)}


def test_uninitialised_memory_holds_none_of_the_inputs(bins, best_fit):
    length = 12
    known: set[tuple[int, ...]] = set()
    for source in (bins.problem.inputs, bins.problem.held_out):
        for instance in source.values():
            known |= _runs_of(instance["items"], length)
    leaked = []
    for held_out in (False, True, False):  # the server's heap has decoded more requests each time
        ev = bins.evaluate(STALE, held_out=held_out)
        assert ev.status == "ok" and ev.compiled is False, ev
        assert ev.score == (best_fit.score if not held_out else bins.evaluate(BEST_FIT, held_out=True).score)
        for line in ev.stdout.splitlines():
            if line.startswith("STALE "):
                found = eval(line[len("STALE "):])  # noqa: S307 - lists of ints the candidate printed
                leaked += [run for values in found for run in _runs_of(values, length) if run in known]
    assert not leaked, f"{len(leaked)} runs of {length} item sizes of the inputs found in fresh memory"


# A compiled harness that passes each call a view (the values seen so far): in the harness's process, a view's
# `.base` would be the whole input, the values still to come included.
PREFIX_PROBLEM = '''"""Guess each value from the values before it."""
import numpy as np

from evoforge import Settings, compiled_harness, evolve

SETTINGS = Settings(maximize=True, numba=True)


@evolve
def guess(seen):
    return float(seen[-1]) if len(seen) else 0.0


@compiled_harness("(guess, float64[::1])", guess="float64(float64[::1])")
def run(guess, values):
    out = np.zeros(len(values))
    for i in range(len(values)):
        out[i] = guess(values[:i])
    return out


def solve(values):
    return run(guess, np.asarray(values, dtype=np.float64))


def score(values, output):
    return -float(np.abs(np.asarray(output) - np.asarray(values)).sum())


def inputs(params):
    return {"a": [float(x) for x in np.random.default_rng(0).random(50)]}
'''
FROM_THE_BASE = ("def guess(seen):\n    lib = 0\n    whole = seen.base\n"
                 "    return float(whole[len(seen)]) if whole is not None else 0.0\n")


def test_a_view_does_not_lead_to_the_array_it_views(tmp_path):
    path = tmp_path / "prefix.py"
    path.write_text(PREFIX_PROBLEM)
    with SandboxPool(load_problem(path, {}), 1) as pool:
        honest = pool.evaluate("def guess(seen):\n    return float(seen[-1]) if len(seen) else 0.0\n")
        assert honest.status == "ok" and honest.score < -1.0, honest
        ev = pool.evaluate(FROM_THE_BASE)
    assert ev.status != "ok" or ev.score == honest.score, ev
    assert ev.status == "error" and "`.base`" in ev.error, ev
