"""evoforge: evolutionary program search with LLMs, sandboxed evaluation and a SQL record of everything.

Problem files import from here (`from evoforge import evolve, Settings, Stage`) inside every sandbox, so importing
`evoforge` stays cheap: the problem-file API is imported at once, the search API (`run`, `load_run`) on first use.

Layout: `evoforge.engine` (the loop, proposers, CLI, analysis), `evoforge.islands` (parent selection),
`evoforge.db` (the record), `evoforge.evaluators` (sandbox and trusted scoring), `evoforge.problems` (bundled
problems).
"""

from typing import Any

from evoforge.evaluators.problem_api import Project, Scored, Settings, Stage, compiled_harness, evolve

__version__ = "0.2.0"

__all__ = ["Project", "Scored", "Settings", "Stage", "__version__", "batch", "compiled_harness", "evolve", "load_run",
           "run"]


def __getattr__(name: str) -> Any:
    if name == "batch":  # for problem files: call an evolved function on many arguments in one round trip
        from evoforge.evaluators.channel import batch

        return batch
    if name in ("run", "load_run", "Run"):
        from evoforge import api

        return getattr(api, name)
    raise AttributeError(f"module 'evoforge' has no attribute {name!r}")
