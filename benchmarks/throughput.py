"""Candidates per second: the offline proposer on each bundled problem, or the engine alone against a stub model.

    .venv/bin/python benchmarks/throughput.py [--budget 60] [--workers 1]
    .venv/bin/python benchmarks/throughput.py --stub [--sizes 1000,10000,100000] [--workers 2] [--ray] [--profile]
        [--llm-client auto|litellm|direct]
    .venv/bin/python benchmarks/throughput.py --stub --delay 2 --sizes 40 [--concurrency 32]

Offline (the default): each problem gets a fresh SQLite database in a temporary folder. The split is per candidate
evaluated, in ms: propose and patch happen in the controller; sandbox start, compile and solve inside the sandbox;
score is the trusted scoring; database is the time spent recording.

`--stub`: the engine's own cost. An OpenAI-compatible server (tests/openai_server.py, in a process of its own)
answers at once (or after `--delay` seconds) with a new version of a trivial problem's function, so every candidate
is new, valid and costs ~nothing to evaluate; `--llm-client` chooses how the engine calls it (auto, the engine's
default, which picks the direct client for this stub; litellm; direct), and the output says which. One
`evoforge run` (the CLI, in a fresh process: start-up counts) goes to the largest size; candidates/s is measured
over the last 10% before each size (from the
programs' timestamps in the database; each size's row is also printed as soon as the run passes it, so a run stopped
early still says what it reached), with the controller's CPU per candidate and resident memory there (the CPU
is the figure a loaded machine disturbs least). Time to first candidate is from the
process's start to the first proposed program's record. CPU is the controller process's own (user + system):
per candidate over the search loop (start-up and the seed left out), and in all; beside it, per candidate over the
same last 10%, the CPU of everything the controller started (the sandboxes: servers, harnesses, candidates; or
Ray's processes) and of the stub model, and how many CPUs all of it kept busy: on a machine with few CPUs, where
the candidates/s are bounded. With local workers the sandboxes' CPU is also split by process: the servers', the
harnesses' they fork, the zygotes' and the candidates' own processes the zygotes fork; and so are their minor page
faults per candidate (copy-on-write after the forks, mostly), a count that a loaded machine leaves steady where it
swings the CPU times. The stages are the
controller's per-candidate wall times (`RunStats.seconds`: propose, patch, sandbox start, compile, solve, score,
database). `--profile` runs the largest size a second time with the search loop under cProfile and splits the
controller's CPU by part of the engine (the profile's shares, scaled to the unprofiled CPU per candidate; a
built-in's time goes to its callers' parts; threads other than the event loop's are not profiled, so their CPU shows
as "other threads").
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = ("cap_set", "bin_packing")
PARTS = ("propose", "patch", "sandbox_start", "compile", "solve", "score", "database")

TRIVIAL_PROBLEM = '''"""Return a number; the score is the number.

Trivial on purpose: the engine's own cost is what is measured."""
from evoforge import evolve

SETTINGS = {"time_limit_s": 5.0, "memory_limit_mb": 1024}


@evolve
def f(x):
    return x * 2


def solve(x):
    return f(x)


def score(x, out):
    return float(out)


def inputs(params):
    return {"a": 1}
'''

STUB_SERVER = '''
import itertools, sys, threading, time
sys.path.insert(0, sys.argv[1])
from openai_server import Fault, OpenAIServer
OpenAIServer._record = lambda self, request: None  # a 100k-request run must not keep every request
counter, lock, delay = itertools.count(), threading.Lock(), float(sys.argv[2])

def respond(request):
    with lock:
        i = next(counter)
    answer = f"```python\\ndef f(x):\\n    return x * 2 + {i % 1000} + {i // 1000} / 1000\\n```"
    return Fault.delay(delay, then=answer) if delay > 0 else answer

