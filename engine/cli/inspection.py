"""The inspection and oversight subcommands of `evoforge`: runs, show, best, program, lineage, plot, report,
export (they read the database), add, reject (a person's changes to a run) and serve (live pages of both)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from evoforge.db import Store
from evoforge.engine.analysis import textfmt as fmt
from evoforge.engine.cli.common import Handler, add_db_option


def _note(message: str) -> None:
    """Progress of a long command, on stderr so stdout stays the result."""
    print(f"evoforge: {message}", file=sys.stderr, flush=True)


def _output(suffixes: tuple[str, ...]) -> Callable[[str], Path]:
    def check(value: str) -> Path:
        if Path(value).suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{value}: name the file with {' or '.join(suffixes)}")
        return Path(value)

    return check


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a number >= 1")
    return number


def add_inspect_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the commands to the parser; return their handlers by name."""
    def command(name: str, help_text: str, *, json: bool = False) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        add_db_option(parser)
        if json:
            parser.add_argument("--json", action="store_true", help="print JSON instead of text")
        return parser

    command("runs", "list the runs in a database", json=True)
    show = command("show", "a run's summary: settings, models, islands, best programs", json=True)
    show.add_argument("name")
    best = command("best", "a run's best programs with their code (rejected ones left out)", json=True)
    best.add_argument("name")
    best.add_argument("-n", type=_positive, default=1, help="how many (default 1)")
    order = best.add_mutually_exclusive_group()
    order.add_argument("--by", metavar="METRIC", help="rank by this metric instead of the primary score")
    order.add_argument("--pareto", metavar="A,B", help="list every program no other beats on both metrics A and B")
    best.add_argument("--held-out", action="store_true",
                      help="first score the held-out inputs of those shown that have no held-out score (sandbox)")
    program = command("program", "one program: scores, proposal, code and diff against its parent", json=True)
    program.add_argument("id", type=int)
    lineage = command("lineage", "a program's ancestors with the score at each step", json=True)
    lineage.add_argument("id", type=int)
    plot = command("plot", "fitness curves of a run as a PNG")
    plot.add_argument("name")
    plot.add_argument("-o", "--output", required=True, type=_output((".png",)), help="FILE.png to write")
    report = command("report", "one self-contained HTML report of a run")
    report.add_argument("name")
    report.add_argument("-o", "--output", required=True, type=_output((".html", ".htm")), help="FILE.html")
    report.add_argument("-n", type=_positive, default=5, help="best programs to include (default 5)")
    export = command("export", "the problem file with the run's best program in place (a project's run: its folder "
                              "beside it), runnable alone")
    export.add_argument("name")
    export.add_argument("-o", "--output", required=True, type=_output((".py",)), help="FILE.py to write")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--program", type=int, help="export this program of the run instead of the best")
    which.add_argument("--original", action="store_true",
                       help="write the problem file exactly as the run stored it when it started (to resume a run "
                            "whose file was edited or deleted, write it to the run's own path)")
    export.add_argument("--force", action="store_true",
                        help="replace files already there (by default an export never overwrites a file)")
    add = command("add", "evaluate your own version and put it into a run (origin 'human')")
    add.add_argument("name")
    add.add_argument("file", help="a .py file defining some or all of the evolved functions")
    add.add_argument("--island", type=int, default=0, help="island it joins (default 0)")
    reject = command("reject", "take a program out of selection, recording who and why")
    reject.add_argument("id", type=int)
    reject.add_argument("--why", required=True, help="what is wrong with it, e.g. 'reads the answers'")
    reject.add_argument("--by", help="who rejects it (default: $USER)")
    accept = command("accept", "let a SUSPECT program (past its problem's bound, or judged to game the score) into "
                     "selection, recording who and why")
    accept.add_argument("id", type=int)
    accept.add_argument("--why", required=True, help="why its score is real, e.g. 'checked the packing by hand'")
    accept.add_argument("--by", help="who accepts it (default: $USER)")
    serve = command("serve", "live pages of the runs in a database, where a person can reject, add and annotate")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                       "only)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument("--private", action="store_true",
                       help="pages need the token too, not only the actions that change the database")
    return {"runs": _runs, "show": _show, "best": _best, "program": _program, "lineage": _lineage, "plot": _plot,
            "report": _report, "export": _export, "add": _add, "reject": _reject, "accept": _accept,
            "serve": _serve}


def _serve(args: argparse.Namespace) -> int:
    import os

    from evoforge.engine.run.config import ConfigError
    from evoforge.engine.run.oversight import current_user
    from evoforge.engine.serve.app import MIN_TOKEN_CHARS, ServeConfig, allowed_hosts, new_token, serve

    token = os.environ.get("EVOFORGE_TOKEN") or new_token()
    if len(token) < MIN_TOKEN_CHARS:  # whoever guesses it may reject, add and annotate
        raise ConfigError(f"EVOFORGE_TOKEN has {len(token)} characters: a token that short can be guessed; give "
                          f"{MIN_TOKEN_CHARS} or more, or unset it and use the one evoforge serve makes")
    with Store(args.db, create=False) as store:
        config = ServeConfig(store=store, token=token, private=args.private, by=f"{current_user()} via evoforge serve",
                             hosts=allowed_hosts(args.host))
        serve(config, host=args.host, port=args.port, announce=_note)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from evoforge.engine.analysis import views as inspect

    with Store(args.db, create=False) as store:
        print(inspect.runs(store, as_json=args.json))
    return 0


