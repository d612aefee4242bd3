"""Contract tests of db.Store: each runs on SQLite and on PostgreSQL alike, through the ``db_url`` fixture
(tests/postgres_db.py). The PostgreSQL half needs EVOFORGE_TEST_POSTGRES_URL (.ci/run sets it) and says so when it
skips. Tests of what only SQLite has (its file, its write-ahead log, an in-memory database) come last."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from evoforge.db import (
    SCHEMA_VERSION,
    EventInfo,
    NewCandidate,
    NewEvaluation,
    NewProgram,
    NewProposal,
    ProgramSummary,
    Store,
    StoreError,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def file_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/evoforge.db"


@pytest.fixture
def store(db_url: str):
    with Store(db_url) as opened:
        yield opened


def make_run(store: Store, name: str = "capset-1"):
    return store.create_run(
        name=name,
        problem_name="cap_set",
        problem_path="/problems/cap_set.py",
        problem_source='"""Find large cap sets."""\n',
        problem_hash="sha256:abc",
        config={"seed": 7, "islands": {"count": 4}, "models": ["offline"]},
        seed=7,
        evoforge_version="0.1.0",
    )


def program(code: str = "def f():\n    return 1\n", *, origin: str = "seed", status: str = "ok", score=1.0, **kw):
    return NewProgram(
        island=kw.pop("island", 0),
        origin=origin,
        code=code,
        code_hash=kw.pop("code_hash", f"h:{code}"),
        status=status,
        score=score,
        scores=kw.pop("scores", {} if score is None else {"n8": score}),
        **kw,
    )


def proposal(**kw) -> NewProposal:
    fields = dict(island=0, model="offline", prompt='[{"role": "user", "content": "improve"}]', response="diff")
    return NewProposal(**{**fields, **kw})


def train(score: float = 1.0) -> NewEvaluation:
    return NewEvaluation(kind="train", status="ok", score=score, scores={"n8": score}, timings={"n8": 0.01})


# --------------------------------------------------------------------------------------------------- runs


def test_run_round_trip_and_status(store: Store) -> None:
    run = make_run(store)
    assert store.get_run("capset-1") == run
    assert store.get_run("nope") is None
    assert run.status == "running" and run.finished_at is None and run.created_at.tzinfo is not None
    assert run.config == {"seed": 7, "islands": {"count": 4}, "models": ["offline"]}
    assert run.problem_source.startswith('"""Find') and run.evoforge_version == "0.1.0"

    store.set_run_status(run.id, "stopped")
    stopped = store.get_run("capset-1")
    assert stopped.status == "stopped" and stopped.finished_at is not None
    store.set_run_status(run.id, "running")
    assert store.get_run("capset-1").finished_at is None
    make_run(store, "capset-2")
    assert [r.name for r in store.list_runs()] == ["capset-1", "capset-2"]
    with pytest.raises(ValueError, match="not one of"):
        store.set_run_status(run.id, "done")
    with pytest.raises(StoreError, match="no run with id 999"):
        store.set_run_status(999, "failed")


def test_run_name_conflict_says_how_to_resume(store: Store) -> None:
    make_run(store)
    with pytest.raises(StoreError) as info:
        make_run(store)
    assert str(info.value) == (
        f"run 'capset-1' already exists in {store.url}; resume it with `evoforge resume capset-1 --db {store.url}` "
        "or choose another name (--name)"
    )


def test_only_a_run_that_failed_before_recording_anything_is_discarded(store: Store) -> None:
    seedless = make_run(store, "seedless")
    store.record_event(seedless.id, "stop", {"reason": "the seed failed: ZeroDivisionError", "failed": True})
    assert store.discard_unstarted_run("seedless") is None  # still 'running': it may be alive
    store.set_run_status(seedless.id, "failed")
    kept = make_run(store, "kept")
    store.record_candidate(kept.id, proposal=None, program=program(), evaluations=[])
    store.set_run_status(kept.id, "failed")
    assert store.discard_unstarted_run("kept") is None and store.discard_unstarted_run("nosuch") is None
    assert store.discard_unstarted_run("seedless") == "the seed failed: ZeroDivisionError"
    assert store.get_run("seedless") is None and store.get_run("kept") is not None
    assert make_run(store, "seedless").name == "seedless"  # the name is free again


