"""The fork server that runs inside a sandbox: `python -m evoforge.evaluators.inside.server
PROBLEM OVERRIDES_JSON UID LEVEL SCRATCH WORKDIR CPU`.

It loads the problem once (numpy, numba and the inputs stay warm), then for each request from the engine forks a
fresh child that becomes the candidate: new session, rlimits, private scratch directory, unprivileged uid, captured
and capped stdout/stderr, seeded RNGs. The server alone enforces the wall-clock deadline per input (it does not
rely on the candidate's cooperation) and, when the candidate is done or out of time, kills it and every process it
left behind: the server is a child subreaper, so orphans come back to it, and it kills its children until none
is left. It talks to the engine over its stdin/stdout with the frames of `evaluators.wire`; nothing it receives
from the child is trusted beyond being data. Each output goes to the engine as soon as the child sends it, and
the engine may answer `stop` (an invalid output, or a cascade stage below its threshold): the child is then killed.
With numba on, the engine's first frame holds the problem's compiled harnesses (if it has them from an earlier
server), each request the program's earlier compilations, and the replies carry new ones back for the engine to
keep (see `jit_compile` and `evaluators.compile_store`): nothing compiled is kept on the sandbox's side.
"""

from __future__ import annotations

import collections
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from typing import Any

from evoforge.evaluators.cleanup import (
    PRIVATE_SWEEP_DIRS,
    SHARED_TMP_DIRS,
    remove_owned_by,
    remove_tree,
)
from evoforge.evaluators.inside import harness, seccomp
from evoforge.evaluators.inside.procs import (
    PR_SET_CHILD_SUBREAPER,
    kill_all_children,
    prctl,
    vm_size_mb,
)
from evoforge.evaluators.inside.watch import FILE_LIMIT, Watch
from evoforge.evaluators.problem_api import harnesses
from evoforge.evaluators.wire import (
    COMPILE_ALLOWANCE_S,
    FrameReader,
    WireError,
    inputs_digest,
    write_frame,
)

MAX_REQUEST = 16 * 1024 * 1024  # a candidate's code and the input names
COMPILE_ESTIMATE_S = 0.3  # what a compilation is assumed to cost under numba="auto" until this server has seen some
COMPILE_SAMPLES = 16  # recent compile times whose median is the estimate
NOFILE_LIMIT = 64
NPROC_LIMIT = 16  # per sandbox uid, so it only binds after the uid switch


def main(argv: list[str]) -> int:
    problem_path, overrides_json, uid_text, level, scratch_root, workdir, cpu_text = argv
    # Move the engine's pipes out of the way so that a forked candidate can be handed clean fds 0-2.
    req_fd, resp_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    uid = int(uid_text)
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
    vm_mb = vm_size_mb()
    digests = {"inputs": inputs_digest(problem.inputs), "held_out": inputs_digest(problem.held_out)}
    write_frame(resp_fd, {"ready": True, "pid": os.getpid(), "level": level, "uid": uid,
                          "seccomp": seccomp.supported(), "inputs": list(problem.inputs),
                          "held_out": list(problem.held_out), "baseline_mb": vm_mb,
                          "source_hash": problem.source_hash, "digests": digests, "jit_new": new})
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
        self.compile_times: collections.deque[float] = collections.deque(maxlen=COMPILE_SAMPLES)
        self.harnessed = bool(harnesses(problem.module.__dict__))
        # numba="auto" with compiled harnesses: per set of inputs, whether the last candidate that ran Python on it
        # spent a compilation's time there (it then compiled): the next one compiles at once, so its compilation
        # is made before any of its code runs, and kept.
        self.compile_pays: dict[tuple[str, ...], bool] = {}

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
        jit = self._jit_plan(request.get("jit"), names) if settings.numba else None
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

            late = jit is not None and not self.harnessed and (bool(jit.entries) or jit.compile_after_s <= 0)
            watch = Watch(pid, result_r, out_r, names, settings.time_limit_s, t_fork, settings.memory_limit_mb,
                          settings.numba, emit=emit, requests=self.requests, request_id=request_id,
                          late_payloads=late)
            reply = watch.run()
        finally:
            kill_all_children(pid)
            os.close(result_r)
            os.close(out_r)
            remove_tree(scratch)
            for directory in self.sweep_dirs:
                remove_owned_by(directory, self.uid if self.switch_uid else os.getuid())
        if reply.get("compiled") and not reply.get("jit_cached") and reply["timings"]["compile"] > 0:
            self.compile_times.append(reply["timings"]["compile"])  # a cache hit says nothing of compile cost
        if jit is not None and jit.compile_after_s > 0 and reply.get("status") == "ok":
            self.compile_pays[tuple(names)] = bool(reply.get("compiled"))
        return reply

    def _jit_plan(self, entries: Any, names: list[str]) -> harness.JitPlan:
        """The program's earlier compilations (from the engine), and (numba="auto") how long it runs as Python
        before compiling: at once where compiling paid for the last candidate on the same inputs."""
        if not isinstance(entries, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in entries.items()):
            entries = {}
        if self.problem.settings.numba != "auto" or (self.harnessed and self.compile_pays.get(tuple(names))):
            return harness.JitPlan(entries, 0.0)
        estimate = statistics.median(self.compile_times) if self.compile_times else COMPILE_ESTIMATE_S
        return harness.JitPlan(entries, min(max(estimate, 0.02), 5.0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
