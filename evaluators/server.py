"""The fork server that runs inside a sandbox: `python -m evaluators.server PROBLEM OVERRIDES_JSON UID LEVEL`.

It loads the problem once (numpy, numba and the inputs stay warm), then for each request from the engine forks a
fresh child that becomes the candidate: new session, rlimits, private scratch directory, unprivileged uid, captured
and capped stdout/stderr, seeded RNGs. The server alone enforces the wall-clock deadline per input (it does not
rely on the candidate's cooperation) and, when the candidate is done or out of time, kills it and every process it
left behind: the server is a child subreaper, so orphans come back to it, and it kills its children until none
is left. It talks to the engine over its stdin/stdout with the frames of `evaluators.wire`; nothing it receives
from the child is trusted beyond being data. Each output goes to the engine as soon as the child sends it, and
the engine may answer `stop` (an invalid output, or a cascade stage below its threshold): the child is then killed.
With numba on, each program's compilation is kept in numba's on-disk cache under its code hash (`CompileCache`),
so that evaluating the same program again (held-out inputs, a replay) loads it instead of compiling.
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import json
import math
import os
import select
import signal
import stat
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from evoforge.evaluators import harness, seccomp
from evoforge.evaluators.cleanup import remove_tree
from evoforge.evaluators.wire import FrameReader, WireError, inputs_digest, write_frame

MAX_REQUEST = 16 * 1024 * 1024  # a candidate's code and the input names
MAX_RESULT = 64 * 1024 * 1024  # one output frame from a candidate (JSON); larger outputs are 'invalid'
STDOUT_CAP = 64 * 1024  # bytes of a candidate's stdout/stderr kept; the rest is read and dropped
COMPILE_ALLOWANCE_S = 60.0  # numba compile time per candidate that does not count against any input's limit
COMPILE_CACHE_PROGRAMS = 64  # programs whose numba compilations a server keeps on disk (least recently used go)
COMPILE_CACHE_MAX_BYTES = 32 * 1024 * 1024  # one program's cache folder beyond this was stuffed, not compiled
COMPILE_CACHE_MAX_ENTRIES = 256
MAX_TEMP_FILES = 100_000  # files and folders one candidate may create in /tmp and /var/tmp
MEMORY_POLL_S = 0.05  # how often the memory of a candidate's processes together is summed
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
COMPILE_ESTIMATE_S = 0.3  # what a compilation is assumed to cost under numba="auto" until this server has seen some
COMPILE_SAMPLES = 16  # recent compile times whose median is the estimate
FILE_LIMIT = 16 * 1024 * 1024  # RLIMIT_FSIZE: the largest file a candidate may write
NOFILE_LIMIT = 64
NPROC_LIMIT = 16  # per sandbox uid, so it only binds after the uid switch
PR_SET_CHILD_SUBREAPER = 36
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")
PRIVATE_SWEEP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # a fresh tmpfs each under bwrap and unshare
SWEEP_DEPTH = 4  # world-writable folders inside those, this deep, are swept too


def main(argv: list[str]) -> int:
    problem_path, overrides_json, uid_text, level, scratch_root, workdir, cpu_text = argv
    # Move the engine's pipes out of the way so that a forked candidate can be handed clean fds 0-2.
    req_fd, resp_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    uid = int(uid_text)
    try:
        os.chdir(workdir)  # relative paths in the overrides resolve as they did for the engine
        problem = harness.load(problem_path, json.loads(overrides_json))
        os.chdir("/")
    except BaseException as exc:  # the engine loaded the same file, so this is rare: report it and stop
        write_frame(resp_fd, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    vm_mb = _vm_size_mb()
    digests = {"inputs": inputs_digest(problem.inputs), "held_out": inputs_digest(problem.held_out)}
    write_frame(resp_fd, {"ready": True, "pid": os.getpid(), "level": level, "uid": uid,
                          "seccomp": seccomp.supported(), "inputs": list(problem.inputs),
                          "held_out": list(problem.held_out), "baseline_mb": vm_mb,
                          "source_hash": problem.source_hash, "digests": digests})
    reader = FrameReader(req_fd, MAX_REQUEST)
    server = Server(problem, uid, scratch_root, reader, resp_fd, cpu=int(cpu_text),
                    private_tmp=level != "rlimits-only")
    while True:
        try:
            request = reader.read(None)
        except WireError:
            return 0  # the engine went away (or broke the protocol): a sandbox has nothing to do alone
        if request.get("op") == "stop":
            continue  # a stop for a candidate that had already finished
        try:
            reply = server.evaluate(request)
        except Exception:  # a bug here must reach the engine as a reason, not as a dead server
            reply = {"status": "crashed", "error": "sandbox server error:\n" + traceback.format_exc()[-2000:]}
        reply["id"] = request.get("id")
        write_frame(resp_fd, reply)
        if reader.closed:
            return 0


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _vm_size_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Server:
    """Runs one candidate at a time in a forked child and turns what happened into a reply."""

    def __init__(self, problem: Any, uid: int, scratch_root: str, requests: FrameReader,
                 resp_fd: int, *, cpu: int, private_tmp: bool):
        self.problem = problem
        self.requests = requests  # read during an evaluation too: the engine may stop a candidate early
        self.resp_fd = resp_fd
        self.uid = uid
        self.scratch_root = scratch_root
        self.cpu = cpu  # every candidate process runs on this one CPU: forks and threads cannot use more
        self.switch_uid = os.geteuid() == 0 and uid > 0
        # What a candidate left in the temp dirs is removed after it, so that the next one neither reads it nor
        # inherits a full /tmp. As root, candidates have a uid of their own: sweep every temp dir they can reach.
        # Otherwise they have ours, whose files on the machine are the user's own: sweep private temp dirs only.
        self.sweep_dirs = SHARED_TMP_DIRS if self.switch_uid else PRIVATE_SWEEP_DIRS if private_tmp else ()
        # Compilations are cached only where candidates run under another uid than ours: the server can then
        # make each program's cache writable by that program's evaluations alone.
        numba = problem.settings.numba
        self.compile_cache = CompileCache(scratch_root, uid) if numba and self.switch_uid else None
        self.compile_times: collections.deque[float] = collections.deque(maxlen=COMPILE_SAMPLES)

    def evaluate(self, request: dict[str, Any]) -> dict[str, Any]:
        code = request.get("code")
        names = request.get("inputs")
        held_out = bool(request.get("held_out"))
        source = self.problem.held_out if held_out else self.problem.inputs
        if not isinstance(code, str) or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return {"status": "crashed", "error": "malformed request"}
        unknown = [n for n in names if n not in source]
        if unknown:
            return {"status": "crashed", "error": f"unknown input(s) {unknown}"}
        settings = self.problem.settings
        scratch = tempfile.mkdtemp(prefix="cand-", dir=self.scratch_root)
        if self.switch_uid:
            os.chown(scratch, self.uid, self.uid)
        os.chmod(scratch, 0o700)
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        cpu_s = math.ceil(settings.time_limit_s * (len(names) + 1) + COMPILE_ALLOWANCE_S) + 1
        jit = self._jit_plan(code) if settings.numba else None
        cached = jit is not None and harness.cached(jit.cache_dir)
        t_fork = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the candidate: never returns
            os.close(result_r)
            os.close(out_r)
            harness.run_child(self.problem, code, names, held_out, result_w, out_w, scratch,
                              uid=self.uid if self.switch_uid else None,
                              limits={"as_mb": settings.memory_limit_mb, "cpu_s": cpu_s, "fsize": FILE_LIMIT,
                                      "nofile": NOFILE_LIMIT, "nproc": NPROC_LIMIT, "cpu": self.cpu}, jit=jit)
        os.close(result_w)
        os.close(out_w)
        try:
            request_id = request.get("id")

            def emit(name: str, value: Any) -> None:
                write_frame(self.resp_fd, {"id": request_id, "t": "output", "name": name, "value": value})

            watch = Watch(pid, result_r, out_r, names, settings.time_limit_s, t_fork, settings.memory_limit_mb,
                          settings.numba, emit=emit, requests=self.requests, request_id=request_id)
            reply = watch.run()
        finally:
            _kill_all_children(pid)
            os.close(result_r)
            os.close(out_r)
            remove_tree(scratch)
            for directory in self.sweep_dirs:
                remove_owned_by(directory, self.uid if self.switch_uid else os.getuid())
            if jit is not None and jit.cache_dir and self.compile_cache is not None:
                self.compile_cache.seal(jit.cache_dir)
        if reply.get("compiled") and not cached and reply["timings"]["compile"] > 0:
            self.compile_times.append(reply["timings"]["compile"])  # a cache hit says nothing of compile cost
        return reply

    def _jit_plan(self, code: str) -> harness.JitPlan:
        """Where this program's compilation is cached, and (numba="auto") how long it runs as Python first."""
        cache_dir = self.compile_cache.open(code) if self.compile_cache is not None else None
        if self.problem.settings.numba != "auto":
            return harness.JitPlan(cache_dir, 0.0)
        estimate = statistics.median(self.compile_times) if self.compile_times else COMPILE_ESTIMATE_S
        return harness.JitPlan(cache_dir, min(max(estimate, 0.02), 5.0))