def test_config_must_be_plain_json(store: Store) -> None:
    with pytest.raises(StoreError, match="not plain JSON"):
        store.create_run(
            name="x", problem_name="p", problem_path="p", problem_source="", problem_hash="h",
            config={"limit": math.inf}, seed=0,
        )


# ---------------------------------------------------------------------------------------------- candidates


def test_candidate_round_trip(store: Store) -> None:
    run = make_run(store)
    seed = store.record_candidate(run.id, program=program(), evaluations=[train()])
    held_out = NewEvaluation(kind="held_out", status="ok", score=0.5, scores={"n9": 0.5}, compiled=True, node="n1")
    rec = store.record_candidate(
        run.id,
        proposal=proposal(parent_ids=[seed.program_id], prompt_tokens=10, completion_tokens=5, cost=0.002,
                          latency_s=1.5, model="openai/gpt-4o-mini"),
        program=program("def f():\n    return 2\n", origin="llm", score=2.0, parent_ids=[seed.program_id], island=0),
        evaluations=[train(2.0), held_out],
    )
    assert (seed.seq, rec.seq) == (0, 1) and seed.proposal_id is None

    got = store.get_program(rec.program_id)
    assert (got.proposal_id, got.seq, got.origin, got.score) == (rec.proposal_id, 1, "llm", 2.0)
    assert got.scores == {"n8": 2.0}
    assert got.parent_ids == (seed.program_id,) and got.code_length == len(got.code) and got.held_out_score == 0.5
    assert got.run_id == run.id and got.duplicate_of is None and got.error is None

    assert store.total_cost(run.id) == pytest.approx(0.002)

    [prop] = store.proposals(run.id)
    assert prop == store.get_proposal(rec.proposal_id)
    assert (prop.seq, prop.model, prop.applied) == (1, "openai/gpt-4o-mini", True)
    assert (prop.prompt_tokens, prop.completion_tokens, prop.cost, prop.latency_s) == (10, 5, 0.002, 1.5)
    assert prop.parent_ids == (seed.program_id,) and prop.response == "diff" and prop.error is None

    evals = store.evaluations(rec.program_id)
    assert [(e.kind, e.score, e.compiled, e.node) for e in evals] == [
        ("train", 2.0, None, None),
        ("held_out", 0.5, True, "n1"),
    ]
    assert evals[0].timings == {"n8": 0.01} and evals[1].scores == {"n9": 0.5}
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.score = 3.0  # type: ignore[misc]


def test_failed_proposal_has_no_program_and_counts_as_attempt(store: Store) -> None:
    run = make_run(store)
    store.record_candidate(run.id, program=program(origin="human"), evaluations=[train()])
    failed = store.record_candidate(run.id, proposal=proposal(response=None, error="Timeout after 60 s"))
    assert failed.program_id is None and failed.seq == 1
    [prop] = store.proposals(run.id)
    assert prop.applied is False and prop.error == "Timeout after 60 s" and prop.response is None
    store.record_candidate(run.id, proposal=proposal(), program=program("x = 1", origin="offline", status="error",
                                                                        score=None, error="SyntaxError"))
    assert store.attempts(run.id) == 3
    assert store.status_counts(run.id) == {"ok": 1, "error": 1}


def test_a_calls_later_answers_are_neither_prompts_nor_calls_but_their_tokens_and_cost_count(store: Store) -> None:
    run = make_run(store)
    several = {"asked": 3, "answers": 3}
    for answer, attempts in ((0, 2), (1, 0), (2, 0)):  # one call with three choices, retried once
        store.record_candidate(run.id, proposal=proposal(model="m", attempts=attempts, prompt_tokens=10,
                                                         completion_tokens=5, cost=0.25,
                                                         details={**several, "answer": answer}))
    store.record_candidate(run.id, proposal=proposal(model="m", prompt_tokens=30, completion_tokens=5, cost=0.5))
    store.record_candidate(run.id, proposal=proposal(model="m", attempts=0, details={"cache": "hit"}))
    assert store.attempts(run.id) == 5  # every answer counts against the budget
    assert store.prompts(run.id) == 3  # the call of three, the call of one, the cache hit
    spend = store.llm_spend(run.id)
    assert (spend.calls, spend.tokens, spend.cost) == (2, 3 * 15 + 35, 1.25)


