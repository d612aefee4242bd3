"""The watch over one running candidate: its frames, its output, its clocks, its memory and its processes.

The sandbox server forks the candidate and hands it to a `Watch`, which alone decides how it ended: it enforces
the wall-clock deadline per input (pausing it while numba compiles, up to `COMPILE_ALLOWANCE_S`), sums the memory
of all the candidate's processes, counts the files it creates, reads its capped stdout, and passes each output on
to the engine as it arrives. Nothing the candidate sends is trusted beyond being data.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from evoforge.evaluators.inside import harness
from evoforge.evaluators.inside.procs import (
    descendants,
    files_in_temp,
    private_resident_bytes,
)
from evoforge.evaluators.wire import COMPILE_ALLOWANCE_S, FrameReader, WireError

MAX_RESULT = 64 * 1024 * 1024  # one output frame from a candidate (JSON); larger outputs are 'invalid'
STDOUT_CAP = 64 * 1024  # bytes of a candidate's stdout/stderr kept; the rest is read and dropped
MAX_PAYLOAD_CHARS = 16 * 1024 * 1024  # compile payloads one candidate may report (base64), all together
MAX_TEMP_FILES = 100_000  # files and folders one candidate may create in /tmp and /var/tmp
MEMORY_POLL_S = 0.05  # how often the memory of a candidate's processes together is summed
FILE_LIMIT = 16 * 1024 * 1024  # RLIMIT_FSIZE: the largest file a candidate may write


class Watch:
    """Supervises one candidate child: reads its frames and output, runs the clocks, decides the status."""

    def __init__(self, pid: int, result_fd: int, out_fd: int, names: list[str], limit_s: float, t_fork: float,
                 memory_mb: int, numba: bool, *, emit: Callable[[str, Any], None], requests: FrameReader,
                 request_id: Any, late_payloads: bool = False, not_counted: int | None = None):
        self.pid = pid
        self.not_counted = not_counted  # the zygote: its own memory is not the candidate's (its children's is)
        self.emit = emit  # each output goes to the engine as it arrives, so that it can score and stop early
        self.requests = requests
        self.request_id = request_id
        self.results = FrameReader(result_fd, MAX_RESULT)
        self.out_fd = out_fd
        self.out_open = True
        self.memory_bytes = memory_mb * 1024 * 1024
        # The first sum one poll after the fork, not at it: nothing of the candidate has run yet at the fork, and
        # the sums stay MEMORY_POLL_S apart.
        self.next_resource_check = t_fork + MEMORY_POLL_S
        self.files_before = files_in_temp()
        self.numba = numba  # compile frames (which pause the clock) are only accepted when numba is on
        # Compile payloads are kept only from compilations no code of the candidate ran before: those before its
        # `loaded` frame, and (late_payloads: every evolved function compiles at its first call) later ones until a
        # function falls back to Python: from then on the candidate's own code has run (in its own process), and
        # nothing compiled after that is trusted for another evaluation (README: compilations are kept by the engine).
        self.late_payloads = late_payloads
        self.payloads: dict[str, str] = {}
        self.payload_chars = 0
        self.cache_hit = False
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
        created = files_in_temp() - self.files_before
        if created > MAX_TEMP_FILES:  # empty files cost kernel memory that no limit counts, and a slow sweep
            self._finish("memory", f"the candidate created {created} files in the temp folders, more than "
                                   f"{MAX_TEMP_FILES}")
            return
        processes = [p for p in descendants(os.getpid()) if p != self.not_counted]
        if len(processes) < 2:
            return  # one process: its own RLIMIT_AS is the bound
        used = sum(private_resident_bytes(p) for p in processes)
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
            self.timings["sandbox_start"] = now - self.t_fork - self.timings["compile"]
            self._start_input(now)
        elif (kind == "compile" and frame.get("phase") == "begin" and self.paused_remaining is None and self.numba
              and (self.phase.startswith("solving") or self.phase == "loading the candidate")):
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
            self.cache_hit = frame.get("cached") is True and self.compiled is True
        elif kind == "jit" and "key" in frame:
            if self.paused_remaining is not None:  # sent by the harness while it compiles, or not kept
                self._keep_payload(frame)
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
        elif kind == "fail" and frame.get("kind") in ("error", "memory", "invalid", "crashed"):
            message = frame.get("message")
            self._finish(frame["kind"], message[-4000:] if isinstance(message, str) else "no message")
        else:
            self._finish("crashed", f"the candidate sent an unexpected message {str(kind)[:40]!r} "
                                    f"while {self.phase}")

    def _keep_payload(self, frame: dict[str, Any]) -> None:
        key, data = frame.get("key"), frame.get("data")
        trusted = self.compiled is not False and (self.phase.endswith("(loading the candidate)") or self.late_payloads)
        if not (trusted and isinstance(key, str) and isinstance(data, str) and len(key) == 32
                and all(c in "0123456789abcdef" for c in key)):
            return
        self.payload_chars += len(data)
        if self.payload_chars <= MAX_PAYLOAD_CHARS:
            self.payloads[key] = data

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
                "outputs": len(self.outputs), "jit_new": self.payloads,
                "jit_cached": self.cache_hit}