class CompileCache:
    """numba's on-disk cache, one directory per program (by code hash), in the server's private scratch root.

    A directory belongs to the candidate's uid only while that same program is evaluated, and to the server
    (root) otherwise, files included: a program can reuse or spoil its own compilation, never another's.
    """

    def __init__(self, scratch_root: str, uid: int):
        self.root = os.path.join(scratch_root, "evoforge-numba-cache")
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        self.uid = uid
        self.recent: collections.OrderedDict[str, None] = collections.OrderedDict()

    def open(self, code: str) -> str | None:
        """The program's cache directory, with its source file, handed to the candidate's uid; None (compile
        without a cache) if the scratch space is full even after every other program's cache is dropped."""
        try:
            return self._open(code)
        except OSError:
            for old in list(self.recent):
                remove_tree(os.path.join(self.root, old))
            self.recent.clear()
        try:
            return self._open(code)
        except OSError:
            return None

    def _open(self, code: str) -> str:
        digest = hashlib.sha256(code.encode()).hexdigest()[:32]
        path = os.path.join(self.root, digest)
        os.makedirs(path, mode=0o700, exist_ok=True)
        # The directory was the candidate's before: whatever it left there (a link to a file of root's, a FIFO,
        # /dev/zero, a hard link) is never followed, read past its size, or written through.
        source = os.path.join(path, "candidate.py")
        if not _holds_exactly(source, code):
            try:
                os.unlink(source)  # unlink removes a link itself, never its target
            except FileNotFoundError:
                pass
            fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(code)
        _chown_tree(path, self.uid, self.uid)  # numba reads a cache only from a directory it could write to
        self.recent[digest] = None
        self.recent.move_to_end(digest)
        while len(self.recent) > COMPILE_CACHE_PROGRAMS:
            old, _ = self.recent.popitem(last=False)
            remove_tree(os.path.join(self.root, old))
        return path

    def seal(self, path: str) -> None:
        """Give the directory and all in it back to the server, so that other programs cannot change it; a
        folder the candidate stuffed beyond what a compilation needs is dropped instead of kept."""
        if _tree_size(path, COMPILE_CACHE_MAX_ENTRIES) > COMPILE_CACHE_MAX_BYTES:
            remove_tree(path)
            self.recent.pop(os.path.basename(path), None)
            return
        _chown_tree(path, os.getuid(), os.getgid())