def _show(args: argparse.Namespace) -> int:
    from evoforge.engine.analysis import views as inspect

    with Store(args.db, create=False) as store:
        print(inspect.show(store, args.name, as_json=args.json))
    return 0


def _best(args: argparse.Namespace) -> int:
    from evoforge.engine.analysis import views as inspect
    from evoforge.engine.analysis.metrics import parse_pair

    with Store(args.db, create=False) as store:
        if args.held_out:
            from evoforge.engine.analysis import queries as analysis
            from evoforge.engine.run.held_out import score_held_out

            ranked = analysis.best(store, analysis.open_run(store, args.name), args.n, by=args.by)
            score_held_out(store, args.name, [r.program for r in ranked], note=_note)
        pair = parse_pair(args.pareto) if args.pareto else None
        print(inspect.best(store, args.name, args.n, as_json=args.json, by=args.by, pareto=pair))
    return 0


def _program(args: argparse.Namespace) -> int:
    from evoforge.engine.analysis import views as inspect

    with Store(args.db, create=False) as store:
        print(inspect.program(store, args.id, as_json=args.json))
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from evoforge.engine.analysis import views as inspect

    with Store(args.db, create=False) as store:
        print(inspect.lineage(store, args.id, as_json=args.json))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from evoforge.engine.analysis import plots
    from evoforge.engine.analysis import queries as analysis

    with Store(args.db, create=False) as store:
        run = analysis.open_run(store, args.name)
        curve = analysis.curve(store, run)
        metrics = analysis.metric_curves(store, run, curve)
    _note(f"plotting {len(curve.evaluated)} evaluated candidates of run {run.name}"
          + (f" and {len(metrics)} metrics besides the primary" if metrics else ""))
    print(plots.save_png(curve, f"run {run.name} ({run.problem_name})", args.output, metrics=metrics))
    return 0


def _report(args: argparse.Namespace) -> int:
    from evoforge.engine.analysis import report

    with Store(args.db, create=False) as store:
        print(report.write(store, args.name, args.output, top=args.n, note=_note))
    return 0


def _export(args: argparse.Namespace) -> int:
    from evoforge.engine.analysis import export
    from evoforge.engine.analysis import queries as analysis
    from evoforge.evaluators import ProblemError

    with Store(args.db, create=False) as store:
        run = analysis.open_run(store, args.name)
        if args.original:
            path = export.write_original(run, args.output, replace=args.force)
            same = Path(path).resolve() == Path(run.problem_path)
            print(f"{path}\nthe problem file of run {run.name} as it started" + (
                f"; `evoforge resume {shlex.quote(run.name)}` reads it there" if same else
                f"; the run reads {run.problem_path}: write it there to resume the run"))
            return 0
        if args.program is None:
            ranked = analysis.best(store, run, 1)
            if not ranked:
                raise ProblemError(f"run {run.name} has no valid program to export yet")
            program = ranked[0].program
        else:
            program = store.get_program(args.program)
            if program.run_id != run.id:
                raise ProblemError(f"program {program.id} belongs to another run, not to {run.name}")
    path = export.write(run, program, args.output, replace=args.force)
    folder = run.config.get("project", {}).get("folder")
    beside = f", its blocks in {path.parent / folder}/ beside it" if folder else ""
    print(f"{path}\nprogram {program.id} (score {fmt.score(program.score)}) in the problem file of run {run.name}"
          f"{beside}\n`python FILE.py` scores it, `evoforge run FILE.py` searches on from it")
    return 0


def _add(args: argparse.Namespace) -> int:
    from evoforge.engine.run import oversight

    with Store(args.db, create=False) as store:
        added = oversight.add_program(store, args.name, args.file, island=args.island, note=_note)
        run = store.get_run(added.run_name)
        assert run is not None, "add_program found it"
        made, budget = store.proposal_count(run.id), int(run.config["run"]["budget"])
    p = added.program
    print(f"program {p.id} added to run {added.run_name}, island {p.island}: {p.status}\n"
          f"score {fmt.score(p.score)}, held-out {fmt.score(p.held_out_score)}"
          + (f"\nerror: {p.error}" if p.error else ""))
    if p.status == "ok":
        # a run whose budget is spent ends at once on a plain resume: the command must raise the total
        more = f" --budget {made + max(budget, 1)}" if made >= budget else ""
        print(f"it enters selection when the run resumes: evoforge resume {added.run_name}{more} --db {args.db}"
              + (f" (its budget of {budget} is spent; --budget is the new total)" if more else ""))
    else:
        print(f"it stays out of selection: only valid programs are chosen as parents (this one is {p.status})")
    return 0 if p.status == "ok" else 1


def _accept(args: argparse.Namespace) -> int:
    from evoforge.engine.run import oversight

    with Store(args.db, create=False) as store:
        p = oversight.accept_program(store, args.id, why=args.why, by=args.by)
    print(f"program {p.id} accepted (score {fmt.score(p.score)}): it enters selection when the run resumes, or at "
          "once in a running search")
    return 0


def _reject(args: argparse.Namespace) -> int:
    from evoforge.engine.run import oversight

    with Store(args.db, create=False) as store:
        p = oversight.reject_program(store, args.id, why=args.why, by=args.by)
    print(f"program {p.id} rejected by {p.rejected_by}: {p.rejected_reason}\n"
          "it stays in the record, marked rejected, and is out of selection from the next resume on")
    return 0
