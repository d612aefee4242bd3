"""A fresh database per test on the real PostgreSQL server that `.ci/run` starts (EVOFORGE_TEST_POSTGRES_URL).

Without the variable the PostgreSQL tests skip with the reason, except in CI (CI=true), where a missing server is a
failure. tests/conftest.py offers the fixtures to every test module.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = "EVOFORGE_TEST_POSTGRES_URL"


def server_url() -> str:
    """The server's URL from the environment; skips the test (fails it in CI) when there is none."""
    url = os.environ.get(ENV)
    if url:
        return url
    reason = (f"{ENV} is not set: run .ci/run, or start PostgreSQL and export "
              f"{ENV}=postgresql+psycopg://USER@HOST:PORT/DB")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped after the test."""
    yield from _fresh_database(server_url())


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test twice: on a new SQLite file, and on a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
    else:
        yield from _fresh_database(server_url())


def _fresh_database(server: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"evoforge_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