def _tree_size(path: str, max_entries: int) -> float:
    """Bytes under path (lstat sizes); infinity past max_entries entries, so that counting stays cheap."""
    total, seen = 0, 0
    try:
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                seen += 1
                if seen > max_entries:
                    return math.inf
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
    except RecursionError:  # nested deeper than any compilation nests
        return math.inf
    return total


def _holds_exactly(path: str, code: str) -> bool:
    """Whether path is a plain file (not a link, FIFO or device) whose content is exactly code."""
    expected = code.encode()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_size != len(expected):
            return False
        return os.read(fd, len(expected) + 1) == expected
    finally:
        os.close(fd)


def _chown_tree(path: str, uid: int, gid: int) -> None:
    """chown a directory and everything in it, never following a link: an entry that is neither a directory
    nor a plain file with one name (a symbolic or hard link to someone else's file, a FIFO) is deleted."""
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = os.path.join(root, name)
            info = os.lstat(entry)
            if stat.S_ISDIR(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):
                os.chown(entry, uid, gid, follow_symlinks=False)
            else:
                os.unlink(entry)


class Watch:
    """Supervises one candidate child: reads its frames and output, runs the clocks, decides the status."""

    def __init__(self, pid: int, result_fd: int, out_fd: int, names: list[str], limit_s: float, t_fork: float,
                 memory_mb: int, numba: bool, *, emit: Callable[[str, Any], None], requests: FrameReader,
                 request_id: Any):
        self.pid = pid
        self.emit = emit  # each output goes to the engine as it arrives, so that it can score and stop early
        self.requests = requests
        self.request_id = request_id
        self.results = FrameReader(result_fd, MAX_RESULT)
        self.out_fd = out_fd
        self.out_open = True
        self.memory_bytes = memory_mb * 1024 * 1024
        self.next_resource_check = 0.0
        self.files_before = _files_in_temp()
        self.numba = numba  # compile frames (which pause the clock) are only accepted when numba is on
        self.names = names
        self.limit_s = limit_s
        self.t_fork = t_fork
        self.stdout = bytearray()
        self.stdout_dropped = 0
        self.outputs: dict[str, Any] = {}
        self.input_seconds: dict[str, float] = {}
        self.timings = {"sandbox_start": 0.0, "compile": 0.0, "solve": 0.0}
        self.compiled: bool | None = None
        self.phase = "loading the candidate"
        self.deadline = t_fork + limit_s + 5.0  # loading gets the input limit plus the fork and setup
        self.paused_remaining: float | None = None
        self.compile_started = 0.0
        self.compile_left = COMPILE_ALLOWANCE_S
        self.input_started = 0.0
        self.input_compile = 0.0
        self.status: str | None = None
        self.error: str | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None

    # -- main loop

    def run(self) -> dict[str, Any]:
        exited = None
        try:
            while self.status is None:
                now = time.monotonic()
                if now >= self.deadline:
                    self._on_deadline()
                    break
                fds = [fd for fd, live in ((self.results.fd, not self.results.closed), (self.out_fd, self.out_open),
                                           (self.requests.fd, not self.requests.closed)) if live]
                if self.pidfd is not None:
                    fds.append(self.pidfd)
                wait = self.deadline - now if self.pidfd is not None else min(self.deadline - now, 0.005)
                ready, _, _ = select.select(fds, [], [], min(wait, MEMORY_POLL_S))
                if time.monotonic() >= self.next_resource_check:
                    self._check_resources()
                    if self.status is not None:
                        break
                if self.requests.fd in ready:
                    self._read_requests()
                    if self.status is not None:
                        break
                if self.out_fd in ready:
                    self._read_stdout()
                if self.results.fd in ready:
                    self._read_results()
                if self.status is not None:
                    break
                exited = self._poll_exit(block=self.pidfd is not None and self.pidfd in ready)
                if exited is not None:
                    self._drain()
                    if self.status is None:
                        self._on_exit(*exited)
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)
        self._read_pending_stdout()
        return self._reply()

    def _read_pending_stdout(self) -> None:
        """What the candidate printed before its last frame: the `done` frame can be read before the output pipe
        (both ready in one select), and the output must not be lost for it."""
        for _ in range(64):
            if not self.out_open or not select.select([self.out_fd], [], [], 0)[0]:
                return
            self._read_stdout()

    def _check_resources(self) -> None:
        """What no rlimit bounds: the memory of all the candidate's processes together (each fork gets RLIMIT_AS
        afresh), and the number of files it created (kernel memory, and a slow sweep)."""
        self.next_resource_check = time.monotonic() + MEMORY_POLL_S
        created = _files_in_temp() - self.files_before
        if created > MAX_TEMP_FILES:  # empty files cost kernel memory that no limit counts, and a slow sweep
            self._finish("memory", f"the candidate created {created} files in the temp folders, more than "
                                   f"{MAX_TEMP_FILES}")
            return
        processes = _descendants(os.getpid())
        if len(processes) < 2:
            return  # one process: its own RLIMIT_AS is the bound
        used = sum(_private_resident_bytes(p) for p in processes)
        if used > self.memory_bytes:
            self._finish("memory", f"the candidate's {len(processes)} processes together hold "
                                   f"{used / 2**20:.0f} MB, over the limit of {self.memory_bytes / 2**20:.0f} MB")

    def _poll_exit(self, block: bool) -> tuple[int, Any] | None:
        try:
            pid, status, usage = os.wait4(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return (0, None)
        if pid == 0:
            return None
        return status, usage

    def _drain(self) -> None:
        """After the child exits, read what it left in the pipes (without waiting for its descendants)."""
        for _ in range(10_000):
            fds = [fd for fd, live in ((self.results.fd, not self.results.closed), (self.out_fd, self.out_open))
                   if live]
            if not fds or self.status is not None:
                return
            ready, _, _ = select.select(fds, [], [], 0)
            if not ready:
                return
            if self.out_fd in ready:
                self._read_stdout()
            if self.results.fd in ready:
                self._read_results()

    # -- input

    def _read_stdout(self) -> None:
        chunk = os.read(self.out_fd, 1 << 16)
        if not chunk:
            self.out_open = False
            return
        room = STDOUT_CAP - len(self.stdout)
        if room > 0:
            self.stdout += chunk[:room]
        self.stdout_dropped += max(0, len(chunk) - max(room, 0))

    def _read_requests(self) -> None:
        """The engine may stop this candidate (it scored an early output invalid or below a cascade threshold)."""
        try:
            if not self.requests.feed():
                self._finish("crashed", "the engine closed its end of the sandbox pipe")
                return
            while self.status is None:
                frame = self.requests.pop()
                if frame is None:
                    return
                if frame.get("op") == "stop" and frame.get("id") == self.request_id:
                    self._finish("stopped", "stopped by the engine")
        except WireError as exc:
            self._finish("crashed", f"the engine sent a malformed frame: {exc}")

    def _read_results(self) -> None:
        try:
            self.results.feed()
            while self.status is None:
                frame = self.results.pop()
                if frame is None:
                    break
                self._on_frame(frame)
        except WireError as exc:
            self._finish("invalid" if "exceeds the limit" in str(exc) else "crashed",
                         f"the candidate's result could not be read: {exc}")

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        now = time.monotonic()
        if kind == "loaded" and self.phase == "loading the candidate":
            self.timings["sandbox_start"] = now - self.t_fork
            self._start_input(now)
        elif (kind == "compile" and frame.get("phase") == "begin" and self.paused_remaining is None and self.numba
              and self.phase.startswith("solving")):
            self.paused_remaining = max(0.0, self.deadline - now)
            self.compile_started = now
            self.deadline = now + max(0.0, self.compile_left)
            self.phase_before_compile = self.phase
            self.phase = f"compiling with numba ({self.phase})"
        elif kind == "compile" and frame.get("phase") == "end" and self.paused_remaining is not None:
            spent = now - self.compile_started
            self.compile_left -= spent
            self.timings["compile"] += spent
            self.input_compile += spent
            self.deadline = now + self.paused_remaining
            self.paused_remaining = None
            self.phase = self.phase_before_compile
            ok = frame.get("ok")
            if isinstance(ok, bool):
                self.compiled = ok if self.compiled is None else (self.compiled and ok)
        elif kind == "jit" and self.numba and frame.get("compiled") is False and self.paused_remaining is None:
            self.compiled = False  # numba="auto" compiled, found it slower than Python, and went back
        elif kind == "output" and self.paused_remaining is None and len(self.outputs) < len(self.names):
            name = self.names[len(self.outputs)]
            if frame.get("name") != name or "value" not in frame:
                self._finish("crashed", f"the candidate sent a result out of order (expected input {name!r})")
                return
            seconds = max(0.0, now - self.input_started - self.input_compile)
            self.outputs[name] = frame["value"]
            self.emit(name, frame["value"])
            self.input_seconds[name] = seconds
            self.timings["solve"] += seconds
            if len(self.outputs) < len(self.names):
                self._start_input(now)
            else:
                self.phase = "finishing"
                self.deadline = now + 5.0
        elif kind == "done" and len(self.outputs) == len(self.names):
            self._finish("ok", None)
        elif kind == "fail" and frame.get("kind") in ("error", "memory", "invalid"):
            message = frame.get("message")
            self._finish(frame["kind"], message[-4000:] if isinstance(message, str) else "no message")
        else:
            self._finish("crashed", f"the candidate sent an unexpected message {str(kind)[:40]!r} "
                                    f"while {self.phase}")

    def _start_input(self, now: float) -> None:
        name = self.names[len(self.outputs)] if len(self.outputs) < len(self.names) else None
        self.phase = f"solving input {name!r}" if name is not None else "finishing"
        self.input_started = now
        self.input_compile = 0.0
        self.deadline = now + self.limit_s

    # -- endings

    def _finish(self, status: str, error: str | None) -> None:
        self.status = status
        self.error = error

    def _on_deadline(self) -> None:
        if self.phase.startswith("compiling"):
            self._finish("timeout", f"numba compilation took more than {COMPILE_ALLOWANCE_S:.0f} s "
                                    f"({self.phase})")
        elif self.phase == "finishing":
            self._finish("crashed", "the candidate did not finish after returning its outputs")
        else:
            self._finish("timeout", f"time limit of {self.limit_s:g} s exceeded while {self.phase}")

    def _on_exit(self, status: int, usage: Any) -> None:
        if usage is None:
            self._finish("crashed", "the candidate process vanished")
            return
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
            if sig == signal.SIGXCPU:
                self._finish("timeout", f"CPU time limit exceeded while {self.phase}")
            elif sig == signal.SIGKILL and usage.ru_maxrss * 1024 > 0.9 * self.memory_bytes:
                self._finish("memory", f"killed by SIGKILL near the memory limit while {self.phase}")
            elif sig == signal.SIGXFSZ:
                self._finish("crashed", f"killed by SIGXFSZ: wrote a file larger than {FILE_LIMIT} bytes")
            else:
                self._finish("crashed", f"killed by {name} while {self.phase}")
            return
        code = os.WEXITSTATUS(status)
        if code == harness.SETUP_FAILED:
            detail = self.stdout.decode("utf-8", errors="replace").strip()[-500:]
            self._finish("crashed", f"the sandbox could not set up the candidate's process: {detail}")
            return
        self._finish("crashed", f"the candidate process exited with code {code} while {self.phase} "
                                "(sys.exit, os._exit or a fatal error) before returning a result")

    def _reply(self) -> dict[str, Any]:
        text = self.stdout.decode("utf-8", errors="replace")
        if self.stdout_dropped:
            text += f"\n[... {self.stdout_dropped} more bytes of output dropped]"
        # The outputs themselves went to the engine one by one as they arrived (see `emit`).
        return {"status": self.status, "error": self.error, "timings": self.timings,
                "input_seconds": self.input_seconds, "compiled": self.compiled, "stdout": text,
                "outputs": len(self.outputs)}


def _kill_all_children(pid: int) -> None:
    """Kill the candidate's process group, then every child of this server (orphans come here) until none is left."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    me = os.getpid()
    for _ in range(1000):
        children = _children(me)
        if not children:
            return
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for child in children:
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass


def remove_owned_by(directory: str, uid: int, depth: int = 0) -> None:
    """Remove what uid (the candidates' own uid) left in a shared directory, and in the world-writable folders
    inside it (a /tmp/ray/session_* any uid may write to), so the next candidate finds none of it."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(info.st_mode)
            if info.st_uid != uid:
                if is_dir and info.st_mode & stat.S_IWOTH and depth < SWEEP_DEPTH:
                    remove_owned_by(entry.path, uid, depth + 1)
                continue
            if is_dir:
                remove_tree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def _files_in_temp() -> int:
    """Inodes in use on the temp folders' file systems (a candidate's files and folders are counted here)."""
    used = 0
    for folder in ("/tmp", "/var/tmp"):
        try:
            info = os.statvfs(folder)
        except OSError:
            continue
        used += info.f_files - info.f_ffree
    return used


def _descendants(pid: int) -> list[int]:
    """Every process below pid (children of any of its threads, and theirs), breadth first."""
    found, queue = [], [pid]
    while queue and len(found) < 4096:
        kids = _children(queue.pop())
        found.extend(kids)
        queue.extend(kids)
    return found


def _private_resident_bytes(pid: int) -> int:
    """Resident memory not backed by files (statm: resident - shared), which forked copies pay for themselves."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            fields = f.read().split()
        return max(0, int(fields[1]) - int(fields[2])) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    """The children of pid, whichever of its threads forked them."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        kids: list[int] = []
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(p) for p in f.read().split())
        return kids
    except FileNotFoundError:
        if not os.path.exists(f"/proc/{pid}"):
            return []  # gone
    except (OSError, ValueError):
        pass
    found = []  # a kernel without CONFIG_PROC_CHILDREN: scan /proc for our children
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
