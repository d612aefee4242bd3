"""What evaluation costs, per bundled problem: the sandbox's own overhead, Python against Numba, a cascade's saving.

    python benchmarks/eval_overhead.py [PROBLEM ...] [-n 50] [--mutants 40] [--candidates 5] [--only TABLE]
        [--set key=value ...]

Three tables (default problems: problems/cap_set.py and problems/bin_packing.py):
1. overhead: the seed evaluated n times per isolation level. The sandbox's own time per evaluation is the total
   minus what the candidate and the problem spend (solve, numba compile, trusted score): fork, lock-down, pipes,
   encoding and decoding. Median and p99; the target is under 20 ms median.
2. numba: per candidate (distinct mutants of the seed that numba compiles), the time `solve` takes as Python, and
   with numba the first time a program is seen (compile + run) and when it is seen again by a new server (the
   compilation loaded from the engine's store + run); the speed-up per new and per cached candidate, and the
   break-even: the Python solve time per candidate above which compiling a new candidate pays. Bin packing is
   measured at 5 x 5000 items, cap set (which keeps numba off) under numba="auto" at n = 8 and n = 10.
3. cascade: offline mutants of the seed, each evaluated with and without the problem's cascade (a problem without
   one gets a variant here: its first input must score within 10% of the seed's): time, culled, saving.
4. the candidate boundary (issue 13): the cost of one call through the pipe to the candidate's own process (bin
   packing's arguments: a float and an array of 1000 floats) against a direct call, in calls per second; and per
   problem the seed's solve time with the evolved function called directly in the process that runs solve (how
   evoforge ran candidates before) against the sandbox's solve time through the boundary, and their ratio.
   Both sides are measured here, interleaved, so that a loaded machine weighs on both alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # as in the sandbox: one thread,
    os.environ.setdefault(_threads, "1")  # so that solving in process here compares with solving there

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mutants import mutants  # noqa: E402

from evoforge.evaluators import Evaluation, Problem, SandboxPool, Stage, load_problem, parse_overrides  # noqa: E402
from evoforge.evaluators.channel import ChannelError, Receiver, RemoteFunction, send  # noqa: E402
from evoforge.evaluators.isolation import available_levels  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PROBLEMS = [REPO / "problems" / "cap_set.py", REPO / "problems" / "bin_packing.py"]
VARIANT_TOLERANCE = 0.10  # the cascade variant culls programs more than this much worse than the seed


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def overhead_s(ev: Evaluation) -> float:
    """The sandbox's own share of an evaluation: total minus solve, compile and the trusted score."""
    t = ev.timings
    return t["total"] - t["solve"] - t["compile"] - t["score"]


def overhead_table(problems: list[Problem], n: int) -> None:
    print(f"\n1. sandbox overhead per evaluation of the seed ({n} evaluations per row; target < 20 ms median)")
    print(f"{'problem':<16}{'level':<14}{'median ms':>10}{'p99 ms':>9}{'solve ms':>10}{'score ms':>10}"
          f"{'total ms':>10}{'pool start s':>14}")
    for problem in problems:
        for level in available_levels(problem.path):
            t0 = time.perf_counter()
            with SandboxPool(problem, 1, level=level) as pool:
                started = time.perf_counter() - t0
                for _ in range(3):  # warm up
                    pool.evaluate(problem.seed_code)
                evs = [pool.evaluate(problem.seed_code) for _ in range(n)]
            bad = [e for e in evs if not e.ok]
            if bad:
                print(f"  {level}: {len(bad)} evaluations failed, e.g. {bad[0].status}: {bad[0].error}")
                continue
            over = [overhead_s(e) for e in evs]
            print(f"{problem.name:<16}{level:<14}{_ms(statistics.median(over)):>10}{_ms(_pct(over, 0.99)):>9}"
                  f"{_ms(statistics.median(e.timings['solve'] for e in evs)):>10}"
                  f"{_ms(statistics.median(e.timings['score'] for e in evs)):>10}"
                  f"{_ms(statistics.median(e.timings['total'] for e in evs)):>10}{started:>14.2f}")


# Sizes the numba table measures each bundled problem at: bin packing at 5 x 5000 items (the size of FunSearch's
# Weibull 5k set), cap set at its default n = 8 and at n = 10.
# Cap set keeps numba off; its rows show what numba="auto" would do.
NUMBA_SIZES = {"bin_packing": ({"num_items": "5000"},), "cap_set": ({"numba": "auto"}, {"numba": "auto", "n": "10"})}