server = OpenAIServer(respond).start()
print(server.base_url, flush=True)
threading.Event().wait()
'''

# The controller's CPU by part: a profiled function's own time goes to the first part whose path fragment its file
# (or, for the standard library's asyncio and selectors, its module) contains.
SPLIT = (
    ("LLM call path", ("litellm", "openai", "httpx", "httpcore", "aiohttp", "anyio", "h11", "ssl", "/llm.py",
                       "pydantic", "tiktoken", "tokenizers", "email", "http/", "urllib", "json/", "uuid", "socket")),
    ("prompt building", ("/prompts.py", "/proposers.py", "/memory.py", "/instructions.py")),
    ("patching", ("/patching.py", "difflib", "textwrap", "re/", "/re.py", "sre_")),
    ("dedupe", ("/source.py", "ast.py", "hashlib", "tokenize")),
    ("database", ("sqlalchemy", "sqlite3", "/db/", "psycopg", "datetime")),
    ("islands", ("/islands/",)),
    ("evaluation dispatch", ("/executor.py", "/ray_executor.py", "/evaluators/", "concurrent/futures", "threading",
                             "queue")),
    ("event loop", ("asyncio", "selectors", "/controller.py", "contextvars")),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=60, help="offline: candidates per problem")
    parser.add_argument("--workers", type=int, help="sandbox workers (default: 1 offline, 2 with --stub)")
    parser.add_argument("--stub", action="store_true", help="measure the engine against an instant stub model")
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="--stub: comma-separated run sizes (candidates) to report, in one run to the largest")
    parser.add_argument("--delay", type=float, default=0.0, help="--stub: seconds the stub waits before answering")
    parser.add_argument("--concurrency", type=int, help="--stub: candidates in flight (default: the engine's)")
    parser.add_argument("--ray", action="store_true", help="--stub: evaluate in Ray actors on a local Ray")
    parser.add_argument("--llm-client", choices=("auto", "litellm", "direct"), default="auto",
                        help="--stub: how the engine calls the stub (evoforge run --llm-client; default auto, "
                        "which calls this stub directly)")
    parser.add_argument("--profile", action="store_true", help="--stub: also split the controller's CPU by part")
    parser.add_argument("--profile-out", type=Path, help="--stub --profile: keep the cProfile file here")
    args = parser.parse_args()
    if args.stub:
        stub_benchmark(args)
    else:
        offline_benchmark(args.budget, args.workers or 1)


# ------------------------------------------------------------------------------------------------------- offline


def offline_benchmark(budget: int, workers: int) -> None:
    from evoforge.engine.run.config import RunConfig
    from evoforge.engine.run.search import run_search

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for problem in PROBLEMS:
            config = RunConfig(problem=str(REPO / "problems" / f"{problem}.py"), name=f"throughput-{problem}",
                               budget=budget, workers=workers)
            result = run_search(config, f"sqlite:///{Path(tmp) / (problem + '.db')}", progress=False)
            stats = result.stats
            evaluated = max(1, stats.evaluated)
            row = {"cand/s": stats.throughput, "valid": stats.valid_rate, "evaluated": stats.evaluated,
                   "duplicates": stats.duplicates, "failed": stats.failed_proposals}
            row.update({part: 1000 * stats.seconds.get(part, 0.0) / evaluated for part in PARTS})
            rows[problem] = row
    header = ["problem", "cand/s", "valid", "eval'd", "dup", "failed"] + [f"{p} ms" for p in PARTS]
    print(f"offline proposer, budget {budget}, workers {workers}")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, row in rows.items():
        cells = [name, f"{row['cand/s']:.2f}", f"{row['valid']:.0%}", str(row["evaluated"]),
                 str(row["duplicates"]), str(row["failed"])] + [f"{row[p]:.1f}" for p in PARTS]
        print(" | ".join(cells))


# ---------------------------------------------------------------------------------------------------------- stub


def stub_benchmark(args: argparse.Namespace) -> None:
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    workers = args.workers or 2
    with tempfile.TemporaryDirectory() as tmp, _stub_server(args.delay) as stub:
        folder = Path(tmp)
        problem = folder / "trivial.py"
        problem.write_text(TRIVIAL_PROBLEM)
        plain = _one_run(folder, problem, stub, sizes, workers, args, profile=None)
        split = None
        if args.profile:
            profiled = _one_run(folder, problem, stub, sizes, workers, args, profile=folder / "controller.prof")
            split = _cpu_split(folder / "controller.prof", profiled)
            if args.profile_out:
                args.profile_out.write_bytes((folder / "controller.prof").read_bytes())
    _print_stub(args, sizes, workers, plain, split)


class _stub_server:
    """The stub model server in a process of its own, so its CPU is not the controller's."""

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> _stub_server:
        self._process = subprocess.Popen([sys.executable, "-c", STUB_SERVER, str(REPO / "tests"), str(self._delay)],
                                         stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.base_url = self._process.stdout.readline().strip()
        self.pid = self._process.pid
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait()


def _one_run(folder: Path, problem: Path, stub: _stub_server, sizes: list[int], workers: int,
             args: argparse.Namespace, profile: Path | None) -> dict:
    """One `evoforge run` to the largest size; its timings, CPU and memory."""
    db = folder / ("profiled.db" if profile else "plain.db")
    report = folder / ("profiled.json" if profile else "plain.json")
    command = ["run", str(problem), "--name", "stub", "--db", f"sqlite:///{db}", "--budget", str(sizes[-1]),
               "--workers", str(workers), "--model", "openai/stub", "--api-base", stub.base_url, "--quiet",
               "--llm-timeout", "60", "--llm-client", args.llm_client]
    if args.concurrency:
        command += ["--concurrency", str(args.concurrency)]
    if args.ray:
        command.append("--ray")
    env = {**os.environ, "OPENAI_API_KEY": "sk-stub", "PYTHONPATH": str(REPO)}
    child = [sys.executable, "-c", _CHILD, json.dumps(command), str(report), str(profile or "")]
    started = time.time()
    process = subprocess.Popen(child, env=env, stdout=subprocess.DEVNULL, cwd=folder)
    memory = _ProcessWatch(process.pid, stub.pid)
    try:
        _print_as_reached(process, db, sizes, memory, live=profile is None)
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait()
        raise
    finally:
        memory.stop()
    if process.returncode != 0:
        raise SystemExit(f"the run failed (exit {process.returncode}); see its output above")
    stats = json.loads(report.read_text())
    stamps, first = _record_times(db)
    result = {"first_s": first - started, "total": len(stamps), "cpu_s": stats["cpu_s"], "loop_done": stats["done"],
              "main_thread_cpu_s": stats["main_thread_cpu_s"], "total_cpu_s": stats["total_cpu_s"],
              "wall_s": stamps[-1] - started, "sizes": {}, "stages": stats["stages"],
              "evaluated": stats["evaluated"]}
    for size in sizes:
        if size <= len(stamps):
            result["sizes"][size] = _size_row(stamps, size, memory)
    result["steady"] = _steady_rate(stamps)
    result["peak_rss_mb"] = memory.peak
    return result


_CHILD = r'''
import cProfile, json, resource, sys, time
from evoforge.engine.cli.main import main
from evoforge.engine.run.controller import Controller

