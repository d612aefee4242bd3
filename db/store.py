"""``Store``: the one object the rest of evoforge uses to write and read a run's record.

Every method is one short transaction (see ``db.connection.transaction``) and returns frozen dataclasses, so a
``Store`` can be shared by threads and nothing it returns goes stale or touches the database later.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import shlex
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from importlib import metadata
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Select,
    and_,
    case,
    cast,
    delete,
    exc,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import make_url

from evoforge.db.checkpoint import WalCheckpointer
from evoforge.db.connection import masked, missing_folder, open_engine, transaction
from evoforge.db.errors import StoreError
from evoforge.db.holder import STALE_AFTER_S, RunHolder, this_host
from evoforge.db.models import RUN_STATUSES, Evaluation, Event, Judgement, Program, Proposal, Receipt, Run, utcnow
from evoforge.db.records import (
    EvaluationInfo,
    EventInfo,
    HistoryItem,
    JudgementInfo,
    ModelTotals,
    NewCandidate,
    NewEvaluation,
    NewProgram,
    NewProposal,
    ProgramBrief,
    ProgramInfo,
    ProgramSummary,
    ProposalInfo,
    ProposalOutcome,
    RecordedCandidate,
    RunInfo,
    Spend,
    as_utc,
)
from evoforge.db.schema import check_schema, create_schema
from evoforge.db.writes import (
    evaluation_row,
    insert_candidates,
    inserted_id,
    no_run,
    recorded_by_receipt,
    reserve_seqs,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PATIENCE_S = 120.0
_IN_CHUNK = 500  # ids bound in one IN (...): well inside every database's limit on parameters
_QUIET_DELAY_S = 0.8  # after ~1.5 s of failed retries the outage is reported
_MAX_DELAY_S = 10.0


class Store:
    """An evoforge database at a SQLAlchemy URL: ``sqlite:///runs/evoforge.db``, ``sqlite://`` (in memory), or
    ``postgresql+psycopg://user:pw@host/db``. Opening creates a new database or checks an existing one's schema."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, patience_s: float = DEFAULT_PATIENCE_S,
                 notify: Callable[[str], None] | None = None, create: bool = True) -> None:
        """``patience_s``: how long a lock, timeout or lost connection is retried (with backoff) before giving
        up; ``notify`` gets a line when the database stops answering and when it is back (default: the
        ``evoforge`` logger);
        ``create=False`` (for commands that only look) refuses a database that does not exist yet instead of
        leaving an empty one behind."""
        if not create:
            _require_existing_file(url)
        self._engine, self._lock = open_engine(url, timeout_s=timeout_s)
        self._patience_s = patience_s
        self._notify = notify or _to_log
        self._checkpointer: WalCheckpointer | None = None
        self._checkpointer_lock = threading.Lock()
        self.url = masked(self._engine.url)
        """The database URL with its password hidden."""
        # Check under a read transaction first, so opening an existing database never waits for the write lock.
        if not self._read(lambda c: check_schema(c, self.url)):
            if not create:
                self._engine.dispose()
                raise StoreError(f"{self.url} holds no evoforge runs; run a search into it first, or pass the "
                                 "--db of an existing one")
            self._write(lambda c: create_schema(c, self.url))

    def close(self) -> None:
        """Close all pooled connections; the store is unusable afterwards."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # ------------------------------------------------------------------------------------------------ runs

    def create_run(
        self,
        *,
        name: str,
        problem_name: str,
        problem_path: str,
        problem_source: str,
        problem_hash: str,
        config: Mapping[str, Any],
        seed: int,
        evoforge_version: str | None = None,
    ) -> RunInfo:
        """Create a run named ``name``; ``config`` must hold everything needed to replay it, as JSON."""
        try:
            json.dumps(config, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise StoreError(f"config of run {name!r} is not plain JSON ({err}); convert it before storing") from err
        version = evoforge_version or _installed_version()

        def create(c: Connection) -> RunInfo:
            if c.execute(select(Run.c.id).where(Run.c.name == name)).first() is not None:
                raise _run_exists(name, self.url)
            run_id = inserted_id(c.execute(
                insert(Run).values(
                    name=name,
                    problem_name=problem_name,
                    problem_path=problem_path,
                    problem_source=problem_source,
                    problem_hash=problem_hash,
                    config=dict(config),
                    seed=seed,
                    status="running",
                    created_at=utcnow(),
                    evoforge_version=version,
                    next_seq=0,
                )
            ))
            return _run_info(c.execute(_RUN_COLUMNS.where(Run.c.id == run_id)).one())

        try:
            return self._write(create)
        except StoreError as err:
            # Another process created the same name between our check and insert (PostgreSQL; SQLite serialises).
            if isinstance(err.__cause__, exc.IntegrityError) and self.get_run(name) is not None:
                raise _run_exists(name, self.url) from err
            raise

    def discard_unstarted_run(self, name: str) -> str | None:
        """Delete the run named ``name`` if it failed before recording anything to keep (no program, no proposal:
        its seed failed, or its sandbox never started), so its name can be used again; returns why it failed, or
        None (and deletes nothing) for any other run or none."""

        def discard(c: Connection) -> str | None:
            row = c.execute(select(Run.c.id, Run.c.status).where(Run.c.name == name).with_for_update()).first()
            if row is None or row.status != "failed":
                return None
            for table in (Program, Proposal):
                if c.execute(select(table.c.id).where(table.c.run_id == row.id).limit(1)).first() is not None:
                    return None
            stops = c.execute(select(Event.c.data).where(Event.c.run_id == row.id, Event.c.kind == "stop")
                              .order_by(Event.c.seq.desc())).first()
            for table in (Event, Receipt):
                c.execute(delete(table).where(table.c.run_id == row.id))
            c.execute(delete(Run).where(Run.c.id == row.id))
            return str((stops.data if stops is not None else {}).get("reason", "no reason recorded"))

        return self._write(discard)

    def get_run(self, name: str) -> RunInfo | None:
        """The run named ``name``, or None."""
        row = self._read(lambda c: c.execute(_RUN_COLUMNS.where(Run.c.name == name)).first())
        return None if row is None else _run_info(row)

    def list_runs(self) -> list[RunInfo]:
        """All runs, oldest first."""
        return [_run_info(r) for r in self._read(lambda c: c.execute(_RUN_COLUMNS.order_by(Run.c.id)).all())]

    def set_run_status(self, run_id: int, status: str) -> None:
        """Set a run's status; any status but 'running' stamps finished_at, 'running' (a resume) clears it."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        finished_at = None if status == "running" else utcnow()

        def set_status(c: Connection) -> None:
            done = c.execute(update(Run).where(Run.c.id == run_id).values(status=status, finished_at=finished_at))
            if done.rowcount == 0:
                raise no_run(run_id, self.url)

        self._write(set_status)

    def claim_run(self, run_id: int) -> None:
        """Make this process the run's holder (db/holder.py), or raise a StoreError naming the live holder and
        how to proceed; the check and the claim are one transaction, so of two claimants one wins."""
        host, pid = this_host(), os.getpid()

        def claim(c: Connection) -> None:
            row = c.execute(select(Run.c.name, *_HOLDER_COLUMNS).where(Run.c.id == run_id).with_for_update()).first()
            if row is None:
                raise no_run(run_id, self.url)
            now, holder = utcnow(), _holder(row)
            if holder is not None and holder.is_alive(now):
                raise StoreError(
                    f"run {row.name} is being searched by {holder.describe(now)}; a second process would spend its "
                    f"budget twice\n  fix: let it finish, or stop it (Ctrl-C where it runs, or `kill {holder.pid}` "
                    f"on {holder.host}) and resume then; a killed process frees the run at once on its own host, "
                    f"and {STALE_AFTER_S:.0f} s after its last heartbeat anywhere else")
            c.execute(update(Run).where(Run.c.id == run_id).values(holder_host=host, holder_pid=pid,
                                                                   heartbeat_at=now))

        self._write(claim)

    def refresh_claim(self, run_id: int) -> bool:
        """Refresh this process's heartbeat on the run; False when another process has taken the run over."""
        return bool(self._write(lambda c: c.execute(update(Run).where(Run.c.id == run_id, *_held_here()).values(
            heartbeat_at=utcnow())).rowcount))

    def release_run(self, run_id: int) -> None:
        """Give up this process's claim on the run (a claim another process took over stays theirs)."""
        self._write(lambda c: c.execute(update(Run).where(Run.c.id == run_id, *_held_here()).values(
            holder_host=None, holder_pid=None, heartbeat_at=None)))

    def run_holder(self, run_id: int) -> RunHolder | None:
        """The process that claimed the run and has not released it (alive or not), or None."""
        row = self._read(lambda c: c.execute(select(*_HOLDER_COLUMNS).where(Run.c.id == run_id)).first())
        return None if row is None else _holder(row)

    # ----------------------------------------------------------------------------------------------- writes

    def record_candidate(
        self,
        run_id: int,
        *,
        proposal: NewProposal | None = None,
        program: NewProgram | None = None,
        evaluations: Sequence[NewEvaluation] = (),
    ) -> RecordedCandidate:
        """Record one finished candidate in one transaction; its proposal and program share one new seq."""
        candidate = NewCandidate(proposal=proposal, program=program, evaluations=tuple(evaluations))
        return self.record_candidates(run_id, [candidate])[0]

    def record_candidates(self, run_id: int, candidates: Sequence[NewCandidate]) -> list[RecordedCandidate]:
        """Record several candidates in one transaction (seeds, imported human programs) with consecutive seqs."""
        if not candidates:
            return []

        token = uuid.uuid4().hex
        tries = 0

        def record(c: Connection) -> list[RecordedCandidate]:
            nonlocal tries
            tries += 1
            if tries > 1:  # the last try may have committed with its acknowledgement lost: never record twice
                earlier = recorded_by_receipt(c, token)
                if earlier is not None:
                    return earlier
            first = reserve_seqs(c, run_id, len(candidates), self.url)
            recorded = insert_candidates(c, run_id, first, candidates)
            c.execute(insert(Receipt), {"token": token, "run_id": run_id, "first_seq": first,  # as parameters: see
                                        "count": len(candidates)})  # writes._insert_returning_ids
            return recorded

        return self._write(record)

    def add_evaluation(
        self, program_id: int, evaluation: NewEvaluation, held_out_score: float | None = None
    ) -> int:
        """Record a later evaluation and return its id; a held-out one also sets the program's held_out_score
        (``held_out_score`` if given, else the evaluation's score) in the same transaction."""
        if evaluation.kind != "held_out" and held_out_score is not None:
            raise ValueError("held_out_score goes with a 'held_out' evaluation, not a 'train' one")
        if evaluation.kind == "held_out" and held_out_score is None:
            held_out_score = evaluation.score

        def add(c: Connection) -> int:
            if evaluation.kind == "held_out":
                done = c.execute(
                    update(Program).where(Program.c.id == program_id).values(held_out_score=held_out_score)
                )
                if done.rowcount == 0:
                    raise _no_program([program_id], self.url)
            row = evaluation_row(program_id, evaluation, utcnow())
            return inserted_id(c.execute(insert(Evaluation).values(row)))

        return self._write(add)

    def set_run_config(self, run_id: int, config: Mapping[str, Any]) -> None:
        """Replace a run's stored config (a resume that raised the budget), so it shows what the run now does."""

        def update_config(c: Connection) -> None:
            done = c.execute(update(Run).where(Run.c.id == run_id).values(config=dict(config)))
            if done.rowcount == 0:
                raise no_run(run_id, self.url)

        self._write(update_config)

    def events(self, run_id: int, kind: str) -> list[EventInfo]:
        """The run's events of one kind, in order."""
        query = _EVENT_COLUMNS.where(Event.c.run_id == run_id, Event.c.kind == kind).order_by(Event.c.seq)
        return [_event_info(r) for r in self._read(lambda c: c.execute(query).all())]

    def events_after(self, run_id: int, after_seq: int, kinds: Sequence[str]) -> list[EventInfo]:
        """The run's events of these kinds recorded after a place in its history, in order (through the (run, seq)
        index, so a running search can poll for a person's actions cheaply)."""
        query = _EVENT_COLUMNS.where(Event.c.run_id == run_id, Event.c.seq > after_seq,
                                     Event.c.kind.in_(list(kinds))).order_by(Event.c.seq)
        return [_event_info(r) for r in self._read(lambda c: c.execute(query).all())]

    def last_activity(self, run_id: int, before_seq: int | None = None) -> datetime | None:
        """When the search last recorded a program or a proposal (before a place in its history, if given); None
        if never. A person's program, added while the run waited, is not the search's activity. Found through the
        (run, seq) index: the latest record is the one with the highest seq."""

        def latest(query: Select[datetime]) -> datetime | None:
            return self._read(lambda c: c.execute(query).scalar())

        times = []
        for model in (Program, Proposal):
            query = select(model.c.created_at).where(model.c.run_id == run_id)
            if before_seq is not None:
                query = query.where(model.c.seq < before_seq)
            if model is Program:
                query = query.where(Program.c.origin != "human")
            times.append(latest(query.order_by(model.c.seq.desc()).limit(1)))
        found = [as_utc(t) for t in times if t is not None]
        return max(found) if found else None

    def record_event(self, run_id: int, kind: str, data: Mapping[str, Any]) -> int:
        """Record an event (reset, stop, resume, ...) and return its seq in the run's history."""
        if not kind or kind == ProgramSummary.kind:
            raise ValueError(f"an event needs a kind other than {ProgramSummary.kind!r}, e.g. 'reset'")

        def record(c: Connection) -> int:
            seq = reserve_seqs(c, run_id, 1, self.url)
            c.execute(insert(Event).values(run_id=run_id, seq=seq, kind=kind, data=dict(data), created_at=utcnow()))
            return seq

        return self._write(record)

    def reject_program(self, program_id: int, *, by: str, why: str) -> ProgramInfo:
        """Mark a program as rejected by a person (who, why, now) and return it; once only."""
        if not by.strip() or not why.strip():
            raise ValueError("a rejection records who rejected the program and why: give both")

        def reject(c: Connection) -> None:
            done = c.execute(
                update(Program)
                .where(Program.c.id == program_id, Program.c.rejected_at.is_(None))
                .values(rejected_by=by, rejected_reason=why, rejected_at=utcnow())
            )
            if done.rowcount == 1:
                return
            row = c.execute(select(Program.c.rejected_by, Program.c.rejected_reason).where(Program.c.id == program_id))
            earlier = row.first()
            if earlier is None:
                raise _no_program([program_id], self.url)
            raise StoreError(f"program {program_id} was already rejected by {earlier[0]}: {earlier[1]}")

        self._write(reject)
        return self.get_program(program_id)

    # ------------------------------------------------------------------------------------------------ reads

    def find_by_hash(self, run_id: int, code_hash: str) -> int | None:
        """Id of the first non-duplicate program of the run with this normalised-code hash, or None."""
        query = (
            select(Program.c.id)
            .where(Program.c.run_id == run_id, Program.c.code_hash == code_hash, Program.c.status != "duplicate")
            .order_by(Program.c.seq)
            .limit(1)
        )
        return self._read(lambda c: c.execute(query).scalar_one_or_none())

    def code_hashes(self, run_id: int) -> list[tuple[str, int]]:
        """(normalised-code hash, program id) of the run's non-duplicate programs in seq order: a resumed run's
        dedupe index, read once instead of a query per candidate."""
        query = (select(Program.c.code_hash, Program.c.id)
                 .where(Program.c.run_id == run_id, Program.c.status != "duplicate").order_by(Program.c.seq))
        return [(digest, program_id) for digest, program_id in self._read(lambda c: c.execute(query).all())]

    def get_program(self, program_id: int) -> ProgramInfo:
        """The program with this id; StoreError if there is none."""
        return self.get_programs([program_id])[0]

    def get_programs(self, ids: Sequence[int]) -> list[ProgramInfo]:
        """The programs with these ids, in the order given; StoreError if any is missing."""
        wanted = list(ids)
        if not wanted:
            return []
        rows = self._read(lambda c: c.execute(_PROGRAM_COLUMNS.where(Program.c.id.in_(set(wanted)))).all())
        by_id = {row.id: row for row in rows}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise _no_program(missing, self.url)
        return [_program_info(by_id[i]) for i in wanted]

    def best_programs(self, run_id: int, n: int, *, maximize: bool) -> list[ProgramInfo]:
        """The ``n`` best programs of status 'ok' that no person rejected, best first; ties go to the earlier."""
        order = Program.c.score.desc() if maximize else Program.c.score.asc()
        query = (
            _PROGRAM_COLUMNS.where(Program.c.run_id == run_id, Program.c.status == "ok", Program.c.score.is_not(None),
                                   Program.c.rejected_at.is_(None))
            .order_by(order, Program.c.seq)
            .limit(n)
        )
        return [_program_info(r) for r in self._read(lambda c: c.execute(query).all())]

    def held_out_statuses(self, run_id: int, ids: Iterable[int] | None = None) -> dict[int, str]:
        """Per program of the run that was evaluated on the held-out inputs, the status of its latest such
        evaluation ('ok', or how it failed: a failure must show wherever the program does). ``ids`` asks about
        those programs only (a listing of a few), through each one's evaluations instead of the whole run's."""
        query = (select(Evaluation.c.program_id, Evaluation.c.status)
                 .join(Program, Program.c.id == Evaluation.c.program_id)
                 .where(Program.c.run_id == run_id, Evaluation.c.kind == "held_out")
                 .order_by(Evaluation.c.id))
        if ids is not None:
            wanted = set(ids)
            if not wanted:
                return {}
            query = query.where(Evaluation.c.program_id.in_(wanted))
        return {int(pid): str(status) for pid, status in self._read(lambda c: c.execute(query).all())}

    def evaluations(self, program_id: int) -> list[EvaluationInfo]:
        """All evaluations of a program, in the order they were recorded."""
        query = select(*Evaluation.c).where(Evaluation.c.program_id == program_id).order_by(Evaluation.c.id)
        return [_evaluation_info(r) for r in self._read(lambda c: c.execute(query).all())]

    def get_proposal(self, proposal_id: int) -> ProposalInfo:
        """The proposal with this id; StoreError if there is none."""
        row = self._read(lambda c: c.execute(_PROPOSAL_COLUMNS.where(Proposal.c.id == proposal_id)).first())
        if row is None:
            raise StoreError(f"no proposal with id {proposal_id} in {self.url}; take it from a program's proposal_id")
        return _proposal_info(row)

    def proposals(self, run_id: int) -> list[ProposalInfo]:
        """All proposals of a run, in seq order, prompts and responses included."""
        query = _PROPOSAL_COLUMNS.where(Proposal.c.run_id == run_id).order_by(Proposal.c.seq)
        return [_proposal_info(r) for r in self._read(lambda c: c.execute(query).all())]

    def proposal_failures(self, run_id: int, limit: int = 3) -> list[tuple[str, int]]:
        """The commonest reasons the run's proposals gave no program (a failed call, an answer that did not apply),
        most frequent first, with their counts: `show` counts such proposals and should say why."""
        count = func.count().label("n")
        query = (select(Proposal.c.error, count)
                 .where(Proposal.c.run_id == run_id, Proposal.c.applied.is_(False), Proposal.c.error.is_not(None))
                 .group_by(Proposal.c.error).order_by(count.desc(), Proposal.c.error).limit(limit))
        return [(str(error), int(n)) for error, n in self._read(lambda c: c.execute(query).all())]

    def proposal_outcomes(self, run_id: int) -> list[ProposalOutcome]:
        """How each proposal ended (its error, or its program's status, score and error), in seq order, without
        prompts, responses or code."""
        query = (select(Proposal.c.island, Proposal.c.error, Program.c.id, Program.c.status, Program.c.score,
                        Program.c.origin, Program.c.error)
                 .outerjoin(Program, and_(Program.c.run_id == run_id, Program.c.proposal_id == Proposal.c.id))
                 .where(Proposal.c.run_id == run_id).order_by(Proposal.c.seq))
        return [ProposalOutcome(*row) for row in self._read(lambda c: c.execute(query).all())]

    def history(self, run_id: int) -> list[HistoryItem]:
        """The run's programs (without code) and events in seq order, for rebuilding island state on resume."""
        programs = select(
            Program.c.id, Program.c.seq, Program.c.island, Program.c.origin, Program.c.status, Program.c.score,
            Program.c.scores, Program.c.code_length, Program.c.rejected_at.is_not(None), Program.c.behaviour,
            Program.c.parent_ids, Program.c.metrics,
        ).where(Program.c.run_id == run_id).order_by(Program.c.seq)
        events = _EVENT_COLUMNS.where(Event.c.run_id == run_id).order_by(Event.c.seq)

        def read(c: Connection) -> tuple[Sequence[Row], Sequence[Row]]:
            # Both in one read transaction, so they are one consistent snapshot.
            return c.execute(programs).all(), c.execute(events).all()

        program_rows, event_rows = self._read(read)
        summaries = [ProgramSummary(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), r[9],
                                    tuple(r[10] or ()), r[11] or {}) for r in program_rows]
        infos = [_event_info(r) for r in event_rows]
        return list(heapq.merge(summaries, infos, key=attrgetter("seq")))

    def proposal_count(self, run_id: int) -> int:
        """Proposals made so far (applied or not), which is what a run's budget counts."""
        query = select(func.count()).select_from(Proposal).where(Proposal.c.run_id == run_id)
        return self._read(lambda c: c.execute(query).scalar_one())

    def attempts(self, run_id: int) -> int:
        """Candidates recorded so far, which is what the attempt budget counts: every proposal (applied or
        failed) plus every program recorded without one (seed and human programs)."""
        proposals = select(func.count()).select_from(Proposal).where(Proposal.c.run_id == run_id)
        unproposed = select(func.count()).select_from(Program).where(
            Program.c.run_id == run_id, Program.c.proposal_id.is_(None)
        )
        return self._read(lambda c: c.execute(proposals).scalar_one() + c.execute(unproposed).scalar_one())

    def prompts(self, run_id: int) -> int:
        """Prompts recorded so far: every proposal but the second and later answers of a prompt answered several
        times at once (their details say `answer` >= 1), so a resume numbers its next prompt as the run would."""
        later = func.coalesce(Proposal.c.details["answer"].as_integer(), 0) > 0
        query = select(func.count()).select_from(Proposal).where(Proposal.c.run_id == run_id, ~later)
        return int(self._read(lambda c: c.execute(query).scalar_one()))

    def total_cost(self, run_id: int) -> float:
        """Money spent on the run's proposals and reviews (judgements) so far, in USD."""
        queries = [select(func.coalesce(func.sum(model.c.cost), 0.0)).where(model.c.run_id == run_id)
                   for model in (Proposal, Judgement)]
        return float(self._read(lambda c: sum(c.execute(query).scalar_one() for query in queries)))

    def llm_spend(self, run_id: int) -> Spend:
        """LLM calls made for the run, proposals and reviews (judgements) alike (cache and replay hits excluded:
        they made none, nor did the later answers of a call that gave several), their tokens and cost, and how many
        proposals the offline proposer answered instead."""
        queries = [select(
            func.coalesce(func.sum(case((model.c.attempts > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(model.c.prompt_tokens + model.c.completion_tokens), 0),
            func.coalesce(func.sum(model.c.cost), 0.0),
        ).where(model.c.run_id == run_id, model.c.model != "offline")
            for model in (Proposal, Judgement)]
        offline = select(func.count()).select_from(Proposal).where(Proposal.c.run_id == run_id,
                                                                   Proposal.c.model == "offline")
        rows, offline_count = self._read(lambda c: ([c.execute(query).one() for query in queries],
                                                    int(c.execute(offline).scalar_one())))
        return Spend(calls=sum(int(r[0]) for r in rows), tokens=sum(int(r[1]) for r in rows),
                     cost=sum(float(r[2]) for r in rows), offline=offline_count)

    def gaming_programs(self, run_id: int) -> set[int]:
        """The run's programs the reviewer model judged to game the score (without reading the calls' text)."""
        query = select(Judgement.c.program_id).where(Judgement.c.run_id == run_id, Judgement.c.gaming.is_(True))
        return {int(pid) for pid in self._read(lambda c: c.execute(query).scalars().all())}

    def judgements(self, run_id: int, program_ids: Iterable[int] | None = None) -> list[JudgementInfo]:
        """The reviewer model's calls about the run's programs (of those programs only, if given), in the order
        they were recorded."""
        query = select(*Judgement.c).where(Judgement.c.run_id == run_id).order_by(Judgement.c.id)
        if program_ids is not None:
            query = query.where(Judgement.c.program_id.in_(set(program_ids)))
        return [_judgement_info(r) for r in self._read(lambda c: c.execute(query).all())]

    def status_counts(self, run_id: int, *, origins: Sequence[str] | None = None) -> dict[str, int]:
        """Number of the run's programs per status (failed proposals have no program and are not counted); with
        ``origins``, of the programs of those origins only."""
        if origins is None:
            query = select(Program.c.status, func.count()).where(Program.c.run_id == run_id).group_by(Program.c.status)
            return {status: count for status, count in self._read(lambda c: c.execute(query).all())}
        # Grouped by origin too and kept here, so the database reads its (run, origin, status) index alone.
        by_origin = (select(Program.c.origin, Program.c.status, func.count()).where(Program.c.run_id == run_id)
                     .group_by(Program.c.origin, Program.c.status))
        counts: dict[str, int] = {}
        for origin, status, count in self._read(lambda c: c.execute(by_origin).all()):
            if origin in origins:
                counts[status] = counts.get(status, 0) + count
        return counts

    def program_briefs(self, run_id: int, *, origin: str | None = None, ids: Iterable[int] | None = None,
                       rejected: bool | None = None, after_seq: int | None = None) -> list[ProgramBrief]:
        """The run's programs without their code, in seq order: for curves, lineages and listings. ``origin``,
        ``ids``, ``rejected`` and ``after_seq`` keep only those programs, so a command that needs a few (or a live
        page that needs the new ones) never reads them all."""
        query = select(
            Program.c.id, Program.c.seq, Program.c.island, Program.c.parent_ids, Program.c.origin, Program.c.status,
            Program.c.score, Program.c.held_out_score, Program.c.proposal_id, Program.c.duplicate_of,
            Program.c.code_length, Program.c.created_at, Program.c.rejected_at.is_not(None).label("rejected"),
            Program.c.mate_id,
        ).where(Program.c.run_id == run_id)
        # Those of one origin, some ids or the rejected are few: found through their own index and put in order
        # here, since ordering by seq in SQL would make the database walk the whole run in seq order instead.
        few = origin is not None or ids is not None or rejected is True
        if not few:
            query = query.order_by(Program.c.seq)
        if origin is not None:
            query = query.where(Program.c.origin == origin)
        if ids is not None:
            query = query.where(Program.c.id.in_(set(ids)))
        if rejected is not None:
            query = query.where(Program.c.rejected_at.is_not(None) if rejected else Program.c.rejected_at.is_(None))
        if after_seq is not None:
            query = query.where(Program.c.seq > after_seq)
        briefs = [
            ProgramBrief(row.id, row.seq, row.island, tuple(row.parent_ids), row.origin, row.status, row.score,
                         row.held_out_score, row.proposal_id, row.duplicate_of, row.code_length,
                         as_utc(row.created_at), bool(row.rejected), row.mate_id)
            for row in self._read(lambda c: c.execute(query).all())
        ]
        return sorted(briefs, key=attrgetter("seq")) if few else briefs

    def program_metrics(self, run_id: int) -> dict[int, dict[str, float]]:
        """The named metrics of the run's valid programs by program id, in one query: a plot of every metric
        needs them all but none of the code. Programs scored by one number (no metrics) are left out."""
        query = select(Program.c.id, Program.c.metrics).where(Program.c.run_id == run_id, Program.c.status == "ok")
        return {int(pid): dict(metrics) for pid, metrics in self._read(lambda c: c.execute(query).all()) if metrics}

    def program_marks(self, run_id: int) -> tuple[frozenset[int], dict[int, float]]:
        """The run's programs a person rejected, and each held-out score by program: both change after a program
        is recorded, so a cache of the run's programs compares them to know it went stale. Read from two indexes,
        so the cost is the number of such programs, not the run's length."""
        rejected = select(Program.c.id).where(Program.c.run_id == run_id, Program.c.rejected_at.is_not(None))
        held = select(Program.c.id, Program.c.held_out_score).where(Program.c.run_id == run_id,
                                                                     Program.c.held_out_score.is_not(None))

        def read(c: Connection) -> tuple[frozenset[int], dict[int, float]]:
            return (frozenset(int(i) for i, in c.execute(rejected)),
                    {int(i): float(score) for i, score in c.execute(held)})

        return self._read(read)

    def primary_ancestors(self, program_ids: Iterable[int], *, limit: int) -> dict[int, tuple[int, ...]]:
        """The parent ids of the given programs and of their ancestors through each primary parent (the last), at
        most ``limit`` programs (the latest, so the nearest ancestors): lineages read by the database in one
        recursive query, through the programs on them alone."""
        wanted = sorted(set(program_ids))
        if not wanted:
            return {}

        def walk(c: Connection) -> dict[int, tuple[int, ...]]:
            last = _last_parent(c.dialect.name)
            start = select(Program.c.id, last(Program.c.parent_ids).label("parent"))
            chain = start.where(Program.c.id.in_(wanted)).cte("chain", recursive=True)
            up = Program.alias("up")
            # UNION, not UNION ALL: lineages that meet are read once, and a loop (never recorded) would end.
            chain = chain.union(select(up.c.id, last(up.c.parent_ids)).join(chain, up.c.id == chain.c.parent))
            query = (select(Program.c.id, Program.c.parent_ids).join(chain, chain.c.id == Program.c.id)
                     .order_by(Program.c.id.desc()).limit(limit))  # a parent is older: the nearest come first
            return {int(pid): tuple(parents) for pid, parents in c.execute(query).all()}

        return self._read(walk)

    def island_bests(self, run_id: int, *, maximize: bool) -> list[tuple[int, int, float, int, int]]:
        """(island, valid programs, best score, best program's id and seq) per island that has a valid program no
        person rejected (the earliest of equal bests); from the (run, island, status, score) index."""
        valid = (Program.c.run_id == run_id, Program.c.status == "ok", Program.c.score.is_not(None))
        counts = (select(Program.c.island, func.count()).where(*valid).group_by(Program.c.island))
        # The rejected, through their own index (few), then counted here among the valid.
        # Only the id from the rejected index (with more columns the database may pick an index that holds them
        # all and read the whole run), then the few rows themselves.
        rejected = select(Program.c.id, Program.c.island, Program.c.status, Program.c.score).where(
            Program.c.id.in_(select(Program.c.id).where(Program.c.run_id == run_id,
                                                         Program.c.rejected_at.is_not(None)).scalar_subquery()))
        order = Program.c.score.desc() if maximize else Program.c.score.asc()

        def read(c: Connection) -> list[tuple[int, int, float, int, int]]:
            out: dict[int, int] = {}
            skip = set()
            for pid, island, status, score in c.execute(rejected).all():
                skip.add(int(pid))
                if status == "ok" and score is not None:
                    out[int(island)] = out.get(int(island), 0) + 1
            rows = []
            for island, count in c.execute(counts).all():
                # The best few by score from the index, past any that a person rejected.
                top = c.execute(select(Program.c.score, Program.c.id, Program.c.seq)
                                .where(*valid, Program.c.island == island)
                                .order_by(order, Program.c.seq).limit(len(skip) + 1)).all()
                best = next((row for row in top if int(row[1]) not in skip), None)
                if best is not None:
                    rows.append((int(island), int(count) - out.get(int(island), 0), float(best[0]), int(best[1]),
                                 int(best[2])))
            return rows

        return self._read(read)

    def curve_rows(self, run_id: int, *, after_seq: int) -> Sequence[tuple[int, float | None, int]]:
        """(seq, score counted for the running best or None, island or -1 for a seed) of the run's evaluated
        programs recorded after ``after_seq``, in order; counted: valid and not rejected. One narrow index holds
        them all, and the rows come back as the driver gives them: a long run's curve reads 100,000 of them."""
        counted = case((and_(Program.c.status == "ok", Program.c.rejected_at.is_(None)), Program.c.score),
                       else_=None)
        island = case((Program.c.origin == "seed", -1), else_=Program.c.island)
        query = (select(Program.c.seq, counted, island)
                 .where(Program.c.run_id == run_id, Program.c.seq > after_seq, Program.c.status != "duplicate")
                 .order_by(Program.c.seq))
        return self._read(lambda c: c.execute(query).all())

    def curve_points(self, run_id: int, seqs: Sequence[int]) -> list[tuple[int, int, float | None, str, bool,
                                                                           datetime, int]]:
        """(seq, id, score, status, rejected, created_at, island) of the run's programs with these seqs, in seq
        order."""
        query = select(Program.c.seq, Program.c.id, Program.c.score, Program.c.status,
                       Program.c.rejected_at.is_not(None), Program.c.created_at, Program.c.island)
        rows: list[Row] = []

        def read(c: Connection) -> None:
            for start in range(0, len(seqs), _IN_CHUNK):
                chunk = list(seqs[start:start + _IN_CHUNK])
                rows.extend(c.execute(query.where(Program.c.run_id == run_id, Program.c.seq.in_(chunk))).all())

        self._read(read)
        return sorted((int(r[0]), int(r[1]), r[2], str(r[3]), bool(r[4]), as_utc(r[5]), int(r[6])) for r in rows)

    def model_totals(self, run_id: int) -> list[ModelTotals]:
        """Per model: its proposals, real calls, applied answers, valid and improving programs, tokens and cost;
        summed in one query, so a long run's prompts are never read."""
        return self.model_totals_since(run_id, after_seq=-1)[1]

    def model_totals_since(self, run_id: int, *, after_seq: int) -> tuple[int, list[ModelTotals]]:
        """The per-model sums of the proposals recorded after ``after_seq`` (a recorded proposal never changes, so
        sums kept from before add up), with the seq they reach; through the (run, seq) index."""
        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        last = select(func.max(Proposal.c.seq)).where(Proposal.c.run_id == run_id)

        def read(c: Connection) -> tuple[int, list[ModelTotals]]:
            upto = c.execute(last).scalar()
            if upto is None or upto <= after_seq:
                return after_seq, []
            query = (
                select(Proposal.c.model, func.count(),
                       count(and_(Proposal.c.attempts > 0, Proposal.c.model != "offline")), count(Proposal.c.applied),
                       count(Program.c.status == "ok"), count(Proposal.c.details["improved"].as_boolean()),
                       func.coalesce(func.sum(Proposal.c.prompt_tokens + Proposal.c.completion_tokens), 0),
                       func.coalesce(func.sum(Proposal.c.cost), 0.0))
                .outerjoin(Program, and_(Program.c.run_id == run_id, Program.c.proposal_id == Proposal.c.id))
                .where(Proposal.c.run_id == run_id, Proposal.c.seq > after_seq, Proposal.c.seq <= upto)
                .group_by(Proposal.c.model)
            )
            return int(upto), [ModelTotals(model, int(n), int(calls), int(applied), int(valid), int(improved),
                                           int(tokens), float(cost))
                               for model, n, calls, applied, valid, improved, tokens, cost in c.execute(query).all()]

        return self._read(read)

    # ------------------------------------------------------------------------------------------- internals

    def _write(self, work: Callable[[Connection], T]) -> T:
        if self._checkpointer is None and self._engine.dialect.name == "sqlite" and self._lock is None:
            self._start_checkpointer()
        return self._retrying(work, write=True)

    def _start_checkpointer(self) -> None:
        # Started by the first write, so a store that only reads (evoforge show, a notebook) runs no thread.
        with self._checkpointer_lock:
            if self._checkpointer is None:
                self._checkpointer = WalCheckpointer(self._engine)

    def _read(self, work: Callable[[Connection], T]) -> T:
        return self._retrying(work, write=False)

    def _retrying(self, work: Callable[[Connection], T], *, write: bool) -> T:
        # Only locks, timeouts and dropped connections are retried, with backoff, for at most patience_s; the
        # transaction is rerun whole, so a retry never writes half a candidate twice. Meanwhile the caller (the
        # controller, the only writer) waits, holding its finished results, so an outage stalls the run instead of
        # losing them.
        started: float | None = None
        delay = 0.05
        while True:
            try:
                with transaction(self._engine, self._lock, write=write) as connection:
                    result = work(connection)
            except StoreError as err:
                if not err.transient:
                    raise
                now = time.monotonic()
                started = now if started is None else started
                if now - started >= self._patience_s:
                    raise StoreError(
                        f"{err}\n  gave up after retrying for {self._patience_s:g} s; what was committed is kept: "
                        "continue with `evoforge resume NAME` once the database is back, or give a longer "
                        "--db-patience",
                        transient=True,
                    ) from err
                if delay >= _QUIET_DELAY_S:  # short lock waits are routine; a longer outage is worth a line
                    self._notify(f"database {self.url} is not answering ({_first_line(err)}); retrying for up to "
                                 f"{self._patience_s - (now - started):.0f} s more (--db-patience)")
                time.sleep(min(delay, self._patience_s - (now - started)))
                delay = min(2 * delay, _MAX_DELAY_S)
                continue
            if delay > _QUIET_DELAY_S:
                self._notify(f"database {self.url} is answering again; continuing")
            return result


# ------------------------------------------------------------------------------------------------- helpers


def _last_parent(dialect: str) -> Callable[[Any], Any]:
    """SQL for the last element of a JSON array of ids (a program's primary parent), or NULL when it is empty."""
    if dialect == "postgresql":
        return lambda parents: cast(parents.op("->>")(literal(-1)), Integer)
    return lambda parents: func.json_extract(parents, literal("$[#-1]"))

_RUN_COLUMNS = select(*(Run.c[name] for name in RunInfo.__dataclass_fields__))
_PROGRAM_COLUMNS = select(*Program.c)
_PROPOSAL_COLUMNS = select(*(Proposal.c[name] for name in ProposalInfo.__dataclass_fields__))
_EVENT_COLUMNS = select(Event.c.id, Event.c.seq, Event.c.kind, Event.c.data, Event.c.created_at)


_HOLDER_COLUMNS = (Run.c.holder_host, Run.c.holder_pid, Run.c.heartbeat_at)


def _held_here() -> tuple[Any, ...]:
    """The conditions that a run is held by this process."""
    return Run.c.holder_host == this_host(), Run.c.holder_pid == os.getpid()


def _holder(row: Row) -> RunHolder | None:
    m = row._mapping
    if m["holder_host"] is None or m["heartbeat_at"] is None:
        return None
    return RunHolder(m["holder_host"], int(m["holder_pid"]), as_utc(m["heartbeat_at"]))


def _run_info(row: Row) -> RunInfo:
    m = row._mapping
    return RunInfo(**{**m, "created_at": as_utc(m["created_at"]), "finished_at": as_utc(m["finished_at"])})


def _program_info(row: Row) -> ProgramInfo:
    m = row._mapping
    return ProgramInfo(**{**m, "parent_ids": tuple(m["parent_ids"]), "created_at": as_utc(m["created_at"]),
                          "rejected_at": as_utc(m["rejected_at"]), "metrics": m["metrics"] or {}})


def _proposal_info(row: Row) -> ProposalInfo:
    m = row._mapping
    return ProposalInfo(**{**m, "parent_ids": tuple(m["parent_ids"]), "created_at": as_utc(m["created_at"])})


def _evaluation_info(row: Row) -> EvaluationInfo:
    m = row._mapping
    return EvaluationInfo(**{**m, "created_at": as_utc(m["created_at"]), "metrics": m["metrics"] or {}})


def _judgement_info(row: Row) -> JudgementInfo:
    m = row._mapping
    return JudgementInfo(**{**m, "created_at": as_utc(m["created_at"]), "details": m["details"] or {}})


def _event_info(row: Row) -> EventInfo:
    return EventInfo(row.id, row.seq, row.kind, row.data, as_utc(row.created_at))


def _require_existing_file(url: str) -> None:
    """For SQLite files: refuse a path with no file, before connecting would create one."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        return  # open_engine explains a malformed URL
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not parsed.database.startswith("file:") and not Path(parsed.database).expanduser().exists():
        folder = missing_folder(url)
        raise StoreError(f"no evoforge database at {parsed.database}" + (f": {folder}" if folder else "")
                         + "; run a search first (evoforge run PROBLEM writes runs/evoforge.db), or pass --db with "
                         "the URL of an existing one")


def _to_log(message: str) -> None:
    log.warning("%s", message)


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:300]


def _installed_version() -> str:
    try:
        return metadata.version("evoforge")
    except metadata.PackageNotFoundError:
        return "unknown"


def _run_exists(name: str, url: str) -> StoreError:
    """Names the database it collided in: with several databases (EVOFORGE_DB, --db), 'DB' leaves the user guessing
    which one holds the run, and the resume command must name it too."""
    return StoreError(
        f"run '{name}' already exists in {url}; resume it with `evoforge resume {shlex.quote(name)} --db "
        f"{shlex.quote(url)}` or choose another name (--name)"
    )


def _no_program(ids: Iterable[int], where: str) -> StoreError:
    return StoreError(
        f"no program with id {', '.join(map(str, ids))} in {where}; "
        "list the programs of a run with `evoforge best RUN -n 20` or `evoforge show RUN`"
    )
