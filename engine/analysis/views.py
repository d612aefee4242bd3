"""`evoforge runs`, `show`, `best`, `program` and `lineage` as text (80 columns) or JSON, from engine.analysis.

Each view takes an open Store and returns the whole output as one string, so tests and the CLI print the same.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from evoforge.db import EventInfo, JudgementInfo, ProgramBrief, ProgramInfo, RunInfo, Store
from evoforge.db.models import utcnow
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.analysis import textfmt as fmt
from evoforge.engine.analysis.llm_stats import ModelStats, instruction_stats
from evoforge.engine.analysis.metrics import MetricSpec, known_metrics
from evoforge.engine.analysis.overfit import WIDENING_LIMIT, Gap


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def gap_legend(baseline: float | None, seed_failure: str | None = None) -> str:
    """The legend of the held-out columns; `seed_failure`: how the seed's own held-out evaluation failed, if it did
    (then there is no baseline, though the problem has held-out inputs)."""
    rest = ("FAILED: its held-out evaluation failed (it scores nothing there); '-': no held-out score yet (the search "
            "scores them for each new best only; `evoforge best --held-out` scores the rest); SUSPECT: past the best "
            "score an honest program can reach (the problem's bound) or judged by the reviewer model to game the "
            "score, out of selection until `evoforge accept ID` or `evoforge reject ID`")
    if baseline is None and seed_failure is not None:
        return (f"gap: how far held-out falls behind training, in % of training; the seed's own held-out evaluation "
                f"failed ({seed_failure}), so there is no seed's gap to flag a wider one against (no OVERFIT?); {rest}")
    if baseline is None:  # the seed is always scored on the held-out inputs, when the problem has any
        return ("held-out: the run's problem defines no held_out_inputs, so no gap between training and held-out "
                "scores can show overfitting")
    seed = f"{baseline:+.1%}"
    return (f"gap: how far held-out falls behind training, in % of training (the seed's: {seed}); OVERFIT? "
            f"when over {WIDENING_LIMIT * 100:.0f} points wider than the seed's; {rest}")


def _seed_json(seed: ProgramBrief | None) -> dict[str, Any] | None:
    return None if seed is None else {"id": seed.id, "score": seed.score, "held_out_score": seed.held_out_score}


def _program_json(p: ProgramInfo, gap: Gap | None = None) -> dict[str, Any]:
    data = {k: v for k, v in vars(p).items() if k not in ("code_hash", "run_id")}
    return {**data, "gap": gap.to_dict() if gap else None}


# ------------------------------------------------------------------------------------------------ runs


def runs(store: Store, *, as_json: bool) -> str:
    """Every run in the database, oldest first."""
    listed = store.list_runs()
    summaries = [analysis.summarize(store, run) for run in listed]
    if as_json:
        return _dumps([s.to_dict() for s in summaries])
    if not summaries:
        return f"no runs in {store.url}"
    orphaned = {run.name for run in listed if _holder_alive(store, run) is False}
    header = ["problem", "status", "cands", "best", "valid", "cost", "started", "took"]
    rows = [[fmt.fit(s.problem, 14), s.status + ("*" if s.name in orphaned else ""), str(s.candidates),
             _best_cell(s), f"{s.valid_rate:.0%}", fmt.cost(s.cost), f"{s.started:%m-%d %H:%M}",
             fmt.duration(s.duration_s)] for s in summaries]
    names = [s.name for s in summaries]
    legend = ([f"!: the best's held-out evaluation failed ({', '.join(sorted(failed))}); `evoforge best NAME`"]
              if (failed := {str(s.best_held_out_status) for s in summaries if _held_out_failed(s)}) else [])
    if orphaned:
        legend.append("*: marked running, but no live process searches it (killed?): `evoforge resume NAME` "
                      "continues it, `evoforge show NAME` gives the command")
    if any(s.best_suspect for s in summaries):
        legend.append("?: the best is SUSPECT (past the problem's bound, or judged to game the score): "
                      "`evoforge accept ID` or `evoforge reject ID`")
    one_line = fmt.table(["name", *header], [[n, *r] for n, r in zip(names, rows)], left=3)
    if max(len(line) for line in one_line) <= fmt.WIDTH:
        return "\n".join(one_line + legend)
    # Names too long for one line: each run's name on a line of its own, its figures indented below.
    lines = fmt.table(header, rows, left=2, indent="  ")
    out = ["name", lines[0]]
    for name, line in zip(names, lines[1:]):
        out += [name, line]
    return "\n".join(out + legend)


def _held_out_failed(summary: analysis.RunSummary) -> bool:
    return summary.best_held_out_status not in (None, "ok")


def _best_cell(summary: analysis.RunSummary) -> str:
    """The best score, marked '!' when that program failed on the held-out inputs."""
    return (fmt.score(summary.best_score) + ("!" if _held_out_failed(summary) else "")
            + ("?" if summary.best_suspect else ""))


# ------------------------------------------------------------------------------------------------ show


def _flat(data: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        elif not (value is None or value is False or value in ([], {}, "")):
            out.append(f"{prefix}{key}={json.dumps(value) if isinstance(value, (list, str)) else value}")
    return out


def _settings_flat(settings: dict[str, Any]) -> list[str]:
    """`_flat` for the problem's settings, whose dicts are data (metrics_maximize={"spread": false}), not sections:
    shown whole, since `_flat` drops a False leaf as an unset flag."""
    out: list[str] = []
    for key, value in settings.items():
        if not isinstance(value, dict):
            out += _flat({key: value})
        elif value:
            out.append(f"{key}={json.dumps(value)}")
    return out


def without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def _in_effect(config: dict[str, Any]) -> dict[str, Any]:
    """The run's settings less those that did nothing in it: an offline run calls no model, so how models are
    called (client, retries, cache, strong_prob) would read as if one had been, and the summary of improvements
    (meta_summary) is for a model's prompts only, as is the offline share beside a model; map_bins needs
    map_elites."""
    models = config.get("models")
    offline = isinstance(models, dict) and not models.get("models")
    shown: dict[str, Any] = {}
    for key, value in config.items():
        if key == "models" and offline:
            shown["proposer"] = "offline"
            if value.get("judge"):
                shown["models"] = {"judge": value["judge"]}
        elif not ((key == "map_bins" and not config.get("map_elites"))
                  or (key in ("meta_summary", "offline_share") and offline)):
            shown[key] = value
    return shown


def _best_rows(ranked: list[analysis.Ranked]) -> list[list[str]]:
    return [[str(r.rank), str(r.program.id), fmt.score(r.program.score),
             r.gap.held_out_text(fmt.score(r.program.held_out_score)),
             ("SUSPECT " if r.suspect else "") + r.gap.describe(), str(r.program.island), r.program.origin]
            for r in ranked]


def seed_lines(store: Store, run: RunInfo, seed: ProgramBrief | None, baseline: float | None) -> list[str]:
    """The seed's training and held-out scores (what the best's are read against), then the legend. A held-out
    evaluation of the seed that failed says so, as the best's rows do, rather than '-' (not scored yet) and a
    legend saying the problem has no held-out inputs."""
    if seed is None:
        return ["seed       -", *fmt.field("", gap_legend(baseline), label_width=0)]
    failure = analysis.seed_held_out_failure(store, run, seed)
    held_out = f"FAILED {failure}" if failure else fmt.score(seed.held_out_score)
    return [f"seed       score {fmt.score(seed.score)}, held-out {held_out}",
            *fmt.field("", gap_legend(baseline, failure), label_width=0)]


def metric_rows(spec: MetricSpec, ranked: list[analysis.Ranked]) -> tuple[list[str], list[list[str]]]:
    """The named metrics of ranked programs as a table (header, rows); no rows when none has metrics."""
    if not any(r.program.metrics for r in ranked):
        return [], []
    names = known_metrics(spec, [r.program for r in ranked])
    header = ["rank", "program", *names] + (["constraints"] if spec.constraints else [])
    rows = []
    for r in ranked:
        over = spec.over(r.program)
        limits = ["OVER " + ",".join(over) if over else "within"] if spec.constraints else []
        rows.append([str(r.rank), str(r.program.id), *(fmt.score(spec.value(r.program, n)) for n in names), *limits])
    return header, rows


def metric_legend(spec: MetricSpec) -> str:
    """Each metric's direction and limit, as the run's problem declared them."""
    directions = ", ".join(f"{name} {'higher' if up else 'lower'} is better" for name, up in spec.directions.items())
    limits = ", ".join(f"{name} <= {limit:g}" for name, limit in spec.constraints.items())
    primary = f"primary metric {spec.primary} ({'higher' if spec.maximize else 'lower'} is better)"
    return "; ".join(part for part in (primary, directions,
                                       f"constraints {limits} (a program over one ranks after those within)"
                                       if limits else "") if part)


def _metric_lines(spec: MetricSpec, ranked: list[analysis.Ranked]) -> list[str]:
    header, rows = metric_rows(spec, ranked)
    if not rows:
        return []
    return ["", "metrics:", *fmt.table(header, rows, left=0), *fmt.field("", metric_legend(spec), label_width=0)]


_BEST_HEADER = ["rank", "program", "score", "held-out", "gap", "island", "origin"]
MODEL_HEADER = ["model", "proposals", "calls", "applied", "valid", "improved", "tokens", "cost"]


def model_cells(m: ModelStats) -> list[str]:
    """A model's figures, in MODEL_HEADER's order after its name."""
    return [str(m.proposals), str(m.calls), str(m.applied), str(m.valid), str(m.improved), str(m.tokens),
            fmt.cost(m.cost)]


def summary_calls(models: list[ModelStats]) -> str:
    """LLM calls and tokens spent so far, over every model."""
    return f"{sum(m.calls for m in models)} LLM calls, {sum(m.tokens for m in models)} tokens"


def _searched_by(store: Store, run: RunInfo) -> list[str]:
    """For a run marked running: the process searching it, or that none is alive and how to go on."""
    if run.status != "running":
        return []
    holder, now = store.run_holder(run.id), utcnow()
    if holder is not None and holder.is_alive(now):
        return fmt.field("held by", holder.describe(now))
    # On a line of its own, never wrapped (a path broken in two could not be copied), with --db: from any folder
    command = f"evoforge resume {shlex.quote(run.name)} --db {shlex.quote(store.url)}"
    return [*fmt.field("held by", "no live process; this command continues it:"), " " * 11 + command]


def _stops_since_resume(store: Store, run: RunInfo) -> list[EventInfo]:
    """Why the run stopped, if it stopped since it last resumed: a stop that a resume went past is history."""
    stops, resumes = store.events(run.id, "stop"), store.events(run.id, "resume")
    return [e for e in stops if not resumes or e.seq > resumes[-1].seq]


def _holder_alive(store: Store, run: RunInfo) -> bool | None:
    """For a run marked running, whether a live process searches it; None for any other run."""
    if run.status != "running":
        return None
    holder = store.run_holder(run.id)
    return holder is not None and holder.is_alive(utcnow())


def _holder_json(store: Store, run: RunInfo) -> dict[str, Any] | None:
    """For a run marked running, what `held by` says as data: the holder's host, pid, heartbeat and whether it is
    alive (False: no live process, `evoforge resume` continues it); None for any other run."""
    if run.status != "running":
        return None
    holder, now = store.run_holder(run.id), utcnow()
    if holder is None:
        return {"host": None, "pid": None, "heartbeat_at": None, "heartbeat_age_s": None, "alive": False}
    return {"host": holder.host, "pid": holder.pid, "heartbeat_at": holder.heartbeat_at.isoformat(),
            "heartbeat_age_s": round(max(0.0, (now - holder.heartbeat_at).total_seconds()), 1),
            "alive": holder.is_alive(now)}


def show(store: Store, name: str, *, as_json: bool, top: int = 5) -> str:
    """A run's summary: settings, statuses, models, islands, best programs with their held-out gap, rejections."""
    run = analysis.open_run(store, name)
    summary = analysis.summarize(store, run)
    ranked = analysis.best(store, run, top)
    baseline = analysis.seed_gap(store, run)
    counts = store.status_counts(run.id)
    models = analysis.models(store, run)
    islands = analysis.islands(store, run)
    rejected = analysis.rejected(store, run)
    instructions = instruction_stats(store, run.id)
    flight = analysis.in_flight(store, run)
    reviews = store.judgements(run.id) if analysis.judged(run) else []
    if as_json:
        return _dumps({**summary.to_dict(), "held_by": _holder_json(store, run), "problem_path": run.problem_path,
                       "config": run.config,
                       "statuses": counts, "models": [vars(m) for m in models],
                       "no_program": [{"reason": e, "count": n} for e, n in store.proposal_failures(run.id)],
                       "islands": [vars(i) for i in islands], "seed_gap": baseline,
                       "best": [{"rank": r.rank, "id": r.program.id, "score": r.program.score,
                                 "metrics": r.program.metrics, "held_out_score": r.program.held_out_score,
                                 "gap": r.gap.to_dict(), "suspect": r.suspect} for r in ranked],
                       "seed": _seed_json(analysis.seed_program(store, run)),
                       "rejected": [{"id": p.id, "score": p.score} for p in rejected],
                       "instructions": [vars(i) for i in instructions],
                       "judge": judge_summary(reviews) if analysis.judged(run) else None,
                       "in_flight": flight.to_dict() if flight else None})
    direction = "maximise" if analysis.maximize(run) else "minimise"
    unapplied = summary.candidates - sum(counts.values())  # proposals that gave no program (failed calls, bad diffs)
    stops = _stops_since_resume(store, run)
    fewer = {e.data["model"]: e.data for e in store.events(run.id, analysis.FEWER_ANSWERS_EVENT)}
    params = {**run.config["params"]}
    run_config = _in_effect(without(run.config["run"], "name", "problem", "overrides"))
    settings = without(run.config["settings"], "maximize", *(() if reviews else ("judge_criteria",)))
    lines = [f"run        {run.name}  ({run.status})", *_searched_by(store, run),
             *fmt.field("problem", f"{run.problem_name}  {run.problem_path}"),
             f"started    {fmt.when(run.created_at)}, took {fmt.duration(summary.duration_s)}",
             *fmt.field("search", ", ".join(_flat(run_config))),
             *fmt.field("settings", ", ".join([direction, *_settings_flat(settings)])),
             *fmt.field("params", ", ".join(_flat(params)) or "-"),
             *fmt.field("candidates", f"{summary.candidates} recorded; "
                        + ", ".join([f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
                                    + ([f"no program {unapplied}"] if unapplied else []))),
             *[line for error, n in (store.proposal_failures(run.id) if unapplied else [])
               for line in fmt.field("no program", f"{n} x {error}")],
             *(fmt.field("failed" if stops[-1].data.get("failed") else "stopped",
                         stops[-1].data.get("reason", "?")) if stops else []),
             f"valid      {summary.valid_rate:.0%} of {summary.evaluated} evaluated",
             f"cost       {fmt.cost(summary.cost)}, {summary_calls(models)}",
             *(fmt.field("answers", "; ".join(f"{model} gave {e['got']} of the {e['asked']} asked per prompt, "
                                              "and the run used what came" for model, e in fewer.items()))
               if fewer else []),
             *(fmt.field("judge", judge_line(judge_summary(reviews))) if analysis.judged(run) else []),
             *(fmt.field("in flight", f"{flight.average:.1f} proposals on average, {flight.peak} at most; "
                         f"{flight.recorded} candidates in {flight.batches} transactions") if flight else []), ""]
    lines += fmt.table(MODEL_HEADER, [[fmt.fit(m.model, 24), *model_cells(m)] for m in models])
    if not models:
        lines.append("(no proposals yet)")
    if instructions:
        lines += ["", "evolved instructions, most successful first (uses, improvements):"]
        for i in instructions[:5]:
            lines += fmt.field(f"{i.uses}/{i.improved}", i.text)
    lines += ["", *fmt.table(["island", "programs", "best", "program"],
                             [[str(i.island), str(i.programs), fmt.score(i.best_score),
                               "-" if i.best_program_id is None else str(i.best_program_id)] for i in islands], left=0)]
    lines += ["", f"best {len(ranked)} ({'higher' if analysis.maximize(run) else 'lower'} is better):"]
    lines += fmt.table(_BEST_HEADER, _best_rows(ranked), left=0) if ranked else ["(no valid program yet)"]
    lines += seed_lines(store, run, analysis.seed_program(store, run), baseline)
    lines += _metric_lines(MetricSpec.of(run), ranked)
    for p in rejected:
        info = store.get_program(p.id)
        lines += fmt.field("REJECTED", f"program {p.id} (score {fmt.score(p.score)}) by {info.rejected_by}, "
                           f"{fmt.when(info.rejected_at)}")
        lines += fmt.field("", f"why: {info.rejected_reason}")
    return "\n".join(lines)


def judge_summary(reviews: list[JudgementInfo]) -> dict[str, Any]:
    """What the reviewer model did in a run: reviews asked, verdicts, gaming verdicts, failures, calls, spend."""
    grades = [j.grade for j in reviews if j.grade is not None]
    return {"reviews": len(reviews), "verdicts": len(grades), "gaming": sum(bool(j.gaming) for j in reviews),
            "failed": sum(j.error is not None for j in reviews),
            "mean_grade": sum(grades) / len(grades) if grades else None,
            "calls": sum(j.attempts > 0 for j in reviews),
            "tokens": sum(j.prompt_tokens + j.completion_tokens for j in reviews if j.attempts > 0),
            "cost": sum(j.cost for j in reviews)}


def judge_line(s: dict[str, Any]) -> str:
    mean = "-" if s["mean_grade"] is None else f"{s['mean_grade']:.1f}"
    return (f"{s['reviews']} reviews of programs that beat their island's best: {s['verdicts']} verdicts (mean grade "
            f"{mean}/10), {s['gaming']} judged gaming (SUSPECT), {s['failed']} without a verdict; {s['calls']} "
            f"calls, {s['tokens']} tokens, {fmt.cost(s['cost'])} (in the cost above)")


# ------------------------------------------------------------------------------------------------ best


def best(store: Store, name: str, n: int, *, as_json: bool, by: str | None = None,
         pareto: tuple[str, str] | None = None) -> str:
    """The run's n best programs (rejected ones left out), with held-out gaps and metrics, then their code.

    `by` ranks by another metric; `pareto` lists instead every program no other beats on both of two metrics.
    """
    run = analysis.open_run(store, name)
    spec = MetricSpec.of(run)
    ranked = analysis.pareto_front(store, run, *pareto) if pareto else analysis.best(store, run, n, by=by)
    seed = analysis.seed_program(store, run)
    if as_json:  # each with the seed's scores, read against it
        return _dumps([{"rank": r.rank, **_program_json(r.program, r.gap), "suspect": r.suspect,
                        "over_constraints": spec.over(r.program), "seed": _seed_json(seed)} for r in ranked])
    if not ranked:
        return f"run {run.name} has no valid program yet"
    hidden = analysis.rejected(store, run)
    metric = by or spec.primary
    if pareto:
        what = (f"the {len(ranked)} programs no other beats on both {pareto[0]} "
                f"({'higher' if spec.maximized(pareto[0]) else 'lower'} is better) and {pareto[1]} "
                f"({'higher' if spec.maximized(pareto[1]) else 'lower'} is better)")
    else:
        what = (f"best {len(ranked)}" + (f" by {metric}" if by else "")
                + f" ({'higher' if spec.maximized(metric) else 'lower'} is better)")
    lines = [f"run {run.name}: {what}" + (f"; rejected, not shown: {', '.join(str(p.id) for p in hidden)}"
                                          if hidden else "")]
    lines += fmt.table(_BEST_HEADER, _best_rows(ranked), left=0)
    lines += seed_lines(store, run, seed, analysis.seed_gap(store, run))
    lines += _metric_lines(spec, ranked)
    for r in ranked:
        lines += ["", fmt.section(f"{r.rank}. program {r.program.id}, score {fmt.score(r.program.score)}"),
                  r.program.code.rstrip()]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- program


def _prompt_text(prompt: str) -> str:
    """A stored prompt (chat messages as JSON) as '[role]' headed blocks; other text as it is."""
    try:
        messages = json.loads(prompt)
    except ValueError:
        return prompt
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "content" in m for m in messages):
        return prompt
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m['content']}" for m in messages)


