"""The schema version: create it in a new database, upgrade an older one on request, refuse to misread any other.

The version lives in ``evoforge_meta.schema_version``; ``db.migrations`` holds the ordered steps between versions.
Opening never changes an existing database: an older one is refused with the command that upgrades it
(``evoforge upgrade --db URL``), so a user decides when a shared database moves to a new version.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, inspect, select, text, update

from evoforge.db import migrations
from evoforge.db.connection import masked, open_engine, transaction
from evoforge.db.errors import StoreError
from evoforge.db.models import Meta, metadata

SCHEMA_VERSION = migrations.LATEST
"""The version this evoforge reads and writes; a model change adds a step in db/migrations (see its docstring)."""

# Any constant: PostgreSQL sessions that create or upgrade the schema take this lock, so they take turns.
_SCHEMA_LOCK = 0x65766F66


def check_schema(connection: Connection, where: str) -> bool:
    """Whether the database holds evoforge tables of this version; False if it is empty; StoreError otherwise."""
    found = _found_version(connection, where)
    if found is None:
        return False
    if found != SCHEMA_VERSION:
        raise StoreError(_version_message(where, found))
    missing = set(metadata.tables) - set(inspect(connection).get_table_names())
    if missing:
        raise StoreError(
            f"database {where} says schema version {found} but lacks tables {', '.join(sorted(missing))}; "
            "it was damaged or edited by hand: restore it from a backup or start a new database"
        )
    return True


def create_schema(connection: Connection, where: str) -> None:
    """Create the tables and record the version, unless another process did so first.

    Runs inside a write transaction (and, on PostgreSQL, under an advisory lock), so two processes opening a new
    database at once cannot both create it.
    """
    _lock(connection)
    if not check_schema(connection, where):
        metadata.create_all(connection)
        connection.execute(insert(Meta).values(key="schema_version", value=str(SCHEMA_VERSION)))


def upgrade_schema(connection: Connection, where: str) -> list[str]:
    """Bring an older evoforge database to this version in one transaction; return the steps applied.

    An empty database is created; a current one is left alone (no steps); a newer or foreign one is refused.
    """
    _lock(connection)
    found = _found_version(connection, where)
    if found is None:
        create_schema(connection, where)
        return [f"created version {SCHEMA_VERSION}"]
    if not 1 <= found <= SCHEMA_VERSION:
        raise StoreError(_version_message(where, found))
    done = migrations.apply(connection, found)
    connection.execute(update(Meta).where(Meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
    check_schema(connection, where)
    return done


def upgrade_database(url: str, *, timeout_s: float = 30.0) -> list[str]:
    """Upgrade the evoforge database at ``url`` to this version (what `evoforge upgrade` runs); the steps applied."""
    engine, lock = open_engine(url, timeout_s=timeout_s)
    try:
        with transaction(engine, lock, write=True) as connection:
            return upgrade_schema(connection, masked(engine.url))
    finally:
        engine.dispose()


def _found_version(connection: Connection, where: str) -> int | None:
    """The stored version; None for an empty database; StoreError for a foreign or unreadable one."""
    tables = set(inspect(connection).get_table_names())
    if not tables:
        return None
    if Meta.name not in tables:
        raise StoreError(
            f"database {where} has tables ({', '.join(sorted(tables)[:5])}) but no {Meta.name} table, "
            "so it is not an evoforge database; point --db at a new file or an evoforge database"
        )
    found = connection.execute(select(Meta.c.value).where(Meta.c.key == "schema_version")).scalar_one_or_none()
    try:
        return int(found)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StoreError(
            f"database {where} has schema version {found!r}, which is not a number; it was edited by hand: "
            "restore it from a backup or start a new database with another --db"
        ) from None


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})


def _version_message(where: str, found: int) -> str:
    head = f"database {where} has schema version {found}, but this evoforge reads version {SCHEMA_VERSION}"
    if found > SCHEMA_VERSION:
        return f"{head}: it was written by a newer evoforge; upgrade with `pip install -U evoforge`"
    if found >= 1:
        return (
            f"{head}: it was written by an older evoforge; back it up, then upgrade it in place with "
            f"`evoforge upgrade --db {where}` (every evoforge sharing it must then be this version or newer)"
        )
    return (
        f"{head} and no migration from version {found} exists; open it with the evoforge version that wrote it "
        "(see evoforge_version in its runs table) or start a new database with another --db"
    )
