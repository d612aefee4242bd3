"""Distinct offline mutations of a problem's seed, for tests and benchmarks that need many real candidates."""

from __future__ import annotations

import numpy as np

from evoforge.engine.program.patching import PatchError, apply_response
from evoforge.engine.propose.offline import AstMutator, NoMutationFound
from evoforge.evaluators import Problem


def mutants(problem: Problem, count: int, seed: int = 0) -> list[str]:
    """Up to `count` distinct mutants (not the seed itself), chained so that some drift far from the seed; the
    same `seed` gives the same list."""
    rng = np.random.default_rng(seed)
    proposer = AstMutator()
    programs = [problem.seed_code]
    for _ in range(30 * count):
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
