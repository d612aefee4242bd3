"""Pieces every `evoforge` subcommand module shares."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from evoforge.engine.run.config import DEFAULT_DB_URL

Handler = Callable[[argparse.Namespace], int]


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB_URL,
                        help=f"SQLAlchemy URL of the database (default {DEFAULT_DB_URL})")
