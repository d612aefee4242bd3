"""The inspection subcommands of `evoforge`: they only read the database."""

from __future__ import annotations

import argparse

from engine.cli_common import Handler, add_db_option


def add_inspect_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add `runs`, `show` and `best` to the parser; return their handlers by name."""
    runs = sub.add_parser("runs", help="list the runs in a database")
    add_db_option(runs)
    runs.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="summary of a run")
    show.add_argument("name")
    add_db_option(show)
    show.add_argument("--json", action="store_true")

    best = sub.add_parser("best", help="the best programs of a run")
    best.add_argument("name")
    add_db_option(best)
    best.add_argument("-n", type=int, default=1, help="how many (default 1)")
    best.add_argument("--json", action="store_true")
    return {"runs": _printing("runs"), "show": _printing("show"), "best": _printing("best")}


def _printing(view_name: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        from engine import inspect as views

        print(getattr(views, view_name)(args))
        return 0

    return handler
