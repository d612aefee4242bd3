"""The `evoforge` command line: run, resume and eval here; the inspection commands in engine.cli_inspect.

argparse (standard library) parses; every user mistake becomes one clear message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from db import StoreError
from engine.cli_common import Handler, add_db_option
from engine.cli_inspect import add_inspect_commands
from engine.config import ConfigError, IslandSettings, ModelConfig, RunConfig
from engine.controller import SeedFailed
from evaluators import ProblemError, parse_overrides


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(prog="evoforge", description="Evolutionary program search with LLMs.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start a search on a problem file")
    run.add_argument("problem", help="problem file, e.g. problems/bin_packing.py")
    run.add_argument("--name", help="run name (default: PROBLEM-DATE-TIME)")
    add_db_option(run)
    run.add_argument("--budget", type=int, default=200, help="candidates to propose (default 200)")
    run.add_argument("--islands", type=int, default=IslandSettings.num_islands, help="number of islands")
    run.add_argument("--reset-period", type=int, default=IslandSettings.reset_period,
                     help="registrations between resets of the worst half of the islands")
    run.add_argument("--parents", type=int, default=IslandSettings.parents_per_prompt,
                     help="parents shown per prompt")
    run.add_argument("--seed", type=int, default=0, help="seed for selection, the offline proposer and sampling")
    run.add_argument("--workers", type=int, default=1, help="sandbox workers evaluating at once")
    run.add_argument("--model", help="cheap LLM (litellm model string); none = offline mutation proposer")
    run.add_argument("--strong-model", help="strong LLM used with probability --strong-prob")
    run.add_argument("--strong-prob", type=float, default=0.0)
    run.add_argument("--api-base", help="OpenAI-compatible server URL for the models (vLLM, Ollama, ...)")
    run.add_argument("--temperature", type=float, default=ModelConfig.temperature, help="LLM sampling temperature")
    run.add_argument("--max-tokens", type=int, default=ModelConfig.max_tokens, help="LLM answer length limit")
    run.add_argument("--llm-timeout", type=float, default=ModelConfig.timeout_s, help="seconds per LLM call")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a problem parameter or setting (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress display")

    resume = sub.add_parser("resume", help="continue a stopped or killed run")
    resume.add_argument("name")
    add_db_option(resume)
    resume.add_argument("--budget", type=int, help="new total budget (default: the run's own)")
    resume.add_argument("--quiet", action="store_true")

    ev = sub.add_parser("eval", help="evaluate the seed, or a candidate file, exactly as a search would")
    ev.add_argument("problem")
    ev.add_argument("candidate", nargs="?", help="a .py file defining the evolved function(s)")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    inspect_commands = add_inspect_commands(sub)
    return parser, inspect_commands


def _cmd_run(args: argparse.Namespace) -> int:
    from engine.search import default_run_name, run_search

    models = ModelConfig(model=args.model, strong_model=args.strong_model, strong_prob=args.strong_prob,
                         api_base=args.api_base, temperature=args.temperature, max_tokens=args.max_tokens,
                         timeout_s=args.llm_timeout)
    config = RunConfig(problem=args.problem, name=args.name or default_run_name(args.problem), budget=args.budget,
                       seed=args.seed, workers=args.workers, overrides=parse_overrides(args.overrides),
                       islands=IslandSettings(num_islands=args.islands, parents_per_prompt=args.parents,
                                              reset_period=args.reset_period),
                       models=models)
    result = run_search(config, args.db, progress=not args.quiet)
    _print_result(result, args.db)
    return 0 if result.status == "finished" else 130


def _cmd_resume(args: argparse.Namespace) -> int:
    from engine.search import resume_search

    result = resume_search(args.name, args.db, budget=args.budget, progress=not args.quiet)
    _print_result(result, args.db)
    return 0 if result.status == "finished" else 130


def _print_result(result: object, db: str) -> None:
    from engine.progress import format_score, status_line

    print(f"run {result.run_name}: {result.status}; best score {format_score(result.best_score)} "
          f"(program {result.best_program_id}); {status_line(result.stats)}")
    print(f"inspect it: evoforge best {result.run_name} --db {db}")


def _cmd_eval(args: argparse.Namespace) -> int:
    from engine.evaluate import evaluate_file, format_report

    report = evaluate_file(args.problem, args.candidate, parse_overrides(args.overrides))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["status"] == "ok" else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `evoforge` console script."""
    parser, inspect_commands = _parser()
    args = parser.parse_args(argv)
    commands: dict[str, Handler] = {"run": _cmd_run, "resume": _cmd_resume, "eval": _cmd_eval, **inspect_commands}
    try:
        return commands[args.command](args)
    except (ProblemError, ConfigError, StoreError, SeedFailed) as exc:
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