def numba_table(problems: list[Problem], count: int) -> None:
    """Per new candidate: Python, then numba the first time a program is seen (compile + run), then the same
    program in a new server (its compilation loaded from the engine's store), and the break-even."""
    print(f"\n2. Python against numba per candidate ({count} distinct mutants of the seed, medians of solve and "
          "compile time; first = a program never compiled, cached = the same program again in a new server; "
          "each problem under its own numba setting, cap set under auto)")
    print(f"{'problem':<28}{'python s':>9}{'numba first: compile + run s':>30}{'cached: load + run s':>22}"
          f"{'new cand.':>10}{'cached':>8}{'pays above':>12}{'compiled':>9}")
    with tempfile.TemporaryDirectory(prefix="evoforge-bench-cache-") as folder:
        os.environ["EVOFORGE_CACHE_DIR"] = folder  # a fresh store: "first" really compiles
        for problem in problems:
            for extra in NUMBA_SIZES.get(problem.name, ({},)):
                overrides = {**problem.overrides, **extra}
                _numba_row(problem, overrides, count)


def _numba_row(problem: Problem, overrides: dict[str, str], count: int) -> None:
    """One row: the problem under its numba setting (the row's, else its own, else True), against numba off."""
    setting = overrides.get("numba") or str(problem.settings.numba or True).lower()
    label = f"{problem.name} numba={setting}" + "".join(f" {k}={v}" for k, v in overrides.items() if k != "numba")
    python = load_problem(problem.path, {**overrides, "numba": "false"})
    numba = load_problem(problem.path, {**overrides, "numba": setting})
    codes = [problem.seed_code] + mutants(problem, 4 * count)
    with SandboxPool(numba, 1) as pool:
        first: dict[str, Evaluation] = {}
        for code in codes:
            if len(first) < count:
                ev = pool.evaluate(code, cascade=False)
                if ev.ok and (ev.compiled or setting == "auto"):
                    first[code] = ev
    if not first:
        print(f"{label:<28} no candidate compiled")
        return
    with SandboxPool(python, 1) as pool:
        py = {code: pool.evaluate(code, cascade=False) for code in first}
    with SandboxPool(numba, 1) as pool:  # a new server: compilations come from the engine's store
        again = {code: pool.evaluate(code, cascade=False) for code in first}
    assert all(again[c].score == first[c].score == py[c].score for c in first), "numba changed a score"
    compiled = sum(bool(first[c].compiled) for c in first)
    py_s = statistics.median(py[c].timings["solve"] for c in first)
    compile_s = statistics.median(first[c].timings["compile"] for c in first)
    run_s = statistics.median(first[c].timings["solve"] for c in first)
    load_s = statistics.median(again[c].timings["compile"] for c in first)
    rerun_s = statistics.median(again[c].timings["solve"] for c in first)
    # compiling a new candidate pays once its Python solve time exceeds this (running compiled takes run/py of it)
    even = f"{compile_s / (1 - run_s / py_s):.2f} s" if compiled and run_s < py_s else "-"
    print(f"{label:<28}{py_s:>9.3f}{compile_s:>21.3f} + {run_s:>6.3f}{load_s:>13.3f} + {rerun_s:>6.3f}"
          f"{py_s / (compile_s + run_s):>9.1f}x{py_s / (load_s + rerun_s):>7.1f}x{even:>12}"
          f"{compiled:>5}/{len(first)}")


def with_cascade(problem: Problem) -> tuple[Problem, str]:
    """The problem's own cascade, or a variant: the first input must score within 10% of the seed's."""
    if problem.cascade:
        return problem, "declared"
    first = next(iter(problem.inputs))
    with SandboxPool(problem, 1) as pool:
        seed = pool.evaluate(problem.seed_code, [first]).score
    assert seed is not None, "the seed must score"
    slack = abs(seed) * VARIANT_TOLERANCE
    threshold = seed - slack if problem.settings.maximize else seed + slack
    return dataclasses.replace(problem, cascade=(Stage(inputs=(first,), threshold=threshold),)), \
        f"variant ({first}, 10%)"


def cascade_table(problems: list[Problem], count: int) -> None:
    print(f"\n3. cascade: {count} offline mutants of the seed, with and without the cascade")
    print(f"{'problem':<16}{'cascade':<32}{'without s':>10}{'with s':>9}{'saving':>8}{'culled':>8}"
          f"{'same verdicts':>15}")
    for problem in problems:
        codes = mutants(problem, count)
        staged, how = with_cascade(problem)
        with SandboxPool(staged, 1) as pool:
            t0 = time.perf_counter()
            full = [pool.evaluate(code, cascade=False) for code in codes]
            without = time.perf_counter() - t0
            t0 = time.perf_counter()
            cut = [pool.evaluate(code) for code in codes]
            with_ = time.perf_counter() - t0
        culled = sum(e.status == "culled" for e in cut)
        # A culled program must not be one that a full evaluation finds at least as good as a passing one.
        same = sum(a.status == b.status and a.score == b.score for a, b in zip(full, cut) if b.status != "culled")
        kept = len(codes) - culled
        print(f"{problem.name:<16}{how:<32}{without:>10.2f}{with_:>9.2f}{1 - with_ / without:>8.0%}{culled:>8}"
              f"{f'{same}/{kept}':>15}")


