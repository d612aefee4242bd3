"""The `evoforge` command line: run, resume and eval here; the inspection commands in engine.cli.inspection.

argparse (standard library) parses; every user mistake becomes one clear message and exit status 2. Only what
building the parser needs is imported up front (the database layer, the config classes); the search machinery
(numpy, the sandbox, litellm, Ray) is imported by the command that uses it, so looking at a run starts fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from evoforge import __version__
from evoforge.db import DEFAULT_PATIENCE_S, SCHEMA_VERSION, StoreError, upgrade_database
from evoforge.engine.cli.common import CommandParser, Handler, SubcommandParser, add_db_option, configure_logging
from evoforge.engine.cli.inspection import add_inspect_commands
from evoforge.engine.cli.models import add_model_options
from evoforge.engine.run.config import DEFAULT_META_SUMMARY, ConfigError, ExecutorSettings
from evoforge.engine.run.errors import RunFailed, SeedFailed
from evoforge.engine.run.options import SearchOptions, refuse_missing_folder, run_config
from evoforge.evaluators import ProblemError, parse_overrides
from evoforge.evaluators.statuses import BEHAVIOUR_INPUTS
from evoforge.islands import IslandConfigError
from evoforge.islands.config import ELITE_MEMBERS, ELITE_SCOPES, SELECTIONS

if TYPE_CHECKING:
    from evoforge.engine.run.search import SearchResult


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = CommandParser(prog="evoforge", description="Evolutionary program search with LLMs.")
    parser.add_argument("--version", action="version", version=f"evoforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)

    run = sub.add_parser("run", help="start a search on a problem file")
    run.add_argument("problem", help="problem file (e.g. problems/bin_packing.py) or a bundled problem's name "
                     "(e.g. bin_packing)")
    run.add_argument("--name", help="run name (default: PROBLEM-DATE-TIME)")
    add_db_option(run)
    defaults = SearchOptions()
    run.add_argument("--budget", type=int, default=defaults.budget,
                     help=f"candidates to propose (default {defaults.budget})")
    run.add_argument("--islands", type=int, default=defaults.islands, help="number of islands")
    run.add_argument("--reset-period", type=int, default=defaults.reset_period,
                     help="registrations between resets of the worst half of the islands")
    run.add_argument("--parents", type=int, default=defaults.parents, help="parents shown per prompt")
    run.add_argument("--seed", type=int, default=defaults.seed,
                     help="seed for selection, the offline proposer and sampling")
    run.add_argument("--workers", type=int, default=defaults.workers, help="sandbox workers evaluating at once")
    run.add_argument("--concurrency", type=int,
                     help="candidates in flight (default: --workers offline; with an LLM, as many as keep the "
                     "workers busy at the model's measured latency, up to 256)")
    run.add_argument("--ray", action="store_true", help="evaluate in Ray actors on a local Ray instance")
    run.add_argument("--ray-address", metavar="HOST:PORT",
                     help="evaluate in Ray actors on the cluster at this address (or 'auto'); --workers actors")
    _add_patience_option(run)
    run.add_argument("--same-behaviour", choices=("reject", "keep", "parent"),
                     help="a candidate whose outputs on the first inputs equal an earlier program's: reject it "
                     "before its other inputs run, keep evaluating it, or stop evaluating it and keep it as a "
                     "parent with its twin's score (the default)")
    run.add_argument("--behaviour-inputs", choices=BEHAVIOUR_INPUTS, default=defaults.behaviour_inputs,
                     help="whose outputs make a candidate a twin of an earlier program: the first inputs (the "
                     "first cascade stage, else the first input; a twin stops there), or all of them (each "
                     f"candidate runs every input; default {defaults.behaviour_inputs})")
    run.add_argument("--selection", choices=SELECTIONS, default=defaults.selection,
                     help="parent selection: FunSearch's score clusters, or power-law ranks (default clusters)")
    run.add_argument("--elite-share", type=float, default=defaults.elite_share,
                     help="chance that a prompt's best parent is its island's best program (default "
                     f"{defaults.elite_share}; 0 is FunSearch's sampling alone)")
    run.add_argument("--elite-member", choices=ELITE_MEMBERS, default=defaults.elite_member,
                     help="which program of the best behaviour is the elite: the first found (the seed until "
                     "something beats it) or any of the programs that behave like it, drawn uniformly (default "
                     f"{defaults.elite_member})")
    run.add_argument("--elite-scope", choices=ELITE_SCOPES, default=defaults.elite_scope,
                     help="whose best program is the elite: the prompt's island's, or the best of all islands "
                     f"(default {defaults.elite_scope})")
    run.add_argument("--inspirations", type=int, default=defaults.inspirations,
                     help="other islands' best programs shown in each prompt beside the parents (default 0)")
    run.add_argument("--answers", type=int, default=defaults.answers, metavar="N",
                     help="answers per prompt: one LLM call asks for N choices (litellm's n; a provider without it "
                     "gives fewer), the offline proposer makes N mutations of the same parents; each is a candidate "
                     "of its own and counts against --budget (default 1)")
    run.add_argument("--map-elites", metavar="DESC[,DESC]", default=None,
                     help="a MAP-Elites archive beside the islands over these descriptors (code_length, or metrics "
                     "the problem's score returns); half the prompts then improve one of its elites (default off)")
    run.add_argument("--map-bins", type=int, default=defaults.map_bins,
                     help=f"bins per MAP-Elites descriptor (default {defaults.map_bins})")
    run.add_argument("--crossover", type=float, default=defaults.crossover, metavar="SHARE",
                     help="share of prompts that show the parent beside a high scorer that behaves differently "
                     "(another island's best) and ask to combine them (default 0: off)")
    run.add_argument("--meta-summary", type=int, default=defaults.meta_summary, metavar="K",
                     help="list the last K improvements (score change and changed lines) in every prompt; "
                     f"computed by evoforge, no extra call (default {DEFAULT_META_SUMMARY} with a model, 0 (off) "
                     "with the offline proposer)")
    add_model_options(run)
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a problem parameter or setting (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress display")

    resume = sub.add_parser("resume", help="continue a stopped or killed run",
                            fixed="resume continues with the settings stored with the run (seed, workers, models, "
                            "--set values, ...); to change them, start a new run: evoforge run PROBLEM --name NEW")
    resume.add_argument("name")
    add_db_option(resume)
    resume.add_argument("--budget", type=int, help="new total budget (default: the run's own)")
    resume.add_argument("--quiet", action="store_true")
    where = resume.add_mutually_exclusive_group()
    where.add_argument("--ray-address", metavar="HOST:PORT",
                       help="evaluate on this Ray cluster instead of the one stored with the run")
    where.add_argument("--local", action="store_true", help="evaluate with local sandbox workers, not Ray")
    _add_patience_option(resume)

    upgrade = sub.add_parser("upgrade", help="upgrade a database written by an older evoforge (back it up first)")
    add_db_option(upgrade)

    ev = sub.add_parser("eval", help="evaluate the seed, or a candidate file, exactly as a search would")
    ev.add_argument("problem", help="problem file or a bundled problem's name")
    ev.add_argument("candidate", nargs="?", help="a .py file defining the evolved function(s)")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    inspect_commands = add_inspect_commands(sub)
    return parser, inspect_commands


def _cmd_run(args: argparse.Namespace) -> int:
    from evoforge.engine.run.search import run_search

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(SearchOptions)}
    options = SearchOptions(**{**given, "overrides": parse_overrides(args.overrides)})
    config = run_config(args.problem, options, args.db)
    refuse_missing_folder(args.db)
    result = run_search(config, args.db, progress=not args.quiet, db_patience_s=args.db_patience)
    _print_result(result, args.db)
    return _exit_code(result.status)


def _cmd_resume(args: argparse.Namespace) -> int:
    from evoforge.engine.run.search import resume_search

    executor = (ExecutorSettings(ray=True, ray_address=args.ray_address) if args.ray_address
                else ExecutorSettings() if args.local else None)
    result = resume_search(args.name, args.db, budget=args.budget, progress=not args.quiet,
                           db_patience_s=args.db_patience, executor=executor)
    _print_result(result, args.db)
    return _exit_code(result.status)


def _exit_code(status: str) -> int:
    """0 for a finished run, 130 (as for Ctrl-C) for a stopped one, 1 for a failed one."""
    return {"finished": 0, "stopped": 130}.get(status, 1)


def _print_result(result: SearchResult, db: str) -> None:
    from evoforge.engine.run.progress import format_score, status_line

    print(f"run {result.run_name}: {result.status}; best score {format_score(result.best_score)} "
          f"(program {result.best_program_id}); {status_line(result.stats)}")
    if result.stats.stop_reason:
        print(f"stopped early: {result.stats.stop_reason}")
    where = f"{shlex.quote(result.run_name)} --db {shlex.quote(db)}"
    if result.status == "stopped":  # Ctrl-C or SIGTERM: what the user wants next is most likely to go on
        print(f"continue it: evoforge resume {where}   (--budget N for a new total)")
    elif result.stats.stop_reason and not result.stats.stopped_by_failure:
        print(_after_limit(result.stats.stop_reason, result.run_name, db))
    print(f"see its best: evoforge best {where}")


_SPENDING_FLAGS = {"calls": "--max-calls", "tokens": "--max-total-tokens", "cost": "--max-cost"}


def _after_limit(reason: str, name: str, db: str) -> str:
    """How to go on after a limit stopped the run: a resume keeps the run's limits, and the calls, tokens and cost
    count over the whole run (a resume would end at once), while the wall time counts per process."""
    where = f"{shlex.quote(name)} --db {shlex.quote(db)}"
    flag = _SPENDING_FLAGS.get(reason.removesuffix(" limit reached"))
    if flag is None:
        return f"continue it: evoforge resume {where}   (it searches for --max-time again; --budget N for a new total)"
    best = shlex.quote(f"{name}-best.py")
    return (f"a resume keeps the run's {flag}, which counts the whole run, so it would end at once; to spend more, "
            f"search on from its best in a new run: evoforge export {where} -o {best}, then evoforge run {best} "
            f"{flag} N (with the models and options you want)")


def _cmd_eval(args: argparse.Namespace) -> int:
    from evoforge.engine.run.evaluate import evaluate_file, format_report
    from evoforge.evaluators import SandboxError
    from evoforge.problems import problem_path

    try:
        report = evaluate_file(str(problem_path(args.problem)), args.candidate, parse_overrides(args.overrides))
    except (SandboxError, ValueError) as exc:  # a sandbox that cannot start (a bad EVOFORGE_SANDBOX, a missing
        print(f"evoforge: the sandbox could not evaluate it: {exc}", file=sys.stderr)  # tool), said in one line
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["status"] == "ok" else 1


def _add_patience_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-patience", type=float, default=DEFAULT_PATIENCE_S, metavar="SECONDS",
                        help="how long the run waits (retrying) for a database that stopped answering "
                             f"(default {DEFAULT_PATIENCE_S:g})")


def _cmd_upgrade(args: argparse.Namespace) -> int:
    steps = upgrade_database(args.db)
    print(f"{args.db}: " + ("; ".join(steps) if steps else f"already at schema version {SCHEMA_VERSION}"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `evoforge` console script."""
    parser, inspect_commands = _parser()
    args = parser.parse_args(argv)
    configure_logging()
    commands: dict[str, Handler] = {"run": _cmd_run, "resume": _cmd_resume, "eval": _cmd_eval,
                                    "upgrade": _cmd_upgrade, **inspect_commands}
    try:
        return commands[args.command](args)
    except (ProblemError, ConfigError, IslandConfigError, StoreError, SeedFailed, RunFailed) as exc:
        print(f"evoforge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evoforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: nothing more to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