def program(store: Store, program_id: int, *, as_json: bool) -> str:
    """One program: status, scores per input, held-out gap, proposal, code, diff against its parent."""
    d = analysis.program_detail(store, program_id)
    p = d.program
    judgement = analysis.judgements(store, d.run, [p.id]).get(p.id)
    suspect = p.id in analysis.suspects(store, d.run, [p])
    if as_json:
        return _dumps({**_program_json(p, d.gap), "run": d.run.name, "diff": d.diff, "suspect": suspect,
                       "evaluations": [vars(e) for e in d.evaluations],
                       "proposal": vars(d.proposal) if d.proposal else None,
                       "judgement": vars(judgement) if judgement else None})
    lines = [f"program {p.id} of run {d.run.name}" + ("  ** REJECTED **" if p.rejected_at else "")]
    if p.rejected_at:
        lines += fmt.field("rejected", f"by {p.rejected_by} {fmt.when(p.rejected_at)}: {p.rejected_reason}")
    lines += [f"origin     {p.origin}, island {p.island}, seq {p.seq}, {fmt.when(p.created_at)}"]
    if p.parent_ids:
        crossed = f"; a crossover with {p.mate_id}" if p.mate_id is not None else ""
        lines += fmt.field("parents", f"{', '.join(map(str, p.parent_ids))} (the change was made to "
                           f"{p.parent_ids[-1]}{crossed})")
    if p.duplicate_of is not None:  # a twin in behaviour ran on the first inputs, and stopped there
        lines += fmt.field("duplicate", f"behaves as program {p.duplicate_of} does on the first inputs (the same "
                           "outputs there), so the rest were not run" if p.behaviour is not None else
                           f"of program {p.duplicate_of}: not evaluated again")
    if suspect:
        lines += fmt.field("SUSPECT", f"{analysis.held(store, d.run, p)}: out of selection until `evoforge accept "
                           f"{p.id}` or `evoforge reject {p.id}`")
    lines += [f"status     {p.status}",
              f"score      {fmt.score(p.score)}   held-out {d.gap.held_out_text(fmt.score(p.held_out_score))}   "
              f"gap {d.gap.describe()}"]
    if p.metrics:
        lines += fmt.field("metrics", ", ".join(f"{name} {fmt.score(value)}" for name, value in p.metrics.items()))
    if p.error:
        lines += ["error", *("  " + line for line in fmt.printable(p.error).rstrip().splitlines())]
    for ev in d.evaluations:
        label = "held-out" if ev.kind == "held_out" else "training"
        culled = f", culled at stage {ev.stage}" if ev.stage is not None else ""
        lines += [f"{label} inputs ({ev.status}{culled}):"]
        lines += [f"  {fmt.fit(name, 40):<40} {fmt.score(value)}" for name, value in ev.scores.items()]
        if ev.metrics:
            lines += fmt.field("  metrics", ", ".join(f"{k} {fmt.score(v)}" for k, v in ev.metrics.items()))
        if ev.feedback:
            lines += ["  feedback from score()", *("    " + line for line in ev.feedback.rstrip().splitlines())]
        timing = ", ".join(f"{k} {v * 1000:.0f}ms" for k, v in ev.timings.items())
        lines += fmt.field("  timings", timing or "-")
        if ev.compiled is not None:  # numba on: whether it was used is what a person checking the setting asks
            lines += fmt.field("  numba", "compiled" if ev.compiled else "ran as Python (`evoforge eval` on the "
                               "program's code prints numba's reason)")
    if judgement is not None:
        lines += judgement_lines(judgement)
    if d.proposal:
        q = d.proposal
        lines += fmt.field("proposal", f"{q.model}, {q.prompt_tokens} + {q.completion_tokens} tokens, "
                           f"{fmt.cost(q.cost)}, {q.latency_s:.2f}s" + (f"; error: {q.error}" if q.error else ""))
        if q.details:
            lines += fmt.field("  details", ", ".join(_flat(q.details)))
    lines += ["", fmt.section("code"), p.code.rstrip()]
    if d.parent is not None:
        lines += ["", fmt.section(f"diff against program {d.parent.id}"), d.diff.rstrip() or "(no change)"]
    if d.proposal:
        lines += ["", fmt.section("prompt"), _prompt_text(d.proposal.prompt).rstrip() or "(none)",
                  "", fmt.section("response"), (d.proposal.response or "(none)").rstrip()]
    return "\n".join(lines)