def test_duplicate_lookup_by_hash(store: Store) -> None:
    run = make_run(store)
    other = make_run(store, "other")
    assert store.find_by_hash(run.id, "h:same") is None
    first = store.record_candidate(run.id, program=program("a", code_hash="h:same"), evaluations=[train()])
    store.record_candidate(other.id, program=program("a", code_hash="h:same"))
    dup = store.record_candidate(
        run.id,
        proposal=proposal(),
        program=program("a ", origin="offline", code_hash="h:same", status="duplicate", score=None,
                        duplicate_of=first.program_id),
    )
    assert store.find_by_hash(run.id, "h:same") == first.program_id
    assert store.get_program(dup.program_id).duplicate_of == first.program_id
    assert store.evaluations(dup.program_id) == []
    assert store.status_counts(run.id) == {"ok": 1, "duplicate": 1}


def test_redundant_fields_are_accepted_when_they_agree(store: Store) -> None:
    run = make_run(store)
    code = "def f():\n    return 3\n"
    held_out = NewEvaluation(kind="held_out", status="ok", score=0.75)
    rec = store.record_candidate(
        run.id,
        proposal=proposal(applied=True),
        program=program(code, origin="llm", code_length=len(code), held_out_score=0.75),
        evaluations=[train(), held_out],
    )
    got = store.get_program(rec.program_id)
    assert (got.code_length, got.held_out_score) == (len(code), 0.75)
    store.record_candidate(run.id, proposal=proposal(applied=False, error="no patch"))
    assert [p.applied for p in store.proposals(run.id)] == [True, False]
    assert store.total_cost(make_run(store, "free").id) == 0.0


def test_add_evaluation_later_sets_held_out_score(store: Store) -> None:
    run = make_run(store)
    rec = store.record_candidate(run.id, program=program(), evaluations=[train()])
    assert store.get_program(rec.program_id).held_out_score is None
    store.add_evaluation(rec.program_id, NewEvaluation(kind="held_out", status="ok", score=0.25, scores={"n9": 0.25}))
    assert store.get_program(rec.program_id).held_out_score == 0.25
    store.add_evaluation(rec.program_id, NewEvaluation(kind="held_out", status="timeout", error="slow"), 0.1)
    assert store.get_program(rec.program_id).held_out_score == 0.1
    assert [e.status for e in store.evaluations(rec.program_id)] == ["ok", "ok", "timeout"]
    with pytest.raises(StoreError, match="no program with id 12345"):
        store.add_evaluation(12345, NewEvaluation(kind="held_out", status="ok", score=1.0))


def test_failed_write_leaves_nothing_behind(store: Store) -> None:
    run = make_run(store)
    bad = program("b", origin="offline", status="duplicate", score=None, duplicate_of=4242)
    with pytest.raises(StoreError, match="not retried") as info:
        store.record_candidate(run.id, proposal=proposal(), program=bad)
    assert info.value.transient is False
    assert store.proposals(run.id) == [] and store.history(run.id) == [] and store.attempts(run.id) == 0
    assert store.record_event(run.id, "resume", {}) == 0  # the failed transaction's seq was given back


