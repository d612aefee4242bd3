"""Pieces every `evoforge` subcommand module shares."""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from evoforge.engine.run.options import DB_ENV, default_db

Handler = Callable[[argparse.Namespace], int]


class CommandParser(argparse.ArgumentParser):
    """The top-level parser: a mistyped subcommand is refused with the closest one, as a mistyped option is."""

    def error(self, message: str) -> NoReturn:
        typed = re.match(r"argument command: invalid choice: '([^']*)'", message)
        commands = [c for a in self._actions if isinstance(a, argparse._SubParsersAction) for c in a.choices]
        near = difflib.get_close_matches(typed.group(1), commands, n=1, cutoff=0.6) if typed else []
        super().error(message + (f"; did you mean {near[0]}?" if near else ""))


class SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: an option it does not know is refused here, with this subcommand's usage and the
    closest option it has (argparse would leave it to the top-level parser, whose usage does not help). `fixed`
    says why options another subcommand takes are not taken here (`resume` keeps the run's stored settings)."""

    def __init__(self, *args: Any, fixed: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed = fixed

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            options = [o for action in self._actions for o in action.option_strings]
            near = [match for extra in extras if extra.startswith("-")
                     for match in difflib.get_close_matches(extra.split("=")[0], options, n=1, cutoff=0.7)]
            self.error(f"unrecognized arguments: {' '.join(extras)}"
                       + (f"; did you mean {' and '.join(near)}?" if near else f"; {self.fixed}" if self.fixed else ""))
        return parsed, extras


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
