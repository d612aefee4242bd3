"""Held-out scores on request: the search scores held-out inputs only for each new best, so a program that tied
the best, or that became best when a person rejected the one above it, has none. `evoforge best --held-out`
evaluates those in the sandbox and records them like the search would."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from evoforge.db import ProgramInfo, Store
from evoforge.engine.run.node_evaluation import NodeEvaluation
from evoforge.engine.run.oversight import run_problem
from evoforge.engine.run.records import evaluation_record
from evoforge.evaluators import SandboxPool


def score_held_out(store: Store, name: str, programs: Sequence[ProgramInfo], *,
                   note: Callable[[str], None] = lambda _m: None) -> list[ProgramInfo]:
    """Evaluate the held-out inputs of those `programs` of run `name` that lack a held-out score; return them all,
    re-read. A problem without held-out inputs changes nothing."""
    run, problem = run_problem(store, name)
    missing = [p for p in programs if p.held_out_score is None and p.status == "ok"]
    if not missing or not problem.held_out:
        return list(programs)
    with SandboxPool(problem, workers=1) as pool:
        for number, p in enumerate(missing, 1):
            note(f"held-out inputs of program {p.id} ({number}/{len(missing)})")
            ev = NodeEvaluation.of(pool.evaluate(p.code, held_out=True), socket.gethostname())
            store.add_evaluation(p.id, evaluation_record(ev, "held_out"))
    return store.get_programs([p.id for p in programs])