command, report, profile = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU of the event loop's thread, not waiting
loop_only = Controller.run_to_budget
window = {}


def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


async def measured(self):
    """The search loop alone (start-up and the seed left out): its CPU, and its profile when asked."""
    window.update(done=-self.stats.done, cpu_s=-cpu(), main_thread_cpu_s=-time.thread_time(),
                  evaluated=-self.stats.evaluated, stages={k: -v for k, v in self.stats.seconds.items()})
    if profiler:
        profiler.enable()
    try:
        return await loop_only(self)
    finally:
        if profiler:
            profiler.disable()
        window["done"] += self.stats.done
        window["cpu_s"] += cpu()
        window["main_thread_cpu_s"] += time.thread_time()
        window["evaluated"] += self.stats.evaluated
        window["stages"] = {k: v + window["stages"].get(k, 0.0) for k, v in self.stats.seconds.items()}


Controller.run_to_budget = measured
code = main(command)
if profiler:
    profiler.dump_stats(profile)
with open(report, "w") as out:
    json.dump({**window, "total_cpu_s": cpu(), "code": code}, out)
sys.exit(code)
'''


def _size_row(stamps: list[float], size: int, memory: _ProcessWatch) -> dict:
    """Candidates/s, CPU per candidate by process and the controller's RSS over the last 10% before `size`."""
    low = max(0, size - max(1, size // 10))
    span = stamps[size - 1] - stamps[low] if size - 1 > low else float("nan")
    count = size - 1 - low
    used, first, last = memory.cpu_between(stamps[low], stamps[size - 1])
    # The samples (one every 0.2 s) cover less than the window: per candidate recorded between the two samples,
    # not over the whole window, or a short window (100 candidates in 0.6 s at 1k) reads a third too low.
    sampled = bisect.bisect_right(stamps, last) - bisect.bisect_right(stamps, first)
    cpu = {who: (1 if who.endswith(" faults") else 1000) * value / sampled if sampled else float("nan")
           for who, value in used.items()}
    return {"rate": count / span if span > 0 else float("nan"), "rss_mb": memory.at(stamps[size - 1]),
            "cpu_ms": cpu["controller"], "cpu": cpu}


def _print_as_reached(process: subprocess.Popen[bytes], db: Path, sizes: list[int], memory: _ProcessWatch,
                      live: bool) -> None:
    """Wait for the run; with `live`, print each size's row as soon as the run has passed it, so that a run
    stopped early (a 100k run on a loaded machine) still tells what it reached."""
    waiting = list(sizes) if live else []
    while True:
        try:
            process.wait(timeout=2.0)
            return
        except subprocess.TimeoutExpired:
            pass
        if not waiting or _recorded(db) < waiting[0]:
            continue
        stamps, _first = _record_times(db)
        size = waiting[0]
        if time.time() < stamps[size - 1] + 1.0:  # the watch's samples must reach past the size's moment
            continue
        waiting.pop(0)
        if size == sizes[0]:
            print(f"as reached (the whole report follows at the end): {_ROW_HEADER}", flush=True)
        row = _size_row(stamps, size, memory)
        roles = " | ".join(f"{row['cpu'][role]:.1f}" for role in _ProcessWatch.ROLES)
        print(f"{_row_cells(size, row)} | sandboxes by process (servers | harnesses | zygotes | candidates | other): "
              f"{roles} | load {os.getloadavg()[0]:.1f} at {time.strftime('%H:%M:%S', time.gmtime())} UTC", flush=True)


def _recorded(db: Path) -> int:
    """Proposals the run has recorded so far (0 before its database exists); read-only, beside the writer."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return int(connection.execute("SELECT count(*) FROM proposals").fetchone()[0])
    except sqlite3.Error:  # not created yet, or busy: look again at the next poll
        return 0


def _record_times(db: Path) -> tuple[list[float], float]:
    """Wall-clock times (epoch seconds) at which each proposed candidate was recorded, in order; and the first."""
    import sqlite3

    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT created_at FROM proposals ORDER BY seq").fetchall()
    from datetime import datetime, timezone

    stamps = sorted(datetime.fromisoformat(r[0]).replace(tzinfo=timezone.utc).timestamp() for r in rows)
    return stamps, stamps[0]


def _steady_rate(stamps: list[float]) -> float:
    """Candidates/s from the 10th to the 90th percentile of the run: start-up and the tail left out."""
    low, high = len(stamps) // 10, (9 * len(stamps)) // 10
    return (high - low) / (stamps[high] - stamps[low]) if high > low and stamps[high] > stamps[low] else float("nan")


class _ProcessWatch:
    """Samples every 0.2 s the controller's resident memory and CPU time, the CPU time of everything it started
    (the sandboxes: their servers, harnesses and candidates, or Ray's processes) and the stub model's, and the
    sandboxes' minor page faults by process, for their values at a moment and the peak."""

    WHO = ("controller", "sandboxes", "stub model")
    # The sandboxes' CPU by process (local workers): each server's own, the harnesses it forked (live, and reaped:
    # orphans it reaped count here too), each zygote's own, and the candidates' processes the zygote forked.
    ROLES = ("server", "harness", "zygote", "candidate", "other")

    def __init__(self, pid: int, stub_pid: int) -> None:
        self._pid, self._stub_pid = pid, stub_pid
        self._status = Path(f"/proc/{pid}/status")
        self._tick = os.sysconf("SC_CLK_TCK")
        self._samples: list[tuple[float, float]] = []
        self._cpu: list[tuple[float, dict[str, float]]] = []
        self._role: dict[tuple[int, int], str] = {}  # (pid, start time) -> role, decided once per live process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            try:
                text = self._status.read_text()
            except OSError:
                return
            now = time.time()
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    self._samples.append((now, int(line.split()[1]) / 1024))
            own, waited, faults, waited_faults, parents, started = self._processes()
            below = [p for p in _tree(self._pid, parents) if p != self._pid]
            # a process's own CPU, and that of its children it has waited for (they are gone from /proc)
            self._cpu.append((now, {"controller": own.get(self._pid, 0.0),
                                    "sandboxes": sum(own.get(p, 0.0) + waited.get(p, 0.0) for p in below),
                                    "stub model": own.get(self._stub_pid, 0.0),
                                    **self._by_role(below, own, waited, parents, started),
                                    **{f"{role} faults": n for role, n in
                                       self._by_role(below, faults, waited_faults, parents, started).items()}}))

    def _by_role(self, below: list[int], own: dict[int, float], waited: dict[int, float], parents: dict[int, int],
                 started: dict[int, int]) -> dict[str, float]:
        """The sandboxes' CPU by role (ROLES): a server's waited-for children are harnesses, a zygote's are
        candidates' processes."""
        totals = dict.fromkeys(self.ROLES, 0.0)
        # Only live processes keep a role: a 100k run forks far more processes than pid_max (often 32768), and
        # the dict would grow with each one (and the zygote look-up below with it).
        self._role = {key: role for key, role in self._role.items() if started.get(key[0]) == key[1]}

        def key(pid: int) -> tuple[int, int]:  # a pid is reused once freed: with its start time, it is one process
            return pid, started.get(pid, 0)

        for pid in sorted(below, key=lambda p: started.get(p, 0)):  # parents first, and a server's zygote first
            role = self._role.get(key(pid))
            if role is None:
                parent = self._role.get(key(parents.get(pid, 0)))
                if parent == "server":
                    siblings = [k for k, r in self._role.items() if r == "zygote" and parents.get(k[0]) == parents[pid]]
                    role = "harness" if siblings else "zygote"  # the zygote is a server's first child
                elif parent in ("zygote", "candidate"):
                    role = "candidate"
                elif parent == "harness":
                    role = "harness"
                else:
                    role = "server" if _is_server(pid) else "other"
                if role != "other":  # bwrap, or unshare's shell until it becomes the server: looked at again
                    self._role[key(pid)] = role
            totals[role] += own.get(pid, 0.0)
            reaped = {"server": "harness", "zygote": "candidate"}.get(role, role)
            totals[reaped] += waited.get(pid, 0.0)
        return totals

    def _processes(self) -> tuple[dict[int, float], dict[int, float], dict[int, float], dict[int, float],
                                  dict[int, int], dict[int, int]]:
        """Every process's own CPU seconds, its waited-for children's, its own and its waited-for children's minor
        page faults, its parent and its start time."""
        own, waited, faults, waited_faults, parents, started = {}, {}, {}, {}, {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()  # after the name
            except OSError:
                continue
            pid = int(entry)
            parents[pid] = int(fields[1])
            own[pid] = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
            waited[pid] = (int(fields[13]) + int(fields[14])) / self._tick  # cutime + cstime
            faults[pid], waited_faults[pid] = float(fields[7]), float(fields[8])  # minflt, cminflt
            started[pid] = int(fields[19])
        return own, waited, faults, waited_faults, parents, started

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, moment: float) -> float:
        before = [mb for when, mb in self._samples if when <= moment]
        return before[-1] if before else float("nan")

    def cpu_between(self, start: float, end: float) -> tuple[dict[str, float], float, float]:
        """CPU seconds the controller, the sandboxes and the stub used between the first and the last sample
        inside two moments, the sandboxes' page faults by process (ROLES, as "ROLE faults"), and those samples'
        times (NaN with fewer than two samples)."""
        inside = [(when, cpu) for when, cpu in self._cpu if start <= when <= end]
        keys = self.WHO + self.ROLES + tuple(f"{role} faults" for role in self.ROLES)
        if len(inside) < 2:
            return dict.fromkeys(keys, float("nan")), float("nan"), float("nan")
        (first, before), (last, after) = inside[0], inside[-1]
        return {who: after[who] - before[who] for who in keys}, first, last

    @property
    def peak(self) -> float:
        return max((mb for _, mb in self._samples), default=float("nan"))


def _is_server(pid: int) -> bool:
    """Whether pid runs Python on the sandbox server's module (bwrap and unshare have it in their arguments)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(argv[0].decode(errors="replace")).name.startswith("python") and (
        b"evoforge.evaluators.inside.server" in argv)


def _tree(root: int, parents: dict[int, int]) -> list[int]:
    """root and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _cpu_split(profile: Path, profiled: dict) -> dict[str, float]:
    """Shares of the profiled controller CPU by part."""
    stats = pstats.Stats(str(profile))
    totals = dict.fromkeys([name for name, _ in SPLIT] + ["other"], 0.0)
    table = stats.stats  # type: ignore[attr-defined]

    def part_of(function: tuple[str, int, str], depth: int = 0) -> dict[str, float]:
        """Where a function's own time goes: its part, or for a built-in, its callers' parts in proportion."""
        filename, _line, name = function
        if filename == "~" and depth < 3 and function in table and table[function][4]:
            callers = table[function][4]
            weights = {caller: timing[2] for caller, timing in callers.items()}
            whole = sum(weights.values()) or 1.0
            shares: dict[str, float] = {}
            for caller, weight in weights.items():
                for part, share in part_of(caller, depth + 1).items():
                    shares[part] = shares.get(part, 0.0) + share * weight / whole
            return shares
        where = f"{filename}:{name}"
        return {next((part for part, fragments in SPLIT if any(f in where for f in fragments)), "other"): 1.0}

    for function, (_cc, _nc, own, _cum, _callers) in table.items():
        for part, share in part_of(function).items():
            totals[part] += own * share
    profiled_main = sum(totals.values())
    other_threads = max(0.0, 1.0 - profiled["main_thread_cpu_s"] / profiled["cpu_s"]) if profiled["cpu_s"] else 0.0
    if profiled_main <= 0:
        return {}
    split = {part: (1.0 - other_threads) * seconds / profiled_main for part, seconds in totals.items()}
    split["other threads"] = other_threads
    return split


def _by_process(run: dict, sizes: list[int], what: str, suffix: str, decimals: int) -> None:
    """One table of the sandboxes' `what` per candidate, a column per process role (`role + suffix` in the rows)."""
    print()
    print(f"candidates | the sandboxes' {what}")
    print("--- | --- | --- | --- | --- | ---")
    for size in sizes:
        row = run["sizes"].get(size)
        if row:
            cells = (f"{row['cpu'][role + suffix]:.{decimals}f}" for role in _ProcessWatch.ROLES)
            print(f"{size} | " + " | ".join(cells))


_ROW_HEADER = ("candidates | cand/s (last 10%) | CPU ms per candidate (last 10%): controller | sandboxes | "
               "stub model | all, and CPUs busy | controller RSS MB")


def _row_cells(size: int, row: dict) -> str:
    """One size's row of the main table (_ROW_HEADER)."""
    cpu = row["cpu"]
    whole = sum(cpu[who] for who in _ProcessWatch.WHO)
    return (f"{size} | {row['rate']:.1f} | {cpu['controller']:.1f} | {cpu['sandboxes']:.1f} | "
            f"{cpu['stub model']:.1f} | {whole:.1f} ({whole * row['rate'] / 1000:.2f} CPUs) | {row['rss_mb']:.0f}")


def _print_stub(args: argparse.Namespace, sizes: list[int], workers: int, run: dict,
                split: dict[str, float] | None) -> None:
    where = "Ray actors (local Ray)" if args.ray else "local sandbox workers"
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")
    print(f"stub model (answers after {args.delay:g} s) called with --llm-client {args.llm_client}"
          f"{' (the direct client)' if args.llm_client == 'auto' else ''}, trivial problem, {workers} workers, "
          f"{where}, concurrency {args.concurrency or 'default'}; one run of {sizes[-1]} candidates")
    print(_ROW_HEADER)
    print("--- | --- | --- | --- | --- | --- | ---")
    for size in sizes:
        row = run["sizes"].get(size)
        if row:
            print(_row_cells(size, row))
    if not args.ray:
        _by_process(run, sizes, "CPU ms per candidate (last 10%) by process: servers | harnesses (forked by the "
                    "servers) | zygotes | candidates' processes (forked by the zygotes) | other (bwrap)", "", 1)
        _by_process(run, sizes, "minor page faults per candidate (last 10%; steadier than CPU on a loaded machine) "
                    "by process: servers | harnesses | zygotes | candidates' processes | other", " faults", 0)
    evaluated = max(1, run["evaluated"])
    print()
    print("stage of a candidate (search loop; wall time, overlapping across candidates in flight) | ms per candidate "
          "evaluated")
    print("--- | ---")
    for part in PARTS:
        print(f"{part} | {1000 * run['stages'].get(part, 0.0) / evaluated:.1f}")
    per_candidate = 1000 * run["cpu_s"] / max(1, run["loop_done"])
    print()
    print("measure | value")
    print("--- | ---")
    print(f"time to first candidate | {run['first_s']:.2f} s")
    print(f"steady state (10th-90th percentile) | {run['steady']:.1f} cand/s")
    print(f"whole run, start-up included | {run['total'] / run['wall_s']:.1f} cand/s ({run['wall_s']:.1f} s)")
    print(f"controller CPU per candidate, search loop | {per_candidate:.1f} ms")
    print(f"controller CPU, whole process (start-up included) | {run['total_cpu_s']:.1f} s")
    print(f"controller peak RSS | {run['peak_rss_mb']:.0f} MB")
    if split:
        print()
        print("controller CPU per candidate, by part (cProfile shares x unprofiled CPU) | ms | share")
        print("--- | --- | ---")
        for part, share in sorted(split.items(), key=lambda item: -item[1]):
            print(f"{part} | {share * per_candidate:.1f} | {share:.0%}")


if __name__ == "__main__":
    main()
