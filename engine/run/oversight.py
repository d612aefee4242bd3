"""A person's hand on a run: `evoforge add` puts their own program in, `evoforge reject` takes one out.

Both write the database and an event. A running search picks the events up within seconds (engine/run/steering.py);
a stopped one at the next `evoforge resume`, whose restore() registers human programs on their island and skips
rejected ones (also as founders of island resets).
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evoforge.db import NewProgram, ProgramInfo, RunInfo, Store
from evoforge.engine.analysis import export
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.program.candidates import candidate_from_text, read_candidate
from evoforge.engine.program.source import code_hash
from evoforge.engine.run.node_evaluation import NodeEvaluation
from evoforge.engine.run.records import evaluation_record
from evoforge.evaluators import Problem, ProblemError, SandboxPool, load_problem

Note = Callable[[str], None]


def current_user() -> str:
    """Who is at the keyboard: $USER, else the login name."""
    return os.environ.get("USER") or getpass.getuser()


def run_problem(store: Store, name: str) -> tuple[RunInfo, Problem]:
    """The run and its problem loaded from its path, refused if the file changed since the run started."""
    run = analysis.open_run(store, name)
    stored = run.config["run"]
    restore = functools.partial(export.restore_command, name, stored["problem"], store.url)
    if not Path(stored["problem"]).is_file():
        raise ProblemError(f"{stored['problem']}: the problem file of run '{name}' is gone\n  fix: write it back as "
                           f"the run stored it: `{restore(replace=False)}`")
    problem = load_problem(stored["problem"], stored.get("overrides", {}))
    if problem.source_hash != run.problem_hash:
        raise ProblemError(f"{problem.path} changed since run '{name}' started, so its scores would not compare\n"
                           "  fix: put back the text the run stored (keep your edited file under another name "
                           f"first): `{restore(replace=True)}`, or start a new run")
    return run, problem


@dataclass(frozen=True)
class Added:
    """A human program as recorded, with the run it joined."""

    run_name: str
    program: ProgramInfo


def add_program(store: Store, name: str, path: str | Path | None = None, *, code: str | None = None,
                island: int = 0, by: str | None = None, note: Note = lambda _m: None) -> Added:
    """Evaluate a person's file (or pasted `code`) like any candidate (sandbox, training then held-out) and record
    it as 'human', with an event saying who added it, which a running search picks up."""
    if (path is None) == (code is None):
        raise ValueError("add_program takes a file path or the code itself, not both")
    run, problem = run_problem(store, name)
    islands = analysis.num_islands(run)
    if not 0 <= island < islands:
        raise ProblemError(f"--island {island}: run '{name}' has islands 0..{islands - 1}")
    where = str(path) if path is not None else "the pasted code"
    code = read_candidate(path, problem) if path is not None else candidate_from_text(code or "", problem)
    digest = code_hash(code)
    same = store.find_by_hash(run.id, digest)
    if same is not None:
        raise ProblemError(f"{where}: run '{name}' already has this program (program {same}, comments and "
                           f"whitespace aside); see `evoforge program {same}`")
    with SandboxPool(problem, workers=1) as pool:
        note(f"evaluating {path} on {len(problem.inputs)} training inputs in the sandbox")
        node = socket.gethostname()  # recorded as the search records its local evaluations
        train = NodeEvaluation.of(pool.evaluate(code), node)
        held = None
        if train.status == "ok" and problem.held_out:
            note(f"evaluating it on {len(problem.held_out)} held-out inputs")
            held = NodeEvaluation.of(pool.evaluate(code, held_out=True), node)
    program = NewProgram(island=island, origin="human", code=code, code_hash=digest, status=train.status,
                         score=train.score, scores=dict(train.scores), error=train.error,
                         metrics=dict(train.metrics), feedback=train.feedback)
    evaluations = [evaluation_record(train, "train")]
    evaluations += [evaluation_record(held, "held_out")] if held is not None else []
    recorded = store.record_candidate(run.id, program=program, evaluations=evaluations)
    assert recorded.program_id is not None  # a program was recorded
    store.record_event(run.id, analysis.HUMAN_EVENT, {"program": recorded.program_id, "island": island,
                                             "by": by or current_user()})
    return Added(run.name, store.get_program(recorded.program_id))


def reject_program(store: Store, program_id: int, *, why: str, by: str | None = None) -> ProgramInfo:
    """Take a program out of selection for good, recording who and why; the seed cannot be rejected."""
    program = store.get_program(program_id)
    if program.origin == "seed":
        raise ProblemError(f"program {program_id} is the seed of its run: every island starts from it, so it cannot "
                           "be rejected\n  fix: reject the programs descended from it that you distrust")
    if not why.strip():
        raise ProblemError("--why is empty: say what is wrong with the program, e.g. --why 'reads the answers'")
    who = by or current_user()
    rejected = store.reject_program(program_id, by=who, why=why)
    store.record_event(rejected.run_id, analysis.REJECT_EVENT, {"program": program_id, "by": who, "why": why})
    return rejected


def accept_program(store: Store, program_id: int, *, why: str, by: str | None = None) -> ProgramInfo:
    """Let a SUSPECT program (past its problem's bound, or judged to game the score) into selection, recording who
    and why."""
    program = store.get_program(program_id)
    run = analysis.run_of(store, program)
    if analysis.held(store, run, program) is None:
        bound = analysis.bound(run)
        raise ProblemError(f"program {program_id} is not SUSPECT (score {program.score}, bound {bound}): only a "
                           "program past its problem's bound, or one the reviewer model judged to game the score, "
                           "waits to be accepted")
    if program.rejected_at is not None:
        raise ProblemError(f"program {program_id} was rejected by {program.rejected_by}; a rejection is final")
    if program_id in analysis.accepted(store, run):
        raise ProblemError(f"program {program_id} was already accepted")
    if not why.strip():
        raise ProblemError("--why is empty: say why the score is real, e.g. --why 'checked: a valid new packing'")
    who = by or current_user()
    store.record_event(run.id, analysis.ACCEPT_EVENT, {"program": program_id, "by": who, "why": why})
    return program


def annotate_run(store: Store, name: str, text: str, *, by: str | None = None) -> int:
    """Record a person's note on a run (shown by the report and `evoforge serve`); returns its seq."""
    if not text.strip():
        raise ProblemError("the note is empty: write what you noticed, e.g. 'island 2 stalls since program 880'")
    run = analysis.open_run(store, name)
    return store.record_event(run.id, analysis.NOTE_EVENT, {"text": text.strip(), "by": by or current_user()})
