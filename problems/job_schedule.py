"""Single-machine scheduling with due dates: order the jobs to finish the important ones early and few of them late.

Each instance is a list of jobs, each with a processing time, a weight and a due date (integers). The machine runs
the jobs back to back from time 0, in increasing order of `priority(processing_time, weight, due_date)` (ties: the
job listed first). Two metrics are scored:
`weighted_completion`, the sum over jobs of weight * completion time divided by the number of jobs (the primary,
lower is better), and `late_jobs`, the share of jobs that finish after their due date, which must stay at or under
0.25 (a constraint). The evaluator's feedback says how many jobs were late and by how much.
"""

from __future__ import annotations

import random

from evoforge import Scored, Settings, batch, evolve

PARAMS = {
    "num_instances": 4,  # training instances
    "num_jobs": 30,  # jobs per instance
    "held_out_instances": 2,  # held-out instances, never shown to the search
    "seed": 0,  # seed of the instance generator
}
SETTINGS = Settings(maximize=False, time_limit_s=10.0, primary_metric="weighted_completion",
                    metrics_maximize={"late_jobs": False}, constraints={"late_jobs": 0.25})


@evolve
def priority(processing_time: int, weight: int, due_date: int) -> float:
    """Returns the priority of a job: jobs run in increasing order of it."""
    return 1.0 * due_date + 0.0 * processing_time - 0.0 * weight


def solve(jobs: list) -> list[int]:
    """The job indices in the order the machine runs them."""
    # The priorities do not depend on each other: one batch crosses to the candidate's process once.
    keys = [float(key) for key in batch(priority, [tuple(job) for job in jobs])]
    return sorted(range(len(jobs)), key=lambda i: (keys[i], i))


def score(jobs: list, output: object) -> Scored:
    """Both metrics of the schedule, after checking that it runs every job exactly once."""
    if not isinstance(output, list) or sorted(output) != list(range(len(jobs))):
        raise ValueError(f"expected a permutation of the {len(jobs)} job indices 0..{len(jobs) - 1}")
    clock, weighted, late = 0, 0, []
    for index in output:
        duration, weight, due = jobs[index]
        clock += duration
        weighted += weight * clock
        if clock > due:
            late.append((clock - due, index))
    late.sort(reverse=True)
    feedback = f"{len(late)} of {len(jobs)} jobs late" + (
        "; latest: " + ", ".join(f"job {i} by {by}" for by, i in late[:3]) if late else "")
    return Scored({"weighted_completion": weighted / len(jobs), "late_jobs": len(late) / len(jobs)}, feedback)


def _instance(rng: random.Random, num_jobs: int) -> list[tuple[int, int, int]]:
    times = [rng.randint(1, 10) for _ in range(num_jobs)]
    total = sum(times)
    return [(t, rng.randint(1, 5), rng.randint(t, total + total // 2)) for t in times]


def inputs(params: dict) -> dict[str, list]:
    rng = random.Random(params["seed"])
    return {f"jobs{i}": _instance(rng, params["num_jobs"]) for i in range(params["num_instances"])}


def held_out_inputs(params: dict) -> dict[str, list]:
    rng = random.Random(params["seed"] + 1_000_003)
    return {f"held{i}": _instance(rng, params["num_jobs"]) for i in range(params["held_out_instances"])}
