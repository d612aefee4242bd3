"""`evoforge eval`: evaluate the seed or a person's candidate file exactly as a search would, and report it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evoforge.engine.analysis.textfmt import printable
from evoforge.engine.program.candidates import read_candidate
from evoforge.evaluators import Evaluation, Problem, SandboxPool, load_problem

PRINTED_LINES = 20  # of the candidate's output, shown by `evoforge eval` (all of it with --json)


def _as_dict(ev: Evaluation) -> dict[str, Any]:
    return {"status": ev.status, "score": ev.score, "scores": dict(ev.scores), "metrics": dict(ev.metrics),
            "feedback": ev.feedback, "error": ev.error,
            "timings": dict(ev.timings), "compiled": ev.compiled}


def _numba_note(ev: Evaluation, numba: bool | str) -> str | None:
    """Why the evolved functions ran as they did under numba, from the sandbox's own notes in its output."""
    if ev.compiled is None:
        return None
    if ev.compiled:
        return "compiled"
    notes = [line.removeprefix("[evoforge] ").strip() for line in ev.stdout.splitlines()
             if line.startswith("[evoforge] numba")]
    if notes:
        return "ran as Python: " + " ".join(notes)
    if numba == "auto":
        return "ran as Python: numba='auto' judged the inputs too small for compiling to pay"
    return "ran as Python"


def evaluate_file(problem_path: str, candidate_path: str | None, overrides: Mapping[str, str]) -> dict[str, Any]:
    """Evaluate on the training inputs and, when the problem has them, the held-out inputs."""
    problem = load_problem(problem_path, overrides)
    code = read_candidate(candidate_path, problem) if candidate_path else problem.seed_code
    with SandboxPool(problem, workers=1) as pool:
        train = pool.evaluate(code)
        held = pool.evaluate(code, held_out=True) if problem.held_out and train.status == "ok" else None
    report = {"problem": str(problem.path), "candidate": candidate_path or "seed",
              "maximize": problem.settings.maximize, "isolation": pool.isolation, **_as_dict(train),
              "held_out_score": held.score if held else None,
              "held_out_status": held.status if held else None,
              "held_out": _as_dict(held) if held else None,
              "numba": _numba_note(train, problem.settings.numba),
              "warnings": _warnings(problem, train, candidate_path),
              "stdout": train.stdout}
    return report


def _warnings(problem: Problem, train: Evaluation, candidate_path: str | None) -> list[str]:
    """The problem's own warnings, and one for a seed whose score is past the declared bound."""
    past = (problem.seed_bound_warning(train.score) if candidate_path is None and train.score is not None
            else None)
    return [*problem.warnings, *([past] if past else [])]


def format_report(report: Mapping[str, Any]) -> str:
    """Human-readable form of an evaluation report."""
    lines = [f"problem    {report['problem']}", f"candidate  {report['candidate']}",
             f"status     {report['status']}",
             f"score      {_number(report['score'])}  ({'higher' if report['maximize'] else 'lower'} is better)"]
    for name, value in report["scores"].items():
        lines.append(f"  {name:<24} {value:.6g}")
    if report["metrics"]:
        lines.append("metrics    " + ", ".join(f"{k} {v:.6g}" for k, v in report["metrics"].items()))
    if report["feedback"]:
        lines.append("feedback   (from score())")
        lines.extend(f"  {line}" for line in report["feedback"].splitlines())
    held = report["held_out"]
    if held is not None and held["status"] != "ok":  # a program that fails there does not generalise at all
        lines.append(f"held-out   FAILED ({held['status']}): {printable(held['error'] or '')}")
    elif held is not None:
        lines.append(f"held-out   {_number(report['held_out_score'])}")
    if report["error"]:
        lines.append(f"error      {printable(report['error'])}")
    timings = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in report["timings"].items())
    lines.append(f"timings    {timings}")
    if report["numba"] is not None:
        lines.append(f"numba      {report['numba']}")
    lines.append(f"sandbox    {report['isolation']}")
    lines.extend(f"warning    {warning}" for warning in report["warnings"])
    printed = printable(report["stdout"]).rstrip("\n").splitlines()
    if printed:  # what the candidate printed (capped at 64 KiB by the sandbox): its last lines
        shown = f", the last {PRINTED_LINES}" if len(printed) > PRINTED_LINES else ""
        lines.append(f"printed    {len(printed)} line(s){shown}:")
        lines.extend(f"  {line}" for line in printed[-PRINTED_LINES:])
    return "\n".join(lines)


def _number(value: float | None) -> str:
    """A score as the other listings show it (6 significant digits), or '-' for none."""
    return "-" if value is None else f"{value:.6g}"