def judgement_lines(j: JudgementInfo) -> list[str]:
    """The reviewer's verdict on a program (or why there is none), and what its call cost."""
    spent = (f"{j.model}, {j.prompt_tokens} + {j.completion_tokens} tokens, {fmt.cost(j.cost)}, {j.latency_s:.2f}s"
             + (", answered by a replayed run" if j.details.get("replay") == "hit" else ""))
    if j.error is not None:
        lines = fmt.field("judge", f"no verdict ({spent}): {fmt.printable(j.error)}")
        if j.response:
            lines += ["  its answer", *("    " + line for line in fmt.printable(j.response[:600]).splitlines())]
        return lines
    verdict = f"grade {j.grade:g}/10, " + ("GAMING the score" if j.gaming else "not gaming")
    return [*fmt.field("judge", f"{verdict} ({spent})"),
            "  critique", *("    " + line for line in fmt.printable(j.critique or "").rstrip().splitlines())]


# --------------------------------------------------------------------------------------------- lineage


def lineage_rows(chain: list[ProgramBrief]) -> list[list[str]]:
    """step, program, origin, island, score, change from the step before, held-out, note (rejected, status)."""
    rows, previous = [], None
    for step, p in enumerate(chain):
        change = "-" if p.score is None or previous is None else f"{p.score - previous:+.4g}"
        notes = ["REJECTED" if p.rejected else ("" if p.status == "ok" else p.status),
                 "" if p.mate_id is None else f"crossover with {p.mate_id}"]
        note = ", ".join(n for n in notes if n)
        rows.append([str(step), str(p.id), p.origin, str(p.island), fmt.score(p.score), change,
                     fmt.score(p.held_out_score), note])
        previous = p.score if p.score is not None else previous
    return rows


LINEAGE_HEADER = ["step", "program", "origin", "island", "score", "change", "held-out", "note"]


def lineage(store: Store, program_id: int, *, as_json: bool) -> str:
    """The ancestors of a program, through the parent each change was made to, with the score at each step."""
    chain = analysis.lineage(store, program_id)
    if as_json:
        return _dumps([vars(p) for p in chain])
    run = analysis.run_of(store, store.get_program(program_id))
    steps = len(chain) - 1
    lines = fmt.field("", f"lineage of program {program_id} (run {run.name}): {steps} step{'s' * (steps != 1)} from "
                      f"program {chain[0].id} ({chain[0].origin}); {'higher' if analysis.maximize(run) else 'lower'} "
                      "is better", label_width=0)
    lines += fmt.table(LINEAGE_HEADER, lineage_rows(chain), left=0)
    return "\n".join(line.rstrip() for line in lines)