def test_unknown_run_and_programs_are_clear_errors(store: Store) -> None:
    with pytest.raises(StoreError, match="no run with id 77"):
        store.record_candidate(77, program=program())
    with pytest.raises(StoreError, match="no run with id 77"):
        store.record_event(77, "reset", {})
    run = make_run(store)
    a = store.record_candidate(run.id, program=program("a")).program_id
    b = store.record_candidate(run.id, program=program("b")).program_id
    assert [p.id for p in store.get_programs([b, a, b])] == [b, a, b]
    assert store.get_programs([]) == []
    with pytest.raises(StoreError, match="no program with id 555"):
        store.get_programs([a, 555])
    with pytest.raises(StoreError, match="no proposal with id 9"):
        store.get_proposal(9)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: program(score=math.nan), "non-finite"),
        (lambda: program(scores={"n8": math.inf}), "non-finite"),
        (lambda: program(status="great"), "not one of"),
        (lambda: program(origin="alien"), "not one of"),
        (lambda: program(status="duplicate"), "duplicate_of"),
        (lambda: NewCandidate(), "needs a proposal"),
        (lambda: NewCandidate(program=program(origin="llm")), "needs the proposal"),
        (lambda: NewCandidate(proposal=proposal(), program=program(origin="seed")), "has no proposal"),
        (lambda: NewCandidate(proposal=proposal(), evaluations=[train()]), "need a program"),
        (lambda: NewEvaluation(kind="test", status="ok"), "not one of"),
        (lambda: proposal(cost=-1.0), "cost"),
        (lambda: proposal(model=""), "names its model"),
        (lambda: program(code_length=3), "len\\(code\\)"),
        (lambda: NewCandidate(proposal=proposal(applied=True)), "pass the program"),
        (lambda: NewCandidate(proposal=proposal(applied=False), program=program(origin="llm")), "applied=True"),
        (lambda: NewCandidate(program=program(held_out_score=0.5)), "held-out evaluation"),
        (lambda: NewCandidate(program=program(), evaluations=[NewEvaluation(kind="held_out", status="ok")] * 2),
         "at most one"),
        (lambda: proposal(prompt=[{"role": "user", "content": "hi"}]), "JSON text"),
    ],
)
def test_bad_records_fail_where_they_are_built(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# ------------------------------------------------------------------------------------------------- queries


def test_best_programs_maximise_and_minimise(store: Store) -> None:
    run = make_run(store)
    ids = {}
    for name, score, status in [("a", 3.0, "ok"), ("b", 1.0, "ok"), ("c", 9.0, "invalid"), ("d", 3.0, "ok"),
                                ("e", None, "ok"), ("f", -2.0, "ok")]:
        ids[name] = store.record_candidate(run.id, program=program(name, status=status, score=score)).program_id
    best = lambda n, maximize: [p.id for p in store.best_programs(run.id, n, maximize=maximize)]  # noqa: E731
    assert best(3, True) == [ids["a"], ids["d"], ids["b"]]  # equal scores: the earlier program first
    assert best(2, False) == [ids["f"], ids["b"]]
    assert best(10, True) == [ids[k] for k in "adbf"]
    assert store.best_programs(make_run(store, "empty").id, 5, maximize=True) == []


def test_model_totals_and_the_program_queries_of_the_inspection_commands(store: Store) -> None:
    run = make_run(store)
    seed = store.record_candidate(run.id, program=program("seed"), evaluations=[train()]).program_id
    cheap = dict(model="openai/cheap", prompt_tokens=10, completion_tokens=5, cost=0.5)
    rows = [(proposal(**cheap, details={"improved": True}), program("a", origin="llm", parent_ids=[seed])),
            (proposal(**cheap, details={"improved": False}), program("b", origin="llm", status="error",
                                                                   score=None, parent_ids=[seed])),
            (proposal(**cheap, error="timeout"), None),
            (proposal(**cheap, attempts=0, details={"cached": True}), program("c", origin="llm", island=1)),
            (proposal(), program("d", origin="offline", parent_ids=[seed], island=1))]
    ids = [store.record_candidate(run.id, proposal=p, program=q).program_id for p, q in rows]
    store.reject_program(ids[4], by="me", why="reads the answers")
    totals = {t.model: t for t in store.model_totals(run.id)}
    assert set(totals) == {"openai/cheap", "offline"}
    cheap_totals = totals["openai/cheap"]
    assert (cheap_totals.proposals, cheap_totals.calls, cheap_totals.applied, cheap_totals.valid,
            cheap_totals.improved, cheap_totals.tokens) == (4, 3, 3, 2, 1, 60)
    assert cheap_totals.cost == pytest.approx(2.0)
    offline = totals["offline"]
    assert (offline.proposals, offline.calls, offline.applied, offline.valid, offline.improved) == (1, 0, 1, 1, 0)
    assert store.primary_ancestors([ids[0], ids[4]], limit=100) == {seed: (), ids[0]: (seed,), ids[4]: (seed,)}
    assert store.primary_ancestors([ids[0]], limit=1) == {ids[0]: (seed,)}  # the nearest first
    # Per island: valid programs no person rejected and the best of them (the earlier of equal scores).
    seq = {p.id: p.seq for p in store.program_briefs(run.id)}
    assert store.island_bests(run.id, maximize=True) == [(0, 2, 1.0, seed, seq[seed]), (1, 1, 1.0, ids[3], seq[ids[3]])]
    assert store.program_marks(run.id) == (frozenset({ids[4]}), {})
    assert [p.id for p in store.program_briefs(run.id, origin="seed")] == [seed]
    assert [p.id for p in store.program_briefs(run.id, rejected=True)] == [ids[4]]
    assert [p.id for p in store.program_briefs(run.id, ids=[ids[3], seed])] == [seed, ids[3]]
    # The curve's rows: the score counted for a best (valid, not rejected), island (-1: a seed); some in detail.
    rows = store.curve_rows(run.id, after_seq=-1)
    assert [(score, island) for _, score, island in rows] == [(1.0, -1), (1.0, 0), (None, 0), (1.0, 1), (None, 1)]
    assert list(store.curve_rows(run.id, after_seq=rows[-2][0])) == list(rows[-1:])
    points = store.curve_points(run.id, [rows[-1][0], rows[0][0]])
    assert [(p[1], p[2], p[3], p[4], p[6]) for p in points] == [(seed, 1.0, "ok", False, 0),
                                                                 (ids[4], 1.0, "ok", True, 1)]
    # The per-model sums read a few at a time add up to the whole.
    upto, first = store.model_totals_since(run.id, after_seq=-1)
    assert set(first) == set(store.model_totals(run.id)) and store.model_totals_since(
        run.id, after_seq=upto) == (upto, [])
    middle = seq[ids[0]]
    _, before = store.model_totals_since(run.id, after_seq=-1)
    _, after = store.model_totals_since(run.id, after_seq=middle)
    assert sum(t.proposals for t in after) == sum(t.proposals for t in before) - 1
    assert store.held_out_statuses(run.id, []) == {} and store.held_out_statuses(run.id, [seed]) == {}


def test_seq_orders_programs_and_events_together(store: Store) -> None:
    run = make_run(store)
    s0 = store.record_candidate(run.id, program=program("seed"), evaluations=[train()]).seq
    e1 = store.record_event(run.id, "reset", {"islands": [1, 2]})
    s2 = store.record_candidate(run.id, proposal=proposal(error="bad patch")).seq
    s3 = store.record_candidate(run.id, proposal=proposal(), program=program("x", origin="offline", island=2)).seq
    e4 = store.record_event(run.id, "stop", {"reason": "budget"})
    assert [s0, e1, s2, s3, e4] == [0, 1, 2, 3, 4]

    items = store.history(run.id)
    assert [(type(i).__name__, i.seq) for i in items] == [
        ("ProgramSummary", 0), ("EventInfo", 1), ("ProgramSummary", 3), ("EventInfo", 4)
    ]
    assert [i.kind for i in items] == ["program", "reset", "program", "stop"]
    assert items[1].data == {"islands": [1, 2]}
    assert items[0].origin == "seed" and items[2].origin == "offline"
    assert items[2].island == 2 and items[2].code_length == 1 and not hasattr(items[2], "code")
    with pytest.raises(ValueError, match="other than 'program'"):
        store.record_event(run.id, "program", {})


def test_history_of_10000_programs_is_ordered_and_complete(store: Store) -> None:
    run = make_run(store)
    batch = [
        NewCandidate(
            proposal=proposal(island=i % 5),
            program=program(f"p{i}", origin="offline", island=i % 5, score=float(i % 97)),
            evaluations=[train(float(i % 97))],
        )
        for i in range(5000)
    ]
    first = store.record_candidates(run.id, batch)
    store.record_event(run.id, "reset", {"islands": [0, 1]})
    second = store.record_candidates(
        run.id, [NewCandidate(program=program(f"s{i}", origin="human", score=float(i))) for i in range(5000)]
    )
    assert [r.seq for r in first + second] == list(range(5000)) + list(range(5001, 10001))
    assert len({r.program_id for r in first + second}) == 10000

    items = store.history(run.id)
    assert [i.seq for i in items] == list(range(10001))
    programs = [i for i in items if isinstance(i, ProgramSummary)]
    assert [p.id for p in programs] == [r.program_id for r in first + second]
    assert isinstance(items[5000], EventInfo) and items[5000].kind == "reset"
    assert programs[42].scores == {"n8": 42.0} and programs[42].island == 2
    assert store.attempts(run.id) == 10000
    assert store.get_program(first[7].program_id).proposal_id == first[7].proposal_id
    assert store.evaluations(first[7].program_id)[0].score == 7.0


# ---------------------------------------------------------------------------------------------- concurrency


def write_from_4_threads(url: str, *, one_store_per_thread: bool) -> None:
    main = Store(url)
    run = make_run(main)
    errors: list[BaseException] = []
    seqs: list[int] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        mine = Store(url) if one_store_per_thread else main
        try:
            for i in range(25):
                got = [mine.record_candidate(run.id, proposal=proposal(island=thread),
                                             program=program(f"t{thread}-{i}", origin="offline")).seq]
                if i % 5 == 0:
                    got.append(mine.record_event(run.id, "tick", {"thread": thread}))
                with lock:
                    seqs.extend(got)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
        finally:
            if mine is not main:
                mine.close()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(seqs) == list(range(4 * 30))
    assert [i.seq for i in main.history(run.id)] == list(range(4 * 30))
    assert main.attempts(run.id) == 100
    main.close()


def test_concurrent_writes_from_4_threads_get_unique_seqs(db_url: str) -> None:
    write_from_4_threads(db_url, one_store_per_thread=False)


def test_four_stores_on_one_database_get_unique_seqs(db_url: str) -> None:
    # Separate stores have separate connection pools: the database's lock, not a Python lock, keeps them apart.
    write_from_4_threads(db_url, one_store_per_thread=True)


def test_stores_opening_a_new_database_at_once_create_its_schema_once(db_url: str) -> None:
    opened: list[Store] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_it() -> None:
        start.wait()
        try:
            opened.append(Store(db_url))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == [] and len(opened) == 4
        run = make_run(opened[0])
        assert [s.get_run("capset-1") for s in opened] == [run] * 4
    finally:
        for s in opened:
            s.close()
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            stamps = c.execute(text("SELECT value FROM evoforge_meta WHERE key = 'schema_version'")).all()
    finally:
        engine.dispose()
    assert [v for (v,) in stamps] == [str(SCHEMA_VERSION)]


def test_unclosed_writer_loses_nothing_committed(db_url: str) -> None:
    writer = Store(db_url)
    run = make_run(writer)
    ids = [writer.record_candidate(run.id, program=program(f"p{i}")).program_id for i in range(5)]
    writer.record_event(run.id, "reset", {})
    reader = Store(db_url)  # `writer` is never closed, as if its process had hung
    try:
        assert reader.get_run("capset-1") == run
        assert [p.id for p in reader.get_programs(ids)] == ids and len(reader.history(run.id)) == 6
        assert reader.record_event(run.id, "resume", {}) == 6
    finally:
        reader.close()
        writer.close()


def test_a_retry_after_a_lost_acknowledgement_records_nothing_twice(db_url: str, monkeypatch) -> None:
    """The commit reached the database but the answer was lost (a dropped connection): the store retries, finds
    the batch's receipt, and returns the ids of what was recorded instead of recording it again."""
    import evoforge.db.store as store_module
    from evoforge.db.errors import StoreError as Error

    real = store_module.transaction
    lost = {"left": 1}

    @contextlib.contextmanager
    def ack_lost_once(engine, lock, *, write):
        with real(engine, lock, write=write) as connection:
            yield connection
        if write and lost["left"]:  # committed; now the answer goes missing
            lost["left"] -= 1
            raise Error("server closed the connection unexpectedly", transient=True)

    with Store(db_url, notify=lambda _line: None) as opened:
        run = make_run(opened)
        monkeypatch.setattr(store_module, "transaction", ack_lost_once)
        recorded = opened.record_candidate(run.id, proposal=proposal(), evaluations=[train(2.0)],
                                           program=program("def f():\n    return 2\n", origin="offline", score=2.0))
        monkeypatch.setattr(store_module, "transaction", real)
        assert lost["left"] == 0  # the fault did happen
        assert opened.attempts(run.id) == 1
        assert [p.id for p in opened.program_briefs(run.id)] == [recorded.program_id]
        assert opened.get_program(recorded.program_id).proposal_id == recorded.proposal_id


@pytest.mark.parametrize(("version", "fix"), [("0", "another --db"), ("99", "pip install -U evoforge")])
def test_wrong_schema_version_names_the_fix(db_url: str, version: str, fix: str) -> None:
    Store(db_url).close()
    engine = create_engine(db_url)
    try:
        with engine.begin() as c:
            c.execute(text("UPDATE evoforge_meta SET value = :v WHERE key = 'schema_version'"), {"v": version})
    finally:
        engine.dispose()
    with pytest.raises(StoreError) as info:
        Store(db_url)
    message = str(info.value)
    assert f"schema version {version}" in message and f"reads version {SCHEMA_VERSION}" in message
    assert fix in message and str(make_url(db_url).database) in message


def test_reopening_keeps_data_and_version(db_url: str) -> None:
    with Store(db_url) as first:
        make_run(first)
    with Store(db_url) as again:
        assert again.get_run("capset-1") is not None


# ------------------------------------------------------------------------------------------ SQLite only


def test_opening_creates_the_folder_of_a_new_sqlite_file(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path}/runs/evoforge.db") as opened:
        make_run(opened)
    assert (tmp_path / "runs" / "evoforge.db").is_file()


def test_an_in_memory_database_is_one_database_for_every_thread() -> None:
    # One in-memory database exists per connection: the store shares one connection and takes turns on it.
    write_from_4_threads("sqlite://", one_store_per_thread=False)
    with Store("sqlite://") as opened:
        run = make_run(opened)
        recorded = opened.record_candidate(run.id, program=program(), evaluations=[train()])
        assert opened.get_program(recorded.program_id).score == 1.0


def test_killed_writer_loses_only_its_open_transaction(tmp_path: Path) -> None:
    path = tmp_path / "evoforge.db"
    script = textwrap.dedent(
        f"""
        import os, signal, sqlite3
        from evoforge.db import NewProgram, Store
        store = Store({f"sqlite:///{path}"!r})
        run = store.create_run(name="k", problem_name="p", problem_path="p.py", problem_source="",
                               problem_hash="h", config={{}}, seed=0)
        for i in range(5):
            store.record_candidate(run.id, program=NewProgram(island=0, origin="seed", code=str(i),
                                                              code_hash=str(i), status="ok", score=float(i)))
        raw = sqlite3.connect({str(path)!r}, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO events (run_id, seq, kind, data, created_at) VALUES (1, 99, 'lost', '{{}}', '')")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    with Store(f"sqlite:///{path}", timeout_s=5) as store:
        run = store.get_run("k")
        assert [i.seq for i in store.history(run.id)] == [0, 1, 2, 3, 4]
        assert store.record_event(run.id, "resume", {}) == 5  # the dead writer's lock is gone


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "other.db") as raw:
        raw.execute("CREATE TABLE trials (id INTEGER)")
    with pytest.raises(StoreError, match="not an evoforge database"):
        Store(f"sqlite:///{tmp_path}/other.db")


def test_driver_errors_become_store_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="garbage.db") as info:
        Store(f"sqlite:///{garbage}")
    assert "not a database" in str(info.value)
    with pytest.raises(StoreError) as info:
        Store("nosuchdialect+driver://user:hunter2@localhost/db")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_sqlite_file_uses_wal(file_url: str, tmp_path: Path) -> None:
    Store(file_url).close()
    with sqlite3.connect(tmp_path / "evoforge.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_write_ahead_log_is_moved_into_the_file_in_the_background_not_by_commits(file_url: str) -> None:
    """Commits append to the log only; the store's own thread copies it into the database file while it is open."""
    path = Path(file_url.removeprefix("sqlite:///"))
    checkpointers = lambda: sum(t.name == "evoforge-wal-checkpoint" for t in threading.enumerate())  # noqa: E731
    others = checkpointers()  # stores other tests left open
    with Store(file_url) as opened:
        run = make_run(opened)
        before = path.stat().st_size
        for i in range(200):
            code = f"def f():\n    return {i}\n"
            opened.record_candidate(run.id, proposal=proposal(), evaluations=[train(float(i))],
                                    program=program(code, origin="offline", score=float(i)))
        # 200 small commits stay far below the 10,000-page safety net: only the background thread grows the file.
        deadline = time.monotonic() + 10
        while path.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > before
        assert opened.best_programs(run.id, 1, maximize=True)[0].score == 199.0
    # Closing stops the thread after a last checkpoint; every commit is in the file itself.
    assert checkpointers() == others
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM programs").fetchone()[0] == 200


UNPRIVILEGED = 65534  # nobody


@pytest.mark.parametrize("locked", ["file", "folder"])
def test_an_unwritable_sqlite_database_fails_at_once_saying_why(request: pytest.FixtureRequest,
                                                                locked: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop to an unprivileged user for whom the database is read-only")
    folder = Path(tempfile.mkdtemp(prefix="evoforge-ro-"))  # pytest's own folders are closed to other users
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    url = f"sqlite:///{folder / 'r.db'}"
    with Store(url) as store:
        make_run(store)
    for path in (folder, *folder.iterdir()):
        os.chown(path, UNPRIVILEGED, UNPRIVILEGED)
    (folder / "r.db").chmod(0o444) if locked == "file" else folder.chmod(0o555)
    # Imports first (the interpreter's files need not be readable by nobody), then drop to nobody and write.
    script = textwrap.dedent(f"""
        import os, sqlite3, sqlalchemy.dialects.sqlite.pysqlite
        from evoforge.db import Store, StoreError
        os.setgid({UNPRIVILEGED}); os.setuid({UNPRIVILEGED})
        try:
            Store({url!r}, patience_s=300).create_run(name="more", problem_name="p", problem_path="/p.py",
                                                      problem_source="", problem_hash="h", config={{}}, seed=0,
                                                      evoforge_version="test")
        except StoreError as err:
            print(err)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "cannot be opened or written" in out.stdout and "make the file and its folder writable" in out.stdout, \
        out.stdout + out.stderr
    assert "gave up after retrying" not in out.stdout and "not answering" not in out.stderr


def test_a_postgresql_role_without_access_fails_at_once_saying_why(postgres_url: str) -> None:  # noqa: F811
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    role = f"evoforge_outsider_{os.getpid()}"
    target = make_url(postgres_url)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            c.execute(text(f'REVOKE CONNECT ON DATABASE "{target.database}" FROM PUBLIC'))
        with pytest.raises(StoreError, match="cannot be opened or written") as info:
            Store(target.set(username=role).render_as_string(hide_password=False), patience_s=300)
        assert "gave up after retrying" not in str(info.value)
    finally:
        with admin.connect() as c:
            c.execute(text(f'GRANT CONNECT ON DATABASE "{target.database}" TO PUBLIC'))
            c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
