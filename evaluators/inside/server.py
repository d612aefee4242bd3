"""The fork server that runs inside a sandbox: `python -m evoforge.evaluators.inside.server
PROBLEM OVERRIDES_JSON UID LEVEL SCRATCH WORKDIR CPU`.

Before anything else it forks the zygote (`evaluators.inside.zygote`), a clean process that forks the candidates'
own processes; then it loads the problem's module once (its inputs come from the engine with each request). For
each request it forks a harness child that runs `solve` on the request's inputs. The candidate's Python
functions run in a process of their own, which the zygote forks, and the harness calls them over a pipe
(`evaluators.channel`): the candidate sees its arguments and nothing else. With numba, what compiles runs in the
harness's process (nopython code reaches no interpreter state); what does not, or not yet, still runs as Python in
the candidate's own process. Every candidate process gets a new session, rlimits, a private
scratch directory, an unprivileged uid, captured and capped stdout/stderr and seeded RNGs. The server alone enforces
the wall-clock deadline per input (it does not rely on the candidate's cooperation) and, when the candidate is done
or out of time, kills it and every process it left behind: the server is a child subreaper, so orphans come back to
it, and it kills its children until none is left. It talks to the engine over its stdin/stdout with the frames of
`evaluators.wire`; nothing it receives from the children is trusted beyond being data. Each output goes to the
engine as soon as the harness sends it, and the engine may answer `stop` (an invalid output, or a cascade stage
below its threshold): the children are then killed. With numba on, the engine's first frame holds the problem's
compiled harnesses (if it has them from an earlier server), each request the program's earlier compilations, and
the replies carry new ones back for the engine to keep (see `jit_compile` and `evaluators.compile_store`): nothing
compiled is kept on the sandbox's side.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

from evoforge.evaluators import validator
from evoforge.evaluators.cleanup import (
    PRIVATE_SWEEP_DIRS,
    SHARED_TMP_DIRS,
    remove_owned_by,
    remove_tree,
)
from evoforge.evaluators.inside import harness, numpy_memory, numpy_objects, seccomp
from evoforge.evaluators.inside.fork import fork
from evoforge.evaluators.inside.procs import (
    PR_SET_CHILD_SUBREAPER,
    kill_all_children,
    kill_group,
    prctl,
    vm_size_mb,
)
from evoforge.evaluators.inside.watch import FILE_LIMIT, Watch
from evoforge.evaluators.inside.zygote import Zygote
from evoforge.evaluators.problem_api import harnesses
from evoforge.evaluators.wire import COMPILE_ALLOWANCE_S, FrameReader, WireError, write_frame

MAX_REQUEST = 1 << 30  # a candidate's code and the inputs it runs on (from the trusted engine)
# Under numba="auto", the Python time a candidate's calls may use before it compiles: about what a compilation
# costs. A constant, not learned from earlier candidates: a candidate's evaluation (compiled or Python, which can
# differ where int64 wraps) must not depend on what its server evaluated before it.
COMPILE_AFTER_S = 0.3
NOFILE_LIMIT = 64
NPROC_LIMIT = 16  # per sandbox uid, so it only binds after the uid switch
# Each candidate's scratch directory: made afresh for it and removed after it, at one path per server, so that
# HOME and TMPDIR (this path) are set once in the server and the zygote and inherited (see harness.set_home).
SCRATCH_NAME = "cand-scratch"


def main(argv: list[str]) -> int:
    problem_path, overrides_json, uid_text, level, scratch_root, workdir, cpu_text = argv
    # Move the engine's pipes out of the way so that a forked candidate can be handed clean fds 0-2.
    req_fd, resp_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    uid = int(uid_text)
    numpy_memory.install()  # first: no array the problem or a request makes is ever handed out again uninitialised
    numpy_objects.install()  # and no array of objects over raw memory, in the zygote and every harness alike
    scratch = os.path.join(scratch_root, SCRATCH_NAME)
    zygote = Zygote(int(cpu_text), scratch)  # before the problem is loaded: its memory never holds any of it
    reader = FrameReader(req_fd, MAX_REQUEST)
    try:
        init = reader.read(None)  # the engine's first frame: the compiled harnesses it kept, if any
        entries = init.get("jit") if isinstance(init.get("jit"), dict) else {}
        os.chdir(workdir)  # relative paths in the overrides resolve as they did for the engine
        problem, new = harness.load(problem_path, json.loads(overrides_json), entries)
        os.chdir("/")
    except BaseException as exc:  # the engine loaded the same file, so this is rare: report it and stop
        write_frame(resp_fd, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    harness.set_home(scratch)  # after the load (the problem's own code saw the engine's): what the harnesses inherit
    vm_mb = vm_size_mb()
    write_frame(resp_fd, {"ready": True, "pid": os.getpid(), "level": level, "uid": uid,
                          "seccomp": seccomp.supported(), "baseline_mb": vm_mb, "source_hash": problem.source_hash,
                          "jit_new": new})
    server = Server(problem, uid, scratch_root, reader, resp_fd, zygote, cpu=int(cpu_text),
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
        if reader.closed or not zygote.alive:
            return 0  # without its zygote a server cannot run candidates: the engine starts a new one


class Server:
    """Runs one candidate at a time in a forked child and turns what happened into a reply."""

    def __init__(self, problem: Any, uid: int, scratch_root: str, requests: FrameReader,
                 resp_fd: int, zygote: Zygote, *, cpu: int, private_tmp: bool):
        self.problem = problem
        self.zygote = zygote
        self.requests = requests  # read during an evaluation too: the engine may stop a candidate early
        self.resp_fd = resp_fd
        self.uid = uid
        self.scratch_root = scratch_root
        self.cpu = cpu  # every candidate process runs on this one CPU: forks and threads cannot use more
        self.switch_uid = os.geteuid() == 0 and uid > 0
        # What a candidate left in the temp dirs is removed after it, so that the next one neither reads it nor
        # inherits a full /tmp. As root, candidates have a uid of their own: sweep every temp dir they can reach.
        # Otherwise they have ours, whose files on the machine are the user's own: sweep private temp dirs only.
        # A read-only mount (`/run/lock` under bwrap's read-only `/`) cannot gain files: it is not swept.
        self.sweep_dirs = tuple(d for d in (SHARED_TMP_DIRS if self.switch_uid else PRIVATE_SWEEP_DIRS if private_tmp
                                            else ()) if not _read_only(d))
        self.harnessed = bool(harnesses(problem.module.__dict__))

    def evaluate(self, request: dict[str, Any]) -> dict[str, Any]:
        code = request.get("code")
        names = request.get("inputs")
        values = request.get("values")
        if (not isinstance(code, str) or not isinstance(names, list) or not all(isinstance(n, str) for n in names)
                or not isinstance(values, dict)):
            return {"status": "crashed", "error": "malformed request"}
        unknown = [n for n in names if n not in values]
        if unknown:
            return {"status": "crashed", "error": f"no value sent for input(s) {unknown}"}
        checked = request.get("checked") is not False
        project = self.problem.project
        try:
            if project is not None:
                project.check(code, language=checked)
            elif checked:
                validator.check(code, harness.CANDIDATE_FILE)
        except validator.Refused as exc:
            return {"status": "error", "error": str(exc), "timings": {}, "input_seconds": {}, "compiled": None,
                    "stdout": "", "outputs": 0}
        settings = self.problem.settings
        scratch = self._scratch()
        if self.switch_uid:
            os.chown(scratch, self.uid, self.uid)
        os.chmod(scratch, 0o700)
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        cpu_s = math.ceil(settings.time_limit_s * (len(names) + 1) + COMPILE_ALLOWANCE_S) + 1
        limits = {"as_mb": settings.memory_limit_mb, "cpu_s": cpu_s, "fsize": FILE_LIMIT, "nofile": NOFILE_LIMIT,
                  "nproc": NPROC_LIMIT, "cpu": self.cpu}
        uid = self.uid if self.switch_uid else None
        jit = self._jit_plan(request.get("jit")) if settings.numba else None
        t_fork = time.monotonic()
        # The candidate's Python runs in a process of its own, forked by the zygote; with numba its compiled
        # functions run in the harness's process (see harness._install), where nopython code reaches nothing.
        call_r, call_w = os.pipe()
        reply_r, reply_w = os.pipe()
        candidate_pid = self.zygote.spawn([call_r, reply_w, out_w], {
            "scratch": scratch, "uid": uid, "limits": limits,
            # a project runs from memory: its process opens no file, checked or not
            "no_files": checked or project is not None,
            "preload": project.imports() if project is not None else []})
        os.close(call_r)
        os.close(reply_w)
        channel_fds = (call_w, reply_r)
        pid = fork()
        if pid == 0:  # the harness: never returns
            os.close(result_r)
            os.close(out_r)
            harness.run_child(self.problem, code, values, names, result_w, out_w, channel_fds, scratch,
                              uid=uid, limits=limits, checked=checked, jit=jit)
        for fd in (result_w, out_w, *channel_fds):
            os.close(fd)
        try:
            request_id = request.get("id")

            def emit(name: str, value: Any) -> None:
                write_frame(self.resp_fd, {"id": request_id, "t": "output", "name": name, "value": value})

            late = jit is not None and not self.harnessed and (bool(jit.entries) or jit.compile_after_s <= 0)
            watch = Watch(pid, result_r, out_r, names, settings.time_limit_s, t_fork, settings.memory_limit_mb,
                          settings.numba, emit=emit, requests=self.requests, request_id=request_id,
                          late_payloads=late, not_counted=self.zygote.pid)
            reply = watch.run()
        finally:
            kill_group(candidate_pid)
            candidate_status = self.zygote.reaped()
            kill_all_children(pid, keep=self.zygote.pid)
            os.close(result_r)
            os.close(out_r)
            remove_tree(scratch)
            for directory in self.sweep_dirs:
                remove_owned_by(directory, self.uid if self.switch_uid else os.getuid())
        if reply["status"] == "crashed":
            reply.update(_candidate_ending(*candidate_status, reply["error"], settings.memory_limit_mb))
        return reply

    def _scratch(self) -> str:
        """A new empty directory for this candidate: the one path its processes inherit as HOME and TMPDIR, or, where
        that is left over (the last candidate's could not all be removed), one of its own (`lock_down` sets them)."""
        path = os.path.join(self.scratch_root, SCRATCH_NAME)
        try:
            os.mkdir(path, 0o700)
            return path
        except OSError:
            return tempfile.mkdtemp(prefix="cand-", dir=self.scratch_root)

    def _jit_plan(self, entries: Any) -> harness.JitPlan:
        """The program's earlier compilations (from the engine), and (numba="auto") how long it runs as Python
        before compiling: from this request alone, whatever the server ran before."""
        if not isinstance(entries, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in entries.items()):
            entries = {}
        return harness.JitPlan(entries, COMPILE_AFTER_S if self.problem.settings.numba == "auto" else 0.0)


def _read_only(directory: str) -> bool:
    """Whether directory lies on a read-only mount (checked once: candidates cannot remount anything)."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _candidate_ending(status: int, max_rss_kb: int, error: str | None, memory_mb: int) -> dict[str, Any]:
    """The status of an evaluation whose candidate process ended under the harness, from how it ended."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGXCPU:
            return {"status": "timeout", "error": "CPU time limit exceeded in the candidate's process"}
        if sig == signal.SIGKILL and max_rss_kb * 1024 > 0.9 * memory_mb * 2**20:
            return {"status": "memory", "error": "the candidate's process was killed by SIGKILL near the memory "
                                                 "limit"}
        if sig != signal.SIGKILL:  # SIGKILL otherwise: ours, after the harness had already failed
            return {"status": "crashed", "error": f"the candidate's process was killed by {name}"}
    elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == harness.SETUP_FAILED:
        return {"status": "crashed", "error": "the sandbox could not set up the candidate's process"}
    elif os.WIFEXITED(status):
        return {"status": "crashed", "error": f"the candidate's process exited with code {os.WEXITSTATUS(status)} "
                                              "(os._exit or a fatal error) before returning a result"}
    return {"status": "crashed", "error": error}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
