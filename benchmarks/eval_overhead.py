"""What evaluation costs, per bundled problem: the sandbox's own overhead, Python against Numba, a cascade's saving.

    python benchmarks/eval_overhead.py [PROBLEM ...] [-n 50] [--mutants 40] [--set key=value ...]

Three tables (default problems: problems/cap_set.py and problems/bin_packing.py):
1. overhead: the seed evaluated n times per isolation level. The sandbox's own time per evaluation is the total
   minus what the candidate and the problem spend (solve, numba compile, trusted score): fork, lock-down, pipes,
   encoding and decoding. Median and p99; the target is under 20 ms median.
2. numba: the seed's solve time as plain Python, compiled (first evaluation compiles; the next loads the program's
   compilation from the cache), and under numba="auto", which compiles only when it pays.
3. cascade: offline mutants of the seed, each evaluated with and without the problem's cascade (a problem without
   one gets a variant here: its first input must score within 10% of the seed's): time, culled, saving.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evoforge.engine.program.patching import PatchError, apply_response  # noqa: E402
from evoforge.engine.propose.offline import AstMutator, NoMutationFound  # noqa: E402
from evoforge.evaluators import Evaluation, Problem, SandboxPool, Stage, load_problem, parse_overrides  # noqa: E402
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


def numba_table(problems: list[Problem], repeats: int) -> None:
    print(f"\n2. Python against Numba: the seed's solve time (median of {repeats} evaluations after the first)")
    print(f"{'problem':<16}{'numba':<8}{'first: compile + solve ms':>27}{'again: compile + solve ms':>27}"
          f"{'compiled':>10}")
    for problem in problems:
        for choice in (False, True, "auto"):
            # The sandbox loads the problem file itself, so the setting must travel as an override.
            variant = load_problem(problem.path, {**problem.overrides, "numba": str(choice).lower()})
            with SandboxPool(variant, 1) as pool:
                first = pool.evaluate(problem.seed_code, cascade=False)
                again = [pool.evaluate(problem.seed_code, cascade=False) for _ in range(repeats)]
            if not first.ok:
                print(f"{problem.name:<16}{str(choice):<8} {first.status}: {first.error}")
                continue
            compile_again = statistics.median(e.timings["compile"] for e in again)
            solve_again = statistics.median(e.timings["solve"] for e in again)
            print(f"{problem.name:<16}{str(choice):<8}"
                  f"{_ms(first.timings['compile']):>15} + {_ms(first.timings['solve']):>9}"
                  f"{_ms(compile_again):>15} + {_ms(solve_again):>9}{str(first.compiled):>10}")


def mutants(problem: Problem, count: int, seed: int = 0) -> list[str]:
    """Distinct offline mutations of the seed, chained so that some drift far from it."""
    rng = np.random.default_rng(seed)
    proposer = AstMutator()
    programs = [problem.seed_code]
    for _ in range(20 * count):
        if len(programs) > count:
            break
        parent = programs[int(rng.integers(len(programs)))]
        try:
            code = apply_response(proposer.propose([parent], problem.evolved_names, rng), parent,
                                  problem.evolved_names)
        except (NoMutationFound, PatchError):
            continue
        if code not in programs:
            programs.append(code)
    return programs[1:]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problems", nargs="*", default=[str(p) for p in DEFAULT_PROBLEMS])
    parser.add_argument("-n", type=int, default=50, help="evaluations per row of the overhead table")
    parser.add_argument("--mutants", type=int, default=40, help="programs in the cascade comparison")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter or setting of every problem given (e.g. time_limit_s=10)")
    args = parser.parse_args()
    overrides = parse_overrides(args.overrides)
    problems = [load_problem(path, overrides) for path in args.problems]
    print(f"problems: {', '.join(p.name for p in problems)}; isolation levels here: "
          f"{', '.join(available_levels(problems[0].path))}")
    overhead_table(problems, args.n)
    numba_table(problems, 3)
    cascade_table(problems, args.mutants)


if __name__ == "__main__":
    main()
