"""The engine's side of evaluation: a pool of sandbox fork servers, and trusted scoring of what they return.

`SandboxPool(problem, workers)` starts one fork server per worker (see `evaluators.inside.server`) at the strongest
isolation level this machine offers (`evaluators.isolation`). `evaluate(code)` sends a candidate to a free server,
and scores its plain-data outputs with the problem's trusted `score` as they stream in (`evaluators.scoring`),
stopping it early when one is invalid or a cascade stage misses its threshold.
Whatever the candidate does, `evaluate` returns an `Evaluation`; a server that dies is restarted on its next use.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from evoforge.evaluators import isolation, validator
from evoforge.evaluators.cleanup import SHARED_TMP_DIRS, remove_owned_by, remove_tree
from evoforge.evaluators.compile_store import CompileStore
from evoforge.evaluators.cpus import CpuClaim, claim_cpu
from evoforge.evaluators.problem import Problem
from evoforge.evaluators.scoring import BehaviourProbe, StreamScorer, plan_steps
from evoforge.evaluators.statuses import BEHAVIOUR_INPUTS, DEFAULT_BEHAVIOUR_INPUTS, EVALUATION_STATUSES
from evoforge.evaluators.wire import COMPILE_ALLOWANCE_S, FrameReader, WireError, encode_value, write_frame

MAX_REPLY = 512 * 1024 * 1024  # all outputs of one candidate (each one is capped at 64 MiB by the server)
START_TIMEOUT_S = 120.0  # a server must load the problem (and warm numba) within this
REPLY_SLACK_S = 30.0  # beyond the server's own deadlines, before the engine gives up on a server
UID_BASE = 1_900_000_000  # candidates run as uid UID_BASE + n (as root): ids no real account uses
UID_SPAN = 2_000_000_000  # drawn at random: two pools on one machine (Ray actors, say) must not share a uid
BASELINE_HEADROOM_MB = 64


@dataclass(frozen=True)
class Evaluation:
    """What evaluating one program produced: status, scores, the reason for a failure, timings in seconds."""

    status: str  # ok | invalid | error | timeout | memory | crashed | culled
    score: float | None  # the aggregate score, only when ok
    scores: dict[str, float]  # per input name: all when ok, those scored before the cull when culled
    error: str | None  # human-readable reason when not ok
    timings: dict[str, float]  # sandbox_start, compile, solve, score, total (seconds)
    compiled: bool | None  # True numba compiled, False the functions ran as Python, None numba not requested
    stdout: str = field(default="", repr=False)  # the candidate's stdout+stderr, capped at 64 KiB
    stage: int | None = None  # the 1-based cascade stage that culled it (status 'culled'); None otherwise
    behaviour: str | None = None  # digest of its outputs on the first inputs (see evaluators.scoring)
    duplicate_of: int | None = None  # status 'duplicate': the program that behaved the same on the first inputs
    metrics: dict[str, float] = field(default_factory=dict)  # named metrics over every input, when ok (if any)
    feedback: str | None = None  # what score() said about the outputs, bounded (see Problem.score_input)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class SandboxError(RuntimeError):
    """A sandbox server could not be started; the message says why and what to do."""


class _WorkerDied(Exception):
    pass


_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def without_addresses(error: str) -> str:
    """An error with each memory address (`<function f at 0x7f3a...>`) written `0x...`: the error is recorded and
    shown in the island's next prompts, and an address differs from run to run (each server process is laid out
    anew), so with it a seed would not fix the prompts, nor a replay find the recorded answers."""
    return _ADDRESS.sub("0x...", error)


def _timings(**values: float) -> dict[str, float]:
    base = {"sandbox_start": 0.0, "compile": 0.0, "solve": 0.0, "score": 0.0, "total": 0.0}
    base.update(values)
    return base


class _Worker:
    """One fork server process and the pipes to it."""

    def __init__(self, pool: SandboxPool, index: int):
        self.pool = pool
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: FrameReader | None = None
        self.log: Any = None
        self.info: dict[str, Any] = {}
        self.next_id = 0
        self.uid = 0
        self.scratch = ""
        self.cpu_claim: CpuClaim | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _cpu(self) -> int:
        """The CPU this worker's candidates are pinned to (all their threads and children share that one core),
        claimed once so that workers of every pool on the machine spread over the CPUs."""
        if self.cpu_claim is None:
            self.cpu_claim = claim_cpu(self.index)
        return self.cpu_claim.cpu

    def spawn(self) -> None:
        pool = self.pool
        serial = pool.serial()
        self.uid = UID_BASE + secrets.randbelow(UID_SPAN) if isolation.is_root() else 0
        if pool.isolation == "rlimits-only":  # no private /tmp: each server gets its own folder in ours
            self.scratch = os.path.join(pool.host_scratch, f"server-{serial}")
            os.mkdir(self.scratch, 0o711)
        else:
            self.scratch = "/tmp"
        args = [str(pool.problem.path), json.dumps(pool.problem.overrides), str(self.uid), pool.isolation,
                self.scratch, os.getcwd(), str(self._cpu())]
        plan = isolation.launch_plan(pool.isolation, pool.problem.path, args, pool.host_scratch)
        # Open for the server's whole life (its stderr), closed when the server is: no `with` fits.
        self.log = tempfile.TemporaryFile(prefix="evoforge-sandbox-log-")  # noqa: SIM115
        # Spawned from one long-lived thread: bwrap --die-with-parent follows the thread that forked it.
        self.proc = pool.spawner.submit(
            subprocess.Popen, plan.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            env=plan.env, start_new_session=True, close_fds=True, cwd="/").result()
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.reader = FrameReader(self.proc.stdout.fileno(), MAX_REPLY)
        store = pool.compile_store
        try:  # the first frame: the problem's compiled harnesses, if an earlier server made them
            write_frame(self.proc.stdin.fileno(), {"op": "init", "jit": store.harness() if store else {}})
        except OSError:
            pass  # the server died at once: wait_ready says why

    def wait_ready(self) -> None:
        assert self.reader is not None
        try:
            info = self.reader.read(time.monotonic() + START_TIMEOUT_S)
        except WireError as exc:
            self.kill()
            raise SandboxError(f"sandbox server ({self.pool.isolation}) for {self.pool.problem.path} did not start: "
                               f"{exc}\n{self.log_tail()}") from None
        if info.get("ready") is not True:
            self.kill()
            raise SandboxError(f"sandbox server could not load {self.pool.problem.path}: {info.get('error')}")
        self.info = info
        self.pool.check_ready(info)
        if self.pool.compile_store is not None:
            self.pool.compile_store.keep_harness(info.get("jit_new"))

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def log_tail(self) -> str:
        if self.log is None:
            return ""
        try:
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - 2000))
            return self.log.read().decode("utf-8", errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def call(self, request: dict[str, Any], timeout_s: float,
             on_output: Callable[[Any, Any], bool]) -> dict[str, Any]:
        """Send one request; pass each streamed output to on_output (False: stop the candidate); return the reply."""
        assert self.proc is not None and self.proc.stdin is not None and self.reader is not None
        self.next_id += 1
        request = dict(request, id=self.next_id)
        deadline = time.monotonic() + timeout_s
        stopped = False
        try:
            write_frame(self.proc.stdin.fileno(), request)
            while True:
                reply = self.reader.read(deadline)
                if reply.get("id") != self.next_id:
                    continue
                if reply.get("t") != "output":
                    return reply
                if not on_output(reply.get("name"), reply.get("value")) and not stopped:
                    write_frame(self.proc.stdin.fileno(), {"op": "stop", "id": self.next_id})
                    stopped = True
        except (OSError, WireError) as exc:
            reason = "did not answer in time" if isinstance(exc, TimeoutError) or "deadline" in str(exc) else str(exc)
            self.kill()
            code = self.proc.returncode
            tail = self.log_tail()
            raise _WorkerDied(f"the sandbox server died or broke the protocol ({reason}; exit status {code})"
                              + (f": {tail[-500:]}" if tail else "")) from None

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.pool.isolation == "rlimits-only":
            self._clean_up_after_server()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def _clean_up_after_server(self) -> None:
        """Without a pid namespace, what a dead server's candidates left (processes, files) is removed here."""
        if self.uid:
            for _ in range(100):
                strays = _processes_of(self.uid)
                if not strays:
                    break
                for pid in strays:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                time.sleep(0.01)
            for directory in SHARED_TMP_DIRS:
                remove_owned_by(directory, self.uid)
        if self.scratch.startswith(self.pool.host_scratch):
            remove_tree(self.scratch)

    def stop(self) -> None:
        """Ask the server to exit (EOF on its stdin), then make sure it has."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        if self.log is not None:
            self.log.close()
        if self.cpu_claim is not None:
            self.cpu_claim.release()
            self.cpu_claim = None


SCRATCH_PREFIX = "evoforge-sandbox-"  # + the engine's pid + "-": a folder whose engine died is removed later


def _remove_scratch_of_dead_engines() -> None:
    """Remove the scratch folders of engines that were killed (kill -9 leaves no chance to clean up)."""
    root = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(root) if n.startswith(SCRATCH_PREFIX)]
    except OSError:
        return
    for name in names:
        pid_text = name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            remove_tree(os.path.join(root, name))
        except PermissionError:
            pass  # alive, someone else's


class SandboxPool:
    """A pool of sandboxed fork servers for one problem; `evaluate` is blocking and thread-safe."""

    isolation: str  # 'bwrap' | 'unshare' | 'rlimits-only': what this machine gave us
    seccomp: bool  # whether candidates also run under the seccomp filter (x86_64 only)

    def __init__(self, problem: Problem, workers: int, *, level: str | None = None, check_code: bool = True,
                 behaviour_inputs: str = DEFAULT_BEHAVIOUR_INPUTS):
        """`check_code=False` skips the language check and gives candidates the full builtins (their process and
        its limits stay): only for code a person vouches for, and for testing the operating-system layers.
        `behaviour_inputs`: the inputs whose outputs fingerprint a candidate, "first" or "all" (scoring.py)."""
        if workers < 1:
            raise ValueError(f"workers={workers}: a sandbox pool needs at least one worker")
        if behaviour_inputs not in BEHAVIOUR_INPUTS:
            raise ValueError(f"behaviour_inputs={behaviour_inputs!r}: use one of {', '.join(BEHAVIOUR_INPUTS)}")
        self.problem = problem
        self.check_code = check_code
        self.behaviour_inputs = behaviour_inputs
        self.isolation = isolation.detect_level(problem.path, level)
        self._encoded: dict[tuple[bool, str], Any] = {}  # (held out, name) -> the input as plain data
        self._encode_lock = threading.Lock()
        self._serial = 0
        self._serial_lock = threading.Lock()
        self._closed = False
        # numba compilations (harnesses, and programs by code hash) kept on disk for every later server and run
        self.compile_store = CompileStore(problem.source_hash) if problem.settings.numba else None
        _remove_scratch_of_dead_engines()
        self.host_scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        os.chmod(self.host_scratch, 0o711)  # candidates traverse it to their own 0700 directory
        self.spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evoforge-sandbox-spawner")
        self._workers = [_Worker(self, i) for i in range(workers)]
        self._free: queue.Queue[_Worker] = queue.Queue()
        try:
            for worker in self._workers:  # start all, then wait for all: they load in parallel
                worker.spawn()
            for worker in self._workers:
                worker.wait_ready()
        except BaseException:
            self.close()
            raise
        for worker in self._workers:
            self._free.put(worker)
        self.seccomp = bool(self._workers[0].info.get("seccomp"))

    def serial(self) -> int:
        with self._serial_lock:
            self._serial += 1
            return self._serial

    def check_ready(self, info: dict[str, Any]) -> None:
        """Refuse a server whose problem file differs from ours or whose baseline exceeds the limit."""
        if info.get("source_hash") != self.problem.source_hash:
            raise SandboxError(f"{self.problem.path} changed on disk after the engine loaded it; the sandbox would "
                               "run another version. Reload the problem (restart the run) to use the new file.")
        baseline = float(info.get("baseline_mb") or 0)
        limit = self.problem.settings.memory_limit_mb
        if baseline + BASELINE_HEADROOM_MB > limit:
            raise SandboxError(f"{self.problem.path}: memory_limit_mb={limit} is below what the sandbox itself "
                               f"needs ({baseline:.0f} MB of address space with numpy"
                               f"{' and numba' if self.problem.settings.numba else ''} loaded); "
                               f"set memory_limit_mb to at least {int(baseline + 256)}")

    # -- evaluation

    def refusal(self, code: str) -> Evaluation | None:
        """The language check's refusal of `code` as an evaluation (status 'error'), or None when it passes.

        The engine calls it on its event loop's thread and then `evaluate(..., checked=True)` in a worker thread:
        CPython 3.11 keeps one recursion count for building `ast` objects per interpreter, so two threads parsing
        at once can fail with "AST constructor recursion depth mismatch"; only one thread of the engine parses."""
        try:
            if self.problem.project is not None:  # nothing outside the blocks may change, checked or not
                self.problem.project.check(code, language=self.check_code)
            elif self.check_code:
                validator.check(code, "<candidate>")
        except validator.Refused as exc:  # the model learns the rule from the error, as from any other
            return Evaluation("error", None, {}, str(exc), _timings(), None)
        return None

    def evaluate(self, code: str, input_names: Sequence[str] | None = None, *, held_out: bool = False,
                 cascade: bool = True, probe: BehaviourProbe | None = None, checked: bool = False) -> Evaluation:
        """Run `code` (the evolved function(s)) on the named inputs in a sandbox and score it on the trusted side.

        A training evaluation of all inputs follows the problem's cascade (`cascade=False` turns that off): its
        stages run first, and a stage whose score misses its threshold stops the candidate with status 'culled'.
        `probe`, given the digest of the outputs on the first inputs, names a program that behaved the same; the
        candidate then stops there with status 'duplicate'. `checked`: `refusal` has passed it already.
        """
        if self._closed:
            raise RuntimeError("this SandboxPool is closed")
        source = self.problem.held_out if held_out else self.problem.inputs
        names = list(source) if input_names is None else list(input_names)
        unknown = [n for n in names if n not in source]
        if unknown or not names:
            kind = "held-out inputs" if held_out else "inputs"
            raise ValueError(f"unknown {kind} {unknown} for {self.problem.path}; it has {list(source)}"
                             if unknown else f"no {kind} to evaluate on")
        refused = None if checked else self.refusal(code)
        if refused is not None:
            return refused
        try:
            values = self._values(names, held_out)
        except WireError as exc:
            raise ValueError(f"{self.problem.path}: input values must be plain data to reach the sandbox: {exc}"
                             ) from None
        steps = plan_steps(self.problem, names, cascade and not held_out and input_names is None)
        scorer = StreamScorer(self.problem, source, steps, probe=None if held_out else probe,
                              behaviour_inputs=self.behaviour_inputs)
        worker = self._free.get()
        t0 = time.perf_counter()
        try:
            reply = self._run(worker, code, scorer.order, values, scorer.add)
        finally:
            self._free.put(worker)
        if isinstance(reply, Evaluation):
            return replace(reply, timings=dict(reply.timings, total=time.perf_counter() - t0))
        return self._conclude(reply, names, scorer, t0)

    def _values(self, names: list[str], held_out: bool) -> dict[str, Any]:
        """The named inputs as plain data, encoded once per pool: each evaluation is sent its own inputs only."""
        source = self.problem.held_out if held_out else self.problem.inputs
        with self._encode_lock:
            for name in names:
                if (held_out, name) not in self._encoded:
                    self._encoded[held_out, name] = encode_value(source[name])
            return {name: self._encoded[held_out, name] for name in names}

    def _run(self, worker: _Worker, code: str, names: list[str], values: dict[str, Any],
             on_output: Callable[[Any, Any], bool]) -> dict[str, Any] | Evaluation:
        if not worker.alive:
            worker.kill()
            try:
                worker.start()
            except SandboxError as exc:
                return Evaluation("crashed", None, {}, f"could not restart the sandbox server: {exc}",
                                  _timings(), None)
        limit = self.problem.settings.time_limit_s
        timeout = limit * (len(names) + 1) + COMPILE_ALLOWANCE_S + 5 + REPLY_SLACK_S
        store = self.compile_store
        request = {"op": "eval", "code": code, "inputs": names, "values": values, "checked": self.check_code,
                   "jit": store.program(code) if store else {}}
        try:
            reply = worker.call(request, timeout, on_output)
            if store is not None:
                store.keep_program(code, reply.get("jit_new"))
            return reply
        except _WorkerDied as exc:
            return Evaluation("crashed", None, {}, str(exc), _timings(), None)

    def _conclude(self, reply: dict[str, Any], names: list[str], scorer: StreamScorer, t0: float) -> Evaluation:
        """Turn the server's reply and what the scorer saw into the Evaluation; the scorer's verdict comes first."""
        status = reply.get("status")
        error = reply.get("error")
        stdout = out if isinstance(out := reply.get("stdout"), str) else ""
        compiled = reply.get("compiled") if isinstance(reply.get("compiled"), bool) else None
        if not self.problem.settings.numba:
            compiled = None
        elif compiled is None:  # numba was on, but nothing was compiled: the functions ran as Python
            compiled = False
        raw_timings = got if isinstance(got := reply.get("timings"), dict) else {}
        timings = _timings(**{k: float(v) for k, v in raw_timings.items()
                              if k in ("sandbox_start", "compile", "solve") and isinstance(v, (int, float))
                              and not isinstance(v, bool)})

        def result(status: str, error: str | None, score: float | None = None, stage: int | None = None
                   ) -> Evaluation:
            error = None if error is None else without_addresses(error)
            timings["score"] = scorer.seconds
            timings["total"] = time.perf_counter() - t0
            scores = dict(scorer.scores) if status in ("ok", "culled") else {}
            duplicate_of = scorer.verdict.duplicate_of if scorer.verdict is not None else None
            metrics = dict(scorer.metrics) if status == "ok" else {}
            return Evaluation(status, score, scores, error, timings, compiled, stdout, stage, scorer.behaviour,
                              duplicate_of, metrics, scorer.feedback)

        # What the trusted side decided on streamed outputs stands, whatever the candidate did after.
        if scorer.verdict is not None:
            return result(scorer.verdict.status, scorer.verdict.error, stage=scorer.verdict.stage)
        if status not in EVALUATION_STATUSES or status == "culled" or not (error is None or isinstance(error, str)):
            return result("crashed", f"malformed reply from the sandbox (status {str(status)[:40]!r})")
        if status != "ok":
            return result(status, error or f"{status} (no reason given)")
        if not scorer.complete:
            return result("crashed", "the sandbox reply lacks some outputs")
        score = scorer.final(names)
        if scorer.verdict is not None:
            return result(scorer.verdict.status, scorer.verdict.error)
        return result("ok", None, score)

    # -- lifecycle

    @property
    def workers(self) -> int:
        return len(self._workers)

    def close(self) -> None:
        """Stop every server and remove the pool's scratch space (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.stop()
        self.spawner.shutdown(wait=False)
        remove_tree(self.host_scratch)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _processes_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose /proc entry belongs to uid."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except (OSError, IndexError):
            continue
        found.append(int(entry))
    return found
