"""Evaluation: load problems, run candidates in sandboxes, score their outputs on the trusted side."""

from evaluators.problem import (
    InvalidOutput,
    Problem,
    ProblemError,
    Settings,
    evolve,
    load_problem,
    parse_overrides,
)

__all__ = ["InvalidOutput", "Problem", "ProblemError", "Settings", "evolve", "load_problem",
           "parse_overrides"]
