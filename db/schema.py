"""The schema version: create it in a new database, refuse to misread a database of another version."""

from __future__ import annotations

from sqlalchemy import Connection, inspect, select

from db.errors import StoreError
from db.models import Base, Meta

SCHEMA_VERSION = 1
"""Bump on any change to the tables, and add the explicit migration from the version before."""


def check_schema(connection: Connection, where: str) -> bool:
    """Whether the database holds evoforge tables of this version; False if it is empty; StoreError otherwise."""
    tables = set(inspect(connection).get_table_names())
    if not tables:
        return False
    if Meta.__tablename__ not in tables:
        raise StoreError(
            f"database {where} has tables ({', '.join(sorted(tables)[:5])}) but no {Meta.__tablename__} table, "
            "so it is not an evoforge database; point --db at a new file or an evoforge database"
        )
    found = connection.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar_one_or_none()
    if found != str(SCHEMA_VERSION):
        raise StoreError(_version_message(where, found))
    missing = set(Base.metadata.tables) - tables
    if missing:
        raise StoreError(
            f"database {where} says schema version {found} but lacks tables {', '.join(sorted(missing))}; "
            "it was damaged or edited by hand: restore it from a backup or start a new database"
        )
    return True


def create_schema(connection: Connection, where: str) -> None:
    """Create the tables and record the version, unless another process did so first.

    Runs inside a write transaction, so two processes opening a new file at once cannot both create it.
    """
    if not check_schema(connection, where):
        Base.metadata.create_all(connection)
        connection.execute(Meta.__table__.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))


def _version_message(where: str, found: str | None) -> str:
    head = f"database {where} has schema version {found}, but this evoforge reads version {SCHEMA_VERSION}"
    try:
        newer = found is not None and int(found) > SCHEMA_VERSION
    except ValueError:
        newer = False
    if newer:
        return f"{head}: it was written by a newer evoforge; upgrade with `pip install -U evoforge`"
    return (
        f"{head} and no migration from version {found} exists; open it with the evoforge version that wrote it "
        "(see evoforge_version in its runs table) or start a new database with another --db"
    )
