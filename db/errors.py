"""The one error type the store raises, so callers catch evoforge's error rather than a driver's."""

from __future__ import annotations


class StoreError(Exception):
    """A database operation failed; the message names the database, what went wrong and the fix.

    ``transient`` is true for a lock, a timeout or a dropped connection: worth retrying (bounded); never for an
    integrity error, which means a bug or a conflict that a retry would only hide.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
