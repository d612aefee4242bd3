"""Opening a database and running one transaction on it, with driver errors turned into ``StoreError``."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from evoforge.db.errors import StoreError

_WRITE = "evoforge_write"
WAL_SAFETY_NET_PAGES = 10_000

# Messages of driver errors that a bounded retry can fix: locks, timeouts, dropped connections.
_TRANSIENT_WORDS = ("locked", "busy", "timeout", "timed out", "connection", "server closed", "deadlock", "serialize")
# Messages that no wait can fix: the database, its file or folder, or the role refuses to be written or opened. These
# fail at once, even where the words above appear too ("connection ... failed: permission denied").
_REFUSAL_WORDS = ("readonly", "read-only", "permission denied", "unable to open database file", "not permitted",
                  "authentication failed", "access denied")


SECRET_QUERY_KEY = re.compile(r"pass|secret|token|key|auth", re.IGNORECASE)


def masked(url: URL) -> str:
    """The URL with its password hidden, fit for error messages, logs and pages: the one after the user name, and
    any given as a query value (psycopg takes `?password=...`, `?sslpassword=...`)."""
    hidden = {k: "***" for k in url.query if SECRET_QUERY_KEY.search(k)}
    return (url.update_query_dict(hidden) if hidden else url).render_as_string(hide_password=True)


def is_sqlite_memory(url: URL) -> bool:
    """Whether the URL names a private in-memory SQLite database."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def open_engine(url: str | URL, *, timeout_s: float) -> tuple[Engine, threading.RLock | None]:
    """An engine for the URL, plus a lock that callers hold around each transaction when all share one connection.

    SQLite gets WAL (readers never wait for the writer, and a killed writer loses only its open transaction),
    ``synchronous=NORMAL`` (no fsync per commit; WAL keeps the file consistent), a busy timeout, foreign keys,
    explicit BEGIN so writes can take the lock up front with BEGIN IMMEDIATE, and automatic checkpoints only as a
    safety net (see ``db.checkpoint``; the last connection to close still checkpoints, as SQLite always does).
    """
    try:
        url = make_url(url)
    except exc.ArgumentError as err:
        raise StoreError(f"cannot parse database URL {url!r}: {err}; write it like sqlite:///runs/evoforge.db") from err
    shared_lock = None
    kwargs: dict = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": timeout_s}
        if is_sqlite_memory(url):
            # One in-memory database exists per connection: share one, and take turns on it.
            kwargs["poolclass"] = StaticPool
            shared_lock = threading.RLock()
        elif url.database and not url.database.startswith("file:"):
            _make_parent(url)
    else:
        # A server may drop idle connections during a long run: test each one as it leaves the pool. A server
        # that is down must fail a connection attempt in bounded time, so the store's retries can take over.
        kwargs["pool_pre_ping"] = True
        if url.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": max(1, int(timeout_s))}
    try:
        engine = create_engine(url, **kwargs)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as err:
        raise StoreError(
            f"cannot open database {masked(url)}: {err}; install the driver the URL names (for "
            "postgresql+psycopg: pip install 'evoforge[postgres]') or fix the URL"
        ) from err
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, timeout_s)
    return engine, shared_lock


def missing_folder(url: str) -> str | None:
    """For a SQLite file whose folder does not exist, what to tell the user (None otherwise): three slashes make a
    path relative to the working folder, so `sqlite:///tmp/x.db` is ./tmp/x.db; an absolute one needs four."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        return None  # open_engine explains a malformed URL
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return None
    folder = Path(path).expanduser().parent
    if folder.exists():
        return None
    text = f"the folder {folder} of database {path} does not exist"
    if not Path(path).expanduser().is_absolute():
        text += (f" (three slashes make a path relative to the working folder, {Path.cwd()}; an absolute path "
                 f"needs four: sqlite:////{path})")
    return text


def _make_parent(url: URL) -> None:
    assert url.database, "only a SQLite URL naming a file has a folder to make"
    parent = Path(url.database).expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"cannot create folder {parent} for database {masked(url)}: {err}; choose a writable --db"
        ) from err


def _configure_sqlite(engine: Engine, timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the sqlite3 module, decide when and how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Commits leave copying the log back into the file to a Store's WalCheckpointer (db.checkpoint); only a
        # log the background thread has let grow past ~40 MiB (10,000 pages) makes a commit checkpoint itself.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_SAFETY_NET_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A write takes the write lock at BEGIN and waits for it under busy_timeout; a deferred read transaction
        # that later writes would instead fail at once with SQLITE_BUSY when another writer got in between.
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def transaction(engine: Engine, lock: threading.RLock | None, *, write: bool) -> Iterator[Connection]:
    """One transaction: commits on success, rolls back on error, raises driver errors as ``StoreError``."""
    if lock is not None:
        lock.acquire()
    try:
        with engine.connect() as connection:
            if write:
                connection.execution_options(**{_WRITE: True})
            with connection.begin():
                yield connection
    except exc.IntegrityError as err:
        raise StoreError(
            f"database {masked(engine.url)} refused a write: {_orig(err)}; this is a bug or a conflicting record, "
            "not a transient fault, so it is not retried",
            transient=False,
        ) from err
    except exc.DBAPIError as err:
        # A server's OperationalError is about the connection or the server (down, restarting, out of slots);
        # SQLite raises it for a missing table too, so there only the message tells a lock from a bug.
        server_fault = isinstance(err, exc.OperationalError) and engine.dialect.name != "sqlite"
        message = str(err.orig).lower()
        if any(w in message for w in _REFUSAL_WORDS):
            raise StoreError(
                f"database {masked(engine.url)} cannot be opened or written: {_orig(err)}; waiting would not help: "
                "make the file and its folder writable by this user (SQLite also writes NAME-wal and NAME-shm "
                "beside it), grant the role access (PostgreSQL), or pass another --db",
                transient=False,
            ) from err
        transient = (err.connection_invalidated or server_fault or any(w in message for w in _TRANSIENT_WORDS))
        raise StoreError(
            f"database {masked(engine.url)} failed: {_orig(err)}; check that it is reachable and writable "
            "(for SQLite: the file and its folder are writable, on a local disk, and no other process holds "
            "a long write lock)",
            transient=transient,
        ) from err
    finally:
        if lock is not None:
            lock.release()


def _orig(err: exc.DBAPIError) -> str:
    return f"{type(err.orig).__name__}: {err.orig}" if err.orig is not None else str(err)