def per_call_us(calls: int) -> tuple[float, float]:
    """Microseconds per call of best fit's priority: direct, and through a channel to a forked process (both
    processes on one CPU, as a sandbox worker's are)."""
    cpu = min(os.sched_getaffinity(0))
    call_r, call_w = os.pipe()
    reply_r, reply_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the far side: what evaluators.inside.candidate does per call, without the lock-down
        os.sched_setaffinity(0, {cpu})
        os.close(call_w)
        os.close(reply_r)
        requests = Receiver(call_r, generators=True)
        while True:
            try:
                _, _, args, kwargs = requests.receive()
            except ChannelError:
                os._exit(0)
            send(reply_w, ("ok", -(args[1] - args[0])))
    os.close(call_r)
    os.close(reply_w)
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        remote = RemoteFunction("priority", call_w, Receiver(reply_r))
        bins = np.full(1000, 100.0)

        def direct(item: float, bins: np.ndarray) -> np.ndarray:
            return -(bins - item)

        t0 = time.perf_counter()
        for _ in range(calls):
            direct(3.0, bins)
        local = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(calls):
            remote(3.0, bins)
        through = time.perf_counter() - t0
    finally:
        os.close(call_w)
        os.waitpid(pid, 0)
        os.close(reply_r)
        os.sched_setaffinity(0, saved)
    return 1e6 * local / calls, 1e6 * through / calls


def in_process_solve_s(problem: Problem) -> float:
    """The seed's solve time over the training inputs, its evolved function called directly (before issue 13)."""
    t0 = time.perf_counter()
    for value in problem.inputs.values():
        problem.module.solve(value)
    return time.perf_counter() - t0


def boundary_table(problems: list[Problem], repeats: int, calls: int) -> None:
    direct_us, through_us = per_call_us(calls)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n4. the candidate boundary: one call of best fit's priority (a float and 1000 floats), {calls} calls "
          f"(load average {load}: each call waits for the scheduler twice, so a loaded machine costs more)")
    print(f"{'direct us/call':>16}{'through us/call':>17}{'calls/s through':>17}{'cost per call us':>18}")
    print(f"{direct_us:>16.1f}{through_us:>17.1f}{1e6 / through_us:>17.0f}{through_us - direct_us:>18.1f}")
    print(f"\n   the seed's solve time over the training inputs (median of {repeats}), before and after")
    print(f"{'problem':<22}{'in process ms':>14}{'boundary ms':>13}{'ratio':>8}")
    for problem in problems:
        with SandboxPool(problem, 1) as pool:
            pool.evaluate(problem.seed_code, cascade=False)  # warm up
            before, after = [], []
            for _ in range(repeats):  # interleaved: the same load weighs on both
                before.append(in_process_solve_s(problem))
                ev = pool.evaluate(problem.seed_code, cascade=False)
                if not ev.ok:
                    print(f"{problem.name:<22} {ev.status}: {ev.error}")
                    break
                after.append(ev.timings["solve"])
        if after:
            b, a = statistics.median(before), statistics.median(after)
            print(f"{problem.name:<22}{_ms(b):>14}{_ms(a):>13}{a / b:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problems", nargs="*", default=[str(p) for p in DEFAULT_PROBLEMS])
    parser.add_argument("-n", type=int, default=50, help="evaluations per row of the overhead table")
    parser.add_argument("--mutants", type=int, default=40, help="programs in the cascade comparison")
    parser.add_argument("--candidates", type=int, default=5, help="new candidates per row of the numba table")
    parser.add_argument("--only", choices=("overhead", "numba", "cascade", "boundary"), help="print one table only")
    parser.add_argument("--calls", type=int, default=5000, help="calls timed for the per-call cost (table 4)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter or setting of every problem given (e.g. time_limit_s=10)")
    args = parser.parse_args()
    overrides = parse_overrides(args.overrides)
    problems = [load_problem(path, overrides) for path in args.problems]
    print(f"problems: {', '.join(p.name for p in problems)}; isolation levels here: "
          f"{', '.join(available_levels(problems[0].path))}")
    if args.only in (None, "overhead"):
        overhead_table(problems, args.n)
    if args.only in (None, "numba"):
        numba_table(problems, args.candidates)
    if args.only in (None, "cascade"):
        cascade_table(problems, args.mutants)
    if args.only in (None, "boundary"):
        boundary_table(problems, 5, args.calls)


if __name__ == "__main__":
    main()
