"""Pieces every `evoforge` subcommand module shares."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from evoforge.engine.run.options import DB_ENV, default_db

Handler = Callable[[argparse.Namespace], int]


def add_db_option(parser: argparse.ArgumentParser) -> None:
    default = default_db()
    parser.add_argument("--db", default=default,
                        help=f"SQLAlchemy URL of the database (default {default}; ${DB_ENV} sets the default)")


class _Stderr(logging.Handler):
    """Writes to whatever sys.stderr is at the time (so a redirected or captured stderr gets the lines)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # a closed stderr must not end the run
            self.handleError(record)


class _Format(logging.Formatter):
    """`evoforge: what happened`, with `warning:` before warnings: the lines the CLI has always printed."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = "evoforge: warning: " if record.levelno == logging.WARNING else "evoforge: "
        return prefix + record.getMessage()


def configure_logging() -> None:
    """Send the library's `evoforge` logger (INFO and up) to stderr; once, however often main() is called."""
    logger = logging.getLogger("evoforge")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(_Format())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
