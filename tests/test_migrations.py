"""Schema versions: an old database is refused until `evoforge upgrade`, which brings it to exactly the models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, text

from evoforge.db import SCHEMA_VERSION, Store, StoreError, migrations, upgrade_database
from evoforge.db.models import Meta, metadata
from evoforge.engine.cli.main import main

V1_FILE = Path(__file__).parent / "fixtures" / "evoforge_v1.db"  # made by evoforge 0.1.0 (commit 6e21f58)


def schema_drift(url: str) -> list:
    """What differs between the database's tables, columns and indexes and the models (empty: nothing)."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return compare_metadata(MigrationContext.configure(c), metadata)
    finally:
        engine.dispose()


def make_version(url: str, version: int) -> None:
    """An empty database as evoforge of schema ``version`` left it (the steps up to it, and its stamp)."""
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            migrations.apply(c, 0, version)
            c.execute(insert(Meta).values(key="schema_version", value=str(version)))
    finally:
        engine.dispose()


def test_a_database_from_evoforge_0_1_is_refused_then_upgraded_with_its_data(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "old.db"
    shutil.copy(V1_FILE, path)
    url = f"sqlite:///{path}"
    with pytest.raises(StoreError) as info:
        Store(url)
    assert "schema version 1" in str(info.value) and f"evoforge upgrade --db {url}" in str(info.value)

    assert main(["upgrade", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "2: Proposals record" in out and "3: Programs record a digest" in out
    assert "4: Receipts of committed candidate batches" in out
    assert "6: Programs and evaluations record named metrics" in out
    assert schema_drift(url) == []
    with Store(url) as store:
        run = store.get_run("old-run")
        assert run is not None and run.status == "finished"
        proposals = store.proposals(run.id)
        programs = [item for item in store.history(run.id) if item.kind == "program"]
        assert len(proposals) == 4 and len(programs) == 5
        assert all(p.attempts == 1 and p.details == {} for p in proposals)  # filled in by the upgrade
        best = store.best_programs(run.id, 1, maximize=False)[0]
        assert best.score == pytest.approx(5.91716, abs=1e-4)
        assert best.metrics == {} and best.feedback is None  # recorded with one score and no feedback
        assert all(e.metrics == {} and e.feedback is None for e in store.evaluations(best.id))

    assert main(["upgrade", "--db", url]) == 0
    assert f"already at schema version {SCHEMA_VERSION}" in capsys.readouterr().out


def test_upgrading_every_old_version_gives_exactly_the_models(db_url: str) -> None:
    versions = [step.VERSION for step in migrations.STEPS]
    for version in versions[:-1]:
        make_version(db_url, version)
        assert schema_drift(db_url) != []  # old really is different, or this test proves nothing
        steps = upgrade_database(db_url)
        assert len(steps) == len([v for v in versions if v > version])
        assert schema_drift(db_url) == [], "a model changed without its step in db/migrations"
        with Store(db_url) as store:
            assert store.list_runs() == []
        _drop_all(db_url)


def test_a_new_database_matches_the_models_and_needs_no_upgrade(db_url: str) -> None:
    Store(db_url).close()
    assert schema_drift(db_url) == []
    assert upgrade_database(db_url) == []


@pytest.mark.parametrize(("version", "refusal"), [(SCHEMA_VERSION + 1, "written by a newer evoforge"),
                                                  (0, "no migration from version 0")])
def test_upgrade_refuses_a_version_it_has_no_steps_for(tmp_path: Path, version: int, refusal: str) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("UPDATE evoforge_meta SET value = :v WHERE key = 'schema_version'"), {"v": str(version)})
    engine.dispose()
    with pytest.raises(StoreError, match=refusal):
        upgrade_database(url)
    assert main(["upgrade", "--db", url]) == 2  # one clear message, no traceback


def test_steps_are_numbered_in_order_and_say_what_they_do() -> None:
    versions = [step.VERSION for step in migrations.STEPS]
    assert versions == sorted(set(versions)) and versions[0] == 1 and versions[-1] == SCHEMA_VERSION
    assert all(step.__doc__ and step.__doc__.strip() for step in migrations.STEPS)


def _drop_all(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as c:
        metadata.drop_all(c)
    engine.dispose()


def test_a_version_6_database_with_a_run_upgrades_and_reads_the_same(tmp_path: Path) -> None:
    """Version 12 adds indexes only (11 a table, 13 and 14 columns): a version 6 database with a run gains them, keeps
    every row, and every query of the pages answers as before."""
    from evoforge.db import NewCandidate, NewEvaluation, NewProgram, NewProposal
    from evoforge.db.migrations import v0011_judgements, v0012_page_indexes, v0013_program_mate, v0014_run_holder
    from evoforge.engine.analysis import queries as analysis
    from evoforge.engine.analysis.web import curves, pages

    url = f"sqlite:///{tmp_path / 'six.db'}"
    config = {"run": {"islands": {"num_islands": 2}}, "settings": {"maximize": True}, "params": {}}
    with Store(url) as store:
        run = store.create_run(name="six", problem_name="p", problem_path="p.py", problem_source="",
                               problem_hash="h", config=config, seed=0, evoforge_version="test")
        parent = None
        for i in range(40):
            code = f"def f():\n    return {i}\n"
            origin = "seed" if i == 0 else "llm"
            program = NewProgram(island=i % 2, origin=origin, code=code, code_hash=code, status="ok",
                                 score=float(i % 7), scores={"a": float(i % 7)},
                                 parent_ids=[] if parent is None else [parent])
            proposal = None if i == 0 else NewProposal(island=i % 2, model="m", prompt="[]", cost=0.01)
            parent = store.record_candidates(run.id, [NewCandidate(proposal=proposal, program=program, evaluations=[
                NewEvaluation(kind="train", status="ok", score=float(i % 7))])])[0].program_id
        before = (analysis.summarize(store, run), analysis.islands(store, run), analysis.lineage(store, parent),
                  curves.curve_payload(store, run)["best"], pages.tree_items(pages.lineage_tree(store, run)))
    six = f"sqlite:///{tmp_path / 'empty6.db'}"
    make_version(six, 6)
    engine = create_engine(six)
    with engine.connect() as c:
        seen = inspect(c)
        tables = set(seen.get_table_names())
        indexes = {i["name"] for t in tables for i in seen.get_indexes(t)}
        columns = {(t, col["name"]) for t in tables for col in seen.get_columns(t)}
    engine.dispose()
    engine = create_engine(url)
    with engine.begin() as c:  # the same database as evoforge of version 6 left it: later tables and indexes gone
        seen = inspect(c)
        for table in set(seen.get_table_names()) - tables:
            c.execute(text(f"DROP TABLE {table}"))
        for name in {i["name"] for t in tables for i in seen.get_indexes(t)} - indexes:
            c.execute(text(f"DROP INDEX {name}"))
        for table, column in {(t, col["name"]) for t in tables for col in seen.get_columns(t)} - columns:
            c.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        c.execute(text("UPDATE evoforge_meta SET value = '6' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 6"):
        Store(url)
    assert upgrade_database(url) == [f"{step.VERSION}: {step.__doc__.strip()}"
                                     for step in (v0011_judgements, v0012_page_indexes, v0013_program_mate,
                                                  v0014_run_holder)]
    assert schema_drift(url) == []
    with Store(url) as store:
        run = store.get_run("six")
        assert run is not None
        after = (analysis.summarize(store, run), analysis.islands(store, run), analysis.lineage(store, parent),
                 curves.curve_payload(store, run)["best"], pages.tree_items(pages.lineage_tree(store, run)))
    assert after[:4] == before[:4] and len(before[0].__dict__) and before[0].candidates == 40
    assert [(k, n.brief.id) for k, n in after[4]] == [(k, n.brief.id) for k, n in before[4]]
