"""Moving SQLite's write-ahead log into the database file on a background thread.

By default the commit that pushes the log past 1,000 pages copies it back into the database file and syncs it,
so about one candidate in a hundred waited ten times longer than the rest to be recorded. With the
automatic checkpoint moved out of reach (``wal_autocheckpoint`` at 10,000 pages, set by ``db.connection`` as a
safety net for a log this thread cannot keep up with), this thread does the same work every fraction of a second
in PASSIVE mode: it never waits for a lock and never blocks a writer or a reader, so a commit costs only its own
pages.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, exc

_log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.2


class WalCheckpointer:
    """A daemon thread that checkpoints one SQLite engine's log until ``stop``."""

    def __init__(self, engine: Engine, *, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="evoforge-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after one last checkpoint, so a finished run leaves a short log behind."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join()
        self.checkpoint()

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint: copy what no reader still needs; a failure waits for the next tick."""
        try:
            # A raw DB-API connection in autocommit (see db.connection): the pragma must run outside a
            # transaction, or SQLite could not move the frames this connection's own snapshot pins.
            raw = self._engine.raw_connection()
        except exc.DBAPIError as err:
            _log.debug("WAL checkpoint skipped: %s", err)
            return
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.fetchall()
            cursor.close()
        except Exception as err:  # noqa: BLE001 - sqlite3 errors of any kind must not kill the thread
            _log.debug("WAL checkpoint failed: %s", err)
        finally:
            raw.close()

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval_s):
            self.checkpoint()
