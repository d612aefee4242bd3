"""The score a program gets when the problem's own solve calls it in the test's process, as plain Python (as
evoforge ran candidates before issue 13): the honest reference a sandboxed score is compared with."""

from __future__ import annotations

import numpy as np

from evoforge.evaluators import Problem


def in_process(problem: Problem, code: str, held_out: bool = False) -> float:
    """The program's aggregate score on the problem's training (or held-out) inputs, computed in this process."""
    ns: dict = {"np": np}
    exec(code, ns)
    saved = {name: getattr(problem.module, name) for name in problem.evolved_names}
    try:
        for name in problem.evolved_names:
            setattr(problem.module, name, ns[name])
        source = problem.held_out if held_out else problem.inputs
        scores = {n: problem.score_output(v, problem.module.solve(v)) for n, v in source.items()}
    finally:
        for name, fn in saved.items():
            setattr(problem.module, name, fn)
    return problem.aggregate(scores, source)
