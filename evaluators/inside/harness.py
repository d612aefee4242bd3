"""The harness process of one evaluation: runs the problem's `solve` on the inputs, calling the candidate remotely.

`run_child` is called in a freshly forked child of the fork server and never returns. Order matters: the process
is put in its own session, its fds are reduced to stdin (/dev/null), stdout/stderr (the capped capture pipe),
fd 3 (the result pipe) and the call channel to the candidate's own process (`evaluators.inside.candidate`);
rlimits are set, no_new_privs is set, the process is made undumpable (the candidate's process, same uid, cannot
read its memory) and the uid is dropped before anything of the candidate is called. The evolved functions in the
problem module are replaced by `RemoteFunction`s: the candidate's Python runs elsewhere and sees only each call's
arguments. With numba they are also compiled here, from code that passed the language check, defined without
running any of it (`numba_load`) in the restricted namespace (`evaluators.inside.namespace`), never in the problem
module; where numba refuses them (or "auto" has not compiled them yet) the RemoteFunctions stay, so only compiled
machine code of the candidate's ever runs in this process.
Frames on fd 3 (see `evaluators.inside.watch.Watch`): loaded, compile begin/end, output per input, done or fail.
The candidate's process locks itself down with the same `lock_down`, having inherited the steps a fork keeps
(`lock_down_process`) from the zygote.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C module (no stub): see lock_down_process
import ast
import copy
import ctypes
import fcntl
import os
import random
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np

from evoforge.evaluators import channel, validator
from evoforge.evaluators.channel import CandidateError, Receiver, RemoteFunction, send, wait_reply
from evoforge.evaluators.inside import fork, namespace, seccomp
from evoforge.evaluators.loader import load_problem
from evoforge.evaluators.problem import Problem
from evoforge.evaluators.problem_api import harnesses
from evoforge.evaluators.wire import WireError, decode_value, encode_value, write_frame

CANDIDATE_FILE = "<candidate>"
RESULT_FD = 3
CALL_FD, REPLY_FD = 4, 5  # the harness's ends of the call channel
SETUP_FAILED = 71  # exit status of a child whose lock-down failed before any candidate code ran
SEED = 0
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_DUMPABLE = 4
# The signals the server and zygote handle, back to their defaults in every candidate-grade process.
DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGCHLD, signal.SIGPIPE)
# Imported by the server so that a candidate can use them even where its uid cannot read the Python install.
PRELOAD = ("math", "random", "itertools", "functools", "collections", "heapq", "bisect", "operator", "statistics",
           "fractions", "decimal", "dataclasses", "typing", "copy", "string", "re", "cmath", "array")

TRIAL_CALLS = 100  # under numba="auto", calls timed after compiling to check that compiled is faster
_numba_seed: Any = None


@dataclass(frozen=True)
class JitPlan:
    """How the server wants this candidate compiled: its earlier compilations, and when to compile."""

    entries: dict[str, str] = field(default_factory=dict)  # compile payloads of this program (see jit_compile)
    compile_after_s: float = 0.0  # run as Python until the functions have used this long; 0: at once


def load(problem_path: str, overrides: dict[str, str], jit_entries: dict[str, str] | None = None
         ) -> tuple[Problem, dict[str, str]]:
    """Load the problem once in the server (its module and settings; the inputs come with each request) and warm
    up everything a candidate would otherwise pay for; with numba, compile its harnesses (or load them from
    `jit_entries`). Returns the problem and the harnesses' new payloads."""
    global _numba_seed
    problem = load_problem(problem_path, overrides, with_inputs=False)
    new: dict[str, str] = {}
    prepare_candidates()
    if problem.settings.numba:
        import numba

        @numba.njit(cache=False)
        def seed(value):  # numba keeps its own RNG; seeding it needs a jitted call
            np.random.seed(value)

        @numba.njit(cache=False)
        def warm(xs, k):
            total = 0.0
            for i in range(xs.shape[0]):
                total += xs[i] * k + np.random.random()
            return total

        seed(SEED)
        warm(np.zeros(4), 2)
        warm(np.zeros(4, dtype=np.int64), 2.5)
        _numba_seed = seed
        from evoforge.evaluators.inside import jit_compile

        jit_compile.warm_payloads()
        new = jit_compile.compile_harnesses(problem.module.__dict__, jit_entries or {})
    namespace.prepare()  # the module views numba's candidates are compiled against
    seed_globals()  # last: the harnesses inherit these states (nothing in the server draws from them)
    return problem, new


def prepare_candidates() -> None:
    """Warm up everything a candidate process would otherwise pay for (in the server and in the zygote)."""
    for name in PRELOAD:
        __import__(name)
    seed_globals()  # numpy.random loads lazily: load it here, not in every candidate
    _libc().prctl.restype = ctypes.c_int  # ctypes makes prctl's function object at its first lookup: here, once
    seccomp.prepare()
    channel.warm_up()


def seed_globals() -> None:
    """Seed `random` and numpy's global RNG, in the server and the zygote, once: the harnesses and candidates they
    fork inherit these states, and the forking processes never draw from them, so each candidate-grade process
    starts from the same seeded state without the writes (copy-on-write faults) of seeding it again. `lock_down`
    reseeds `random` only where `os.fork`'s callbacks reseeded it from the OS (`fork.ran_callbacks`)."""
    np.random.seed(SEED)
    random.seed(SEED)


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def lock_down(fds: dict[int, int], out_w: int, scratch: str, uid: int | None, limits: dict[str, int],
              files: bool = False, inherited: bool = False) -> None:
    """Make this forked process a candidate-grade one: own session, only fds 0-2 and `fds` (target: current),
    rlimits, one CPU, no_new_privs, uid, seeded RNGs, seccomp (with `files`, no opening of files either).
    With `inherited`, the steps of `lock_down_process` came with the fork from the zygote; they are checked."""
    os.setsid()
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    if sorted(fds) != list(range(3, 3 + len(fds))):
        raise ValueError(f"fds {sorted(fds)} must be numbered from 3 on")
    high = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for target, fd in fds.items()}  # out of the targets' way
    for target, fd in high.items():
        os.dup2(fd, target)
        os.set_inheritable(target, False)
    os.closerange(3 + len(fds), 1 << 16)  # the copies, the engine's pipes, the server's pidfds, everything else
    as_bytes = limits["as_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"], limits["nofile"]))
    os.chdir(scratch)
    if os.environ.get("HOME") != scratch or os.environ.get("TMPDIR") != scratch:  # not inherited (see set_home)
        set_home(scratch)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:  # no /proc/<pid>/mem or ptrace for other processes
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    if uid is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError("the uid switch did not take")
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # a uid change resets it
    if fork.ran_callbacks:  # `random` reseeded itself from the OS in this fork (else it has the seeded state)
        random.seed(SEED)
    if _numba_seed is not None:
        _numba_seed(SEED)
    if inherited:
        _check_process_lock_down(libc, limits["cpu"])
        seccomp.install(libc, files=files, inherited=True)
    else:
        lock_down_process(limits["cpu"])
        if files:
            seccomp.install(libc, files=True, inherited=True)


def set_home(scratch: str) -> None:
    """Point HOME and TMPDIR at the candidate's scratch directory. The server and the zygote do it once for the path
    each candidate's directory has (`server.SCRATCH_NAME`): setting the environment in every forked process wrote
    ~20 pages of each (copy-on-write faults)."""
    os.environ["HOME"] = scratch
    os.environ["TMPDIR"] = scratch


def lock_down_process(cpu: int) -> None:
    """The lock-down a fork inherits and cannot undo: default signal handlers, one CPU (for the process and all it
    starts), no_new_privs, and last the seccomp filter (it denies sched_setaffinity). numpy's global RNG is seeded
    already (`seed_globals`), and no fork reseeds it.
    The zygote takes these steps once, before it forks any candidate; a harness takes them in `lock_down`."""
    libc = _libc()
    for sig in DEFAULT_SIGNALS:
        # _signal's own function: `signal.signal` turns the old handler into an enum member, which for Python's
        # SIGINT handler raises and catches a ValueError, writing ~30 pages (copy-on-write faults) of each harness
        _signal.signal(sig, _signal.SIG_DFL)
    os.sched_setaffinity(0, {cpu})
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    seccomp.install(libc)


def _check_process_lock_down(libc: Any, cpu: int) -> None:
    """Refuse to go on unless this process inherited `lock_down_process`'s steps."""
    if os.sched_getaffinity(0) != {cpu}:
        raise OSError(f"inherited CPU affinity {sorted(os.sched_getaffinity(0))}, not [{cpu}]")
    if libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        raise OSError("no_new_privs was not inherited")
    if any(_signal.getsignal(sig) != _signal.SIG_DFL for sig in DEFAULT_SIGNALS):  # as in lock_down_process
        raise OSError("the default signal handlers were not inherited")


_EVALUATORS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # no problem file lives here


def die_with_parent() -> None:
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _send(payload: dict[str, Any]) -> None:
    write_frame(RESULT_FD, payload)


def _tail(exc: BaseException) -> str:
    """The traceback from the first frame that is not the harness, without evoforge's own frames (a compiled
    harness's call check, the pipe to the candidate): what a program author needs to see."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    shown = traceback.TracebackException(type(exc), exc, tb)
    shown.stack = traceback.StackSummary.from_list(
        [frame for frame in shown.stack if not frame.filename.startswith(_EVALUATORS)])
    return "".join(shown.format())[-4000:]


def run_child(problem: Problem, code: str, values: dict[str, Any], names: list[str], result_w: int, out_w: int,
              channel_fds: tuple[int, int] | None, scratch: str, uid: int | None, limits: dict[str, int],
              checked: bool = True, jit: JitPlan | None = None) -> NoReturn:
    """Lock this forked process down, run solve on the named inputs (against the candidate's process, or its
    compiled functions with numba), report, and exit. `values` holds the inputs as the engine encoded them
    (`evaluators.wire`); `channel_fds` the write end of the calls and the read end of the replies."""
    fds = {RESULT_FD: result_w}
    if channel_fds is not None:
        fds.update({CALL_FD: channel_fds[0], REPLY_FD: channel_fds[1]})
    try:
        lock_down(fds, out_w, scratch, uid, limits)
    except BaseException as exc:  # nothing of the candidate has run: a setup failure is the sandbox's
        try:
            os.write(2, f"sandbox setup failed: {exc!r}\n".encode())
        finally:
            os._exit(SETUP_FAILED)
    try:
        _run(problem, code, values, names, checked, jit)
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _run(problem: Problem, code: str, values: dict[str, Any], names: list[str], checked: bool,
         jit: JitPlan | None) -> None:
    try:
        _install(problem, code, checked, jit)
        _send({"t": "loaded"})
        solve = problem.module.solve
        for name in names:
            output = solve(decode_value(values[name]))
            try:
                encoded = encode_value(output)
            except WireError as exc:
                _flush()
                _send({"t": "fail", "kind": "invalid", "message": f"input {name!r}: {exc}"})
                return
            _send({"t": "output", "name": name, "value": encoded})
        _flush()
        _send({"t": "done"})
    except CandidateError as exc:
        _flush()
        _send({"t": "fail", "kind": exc.kind, "message": str(exc)})
    except MemoryError:
        _flush()
        _send({"t": "fail", "kind": "memory", "message": f"MemoryError (limit {problem.settings.memory_limit_mb} MB)"})
    except Exception as exc:
        _flush()
        _send({"t": "fail", "kind": "error", "message": _tail(exc)})


def _flush() -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass


def _install(problem: Problem, code: str, checked: bool, jit: JitPlan | None) -> None:
    """Put the candidate's functions where `solve` calls them: in a process of their own (RemoteFunctions); with
    numba, compiled here where numba compiles them, the Python ones still in their own process."""
    if problem.project is not None:
        _install_project(problem, code)
        return
    replies = Receiver(REPLY_FD)
    install = _Install(("install", code, list(problem.evolved_names), problem.candidate_modules,
                        problem.exposed_helpers, problem.exposed_constants, checked), replies)
    for name in problem.evolved_names:
        problem.module.__dict__[name] = _Remote(name, CALL_FD, replies, install)
    if not (problem.settings.numba and _install_compiled(problem, code, checked, jit or JitPlan())
            and _defines(code, problem.evolved_names)):
        install()


def _defines(code: str, names: tuple[str, ...]) -> bool:
    """Whether the program defines each of names with a top-level def (else its Python load fails with the reason)."""
    return set(names) <= {node.name for node in ast.parse(code).body if isinstance(node, ast.FunctionDef)}


class _Install:
    """Sends the program to the candidate's process once, before its first call. With numba, a program that
    compiles whole without load-time code is sent only if a call runs as Python after all (numba refused it at
    its first call): its Python load then cannot fail where numba_load succeeded, so sending it late changes no
    outcome, and a compiled candidate does not wait for its process to load it."""

    def __init__(self, message: tuple[Any, ...], replies: Receiver):
        self.message: tuple[Any, ...] | None = message
        self.replies = replies

    def __call__(self) -> None:
        if self.message is not None:
            message, self.message = self.message, None
            send(CALL_FD, message)
            wait_reply(self.replies)


class _Remote(RemoteFunction):
    def __init__(self, name: str, call_fd: int, replies: Receiver, install: _Install):
        super().__init__(name, call_fd, replies)
        self.install = install

    def _request(self, message: tuple[Any, ...]) -> Any:
        self.install()
        return super()._request(message)


def _install_project(problem: Problem, code: str) -> None:
    """A project: its files with the candidate's blocks go to the candidate's process, which runs them from memory;
    PROJECT.call and PROJECT.batch in solve() reach the functions it names there, and only plain data comes back."""
    assert problem.project is not None
    files = problem.project.assemble(code)  # the server has checked the program
    calls = list(problem.project.calls)
    send(CALL_FD, ("project", files, calls))
    replies = Receiver(REPLY_FD)
    wait_reply(replies)
    remote = {name: RemoteFunction(name, CALL_FD, replies) for name in calls}
    handle = problem.module.PROJECT
    handle.remote = lambda name, args, kwargs: remote[name](*args, **kwargs)
    handle.remote_batch = lambda name, rows: remote[name].many(rows)


def _install_compiled(problem: Problem, code: str, checked: bool, plan: JitPlan) -> bool:
    """numba: the checked code's functions are defined (never run: `numba_load`) in a fresh restricted namespace,
    never the problem module's, which is also all their compiled form may see. Where they compile, the problem
    module gets the compiled functions; wherever they run as Python, it keeps the RemoteFunctions `_install` put
    there, so that no Python of the candidate's ever runs in this process. True where every evolved function
    is compiled, or will be at its first call, and the program has no load-time code."""
    if checked:
        validator.check(code, CANDIDATE_FILE)
    # A copy of the exposed constants: numba freezes what it reads as constants of the compiled code.
    scope = namespace.candidate_namespace(problem.candidate_modules, problem.exposed_helpers,
                                          copy.deepcopy(problem.exposed_constants), restricted=checked)
    evolved = problem.evolved_names
    ns = problem.module.__dict__
    if harnesses(ns):
        from evoforge.evaluators.inside import jit_compile

        return jit_compile.install(code, ns, plan, problem.settings.numba_fallback, _send, scope=scope)
    return _jit(code, ns, scope, evolved, plan, problem.settings.numba_fallback)


def _jit(code: str, ns: dict[str, Any], scope: dict[str, Any], evolved: tuple[str, ...], plan: JitPlan,
         fallback: str) -> bool:
    """Put a guard in place of each evolved function in `ns`: it compiles with numba (or falls back to Python, the
    RemoteFunction in `ns`) once the plan says so; until then the function runs as Python and the guard times it.
    True where every evolved function may compile at once (numba=True, or compilations at hand)."""
    from numba.core.registry import CPUDispatcher

    from evoforge.evaluators.inside import jit_compile

    after_s = 0.0 if plan.entries else plan.compile_after_s

    def report(key: str, data: str) -> None:
        _send({"t": "jit", "key": key, "data": data})

    # The jitted copies see a namespace where every candidate function is jitted too, so they can call each
    # other; solve() sees the guards. Numba freezes globals at compile time, so the copy changes nothing for it.
    try:
        jit_ns = jit_compile.jitted(code, scope, plan.entries, report, {"boundscheck": True})
    except jit_compile.numba_semantics.Divergent as exc:
        if fallback == "refuse":
            raise CandidateError(f"numba would not compute what Python computes, and this problem refuses such "
                               f"programs (numba_fallback='refuse'): {exc}") from None
        print(f"[evoforge] numba does not compile this program; it ran as plain Python: {exc}", file=sys.stderr)
        return False
    python = {n: ns[n] for n in evolved}
    for name in evolved:
        ns[name] = _FirstCall(ns, name, jit_ns.get(name), python[name], CPUDispatcher, after_s, fallback)
    return after_s <= 0 and all(isinstance(jit_ns.get(name), CPUDispatcher) for name in evolved)


class _FirstCall:
    """Stands in for an evolved function until a call decides: compiled dispatcher, or plain Python.

    With `after_s` > 0 ("auto"), calls run as Python and are timed until they add up to after_s (about what a
    compilation costs), and only then compile: a candidate run on small inputs never pays for numba, and one on
    large inputs pays at most that much extra before it runs compiled (the ski-rental rule). The next
    TRIAL_CALLS calls are timed too, and if the compiled function is slower per call than Python was (numba's
    dispatch costs more than a tiny function saves), the rest run as Python.
    """

    def __init__(self, ns: dict[str, Any], name: str, jitted: Any, python: Any, dispatcher_type: type[Any],
                 after_s: float = 0.0, fallback: str = "python"):
        self.ns, self.name, self.jitted, self.python = ns, name, jitted, python
        self.fallback = fallback
        self.dispatcher_type = dispatcher_type
        self.target: Any = None
        self.auto = after_s > 0
        self.python_left_s = after_s
        self.python_calls = 0
        self.python_s = 0.0
        self.trial_left = 0
        self.trial_s = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.target is not None:  # solve() may hold on to the guard itself
            return self.target(*args, **kwargs)
        if self.trial_left > 0:
            return self._trial(*args, **kwargs)
        if self.python_left_s > 0:
            start = time.perf_counter()
            try:
                return self.python(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.python_left_s -= spent
                self.python_s += spent
                self.python_calls += 1
        if not isinstance(self.jitted, self.dispatcher_type):
            _send({"t": "compile", "phase": "begin"})
            _send({"t": "compile", "phase": "end", "ok": False})
            print(f"[evoforge] numba could not wrap {self.name}; it ran as plain Python", file=sys.stderr)
            return self._decide(self.python)(*args, **kwargs)
        import numba

        _send({"t": "compile", "phase": "begin"})
        if kwargs:  # no signature to compile ahead from: compile by calling
            before = len(self.jitted.signatures)
            try:
                result = self.jitted(*args, **kwargs)
            except MemoryError:
                raise
            except Exception as exc:
                if len(self.jitted.signatures) > before:  # it compiled; the error is the program's own
                    _send({"t": "compile", "phase": "end", "ok": True})
                    self._decide(self.jitted)
                    raise
                return self._fall_back(exc)(*args, **kwargs)
            _send({"t": "compile", "phase": "end", "ok": True})
            self._decide(self.jitted)
            return result
        try:  # compile without running, so the program's own run time is not counted as compile time
            self.jitted.compile(tuple(numba.typeof(a) for a in args))
        except MemoryError:
            raise
        except Exception as exc:
            return self._fall_back(exc)(*args)
        _send({"t": "compile", "phase": "end", "ok": True})
        if self.auto and self.python_calls:
            self.trial_left = TRIAL_CALLS
            return self._trial(*args)
        return self._decide(self.jitted)(*args)

    def _trial(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.jitted(*args, **kwargs)
        finally:
            self.trial_s += time.perf_counter() - start
            self.trial_left -= 1
            if self.trial_left == 0:
                self._judge()

    def _judge(self) -> None:
        """Keep the compiled function only if it is faster per call than the Python one was."""
        compiled_us = 1e6 * self.trial_s / TRIAL_CALLS
        python_us = 1e6 * self.python_s / self.python_calls
        if compiled_us <= python_us:
            self._decide(self.jitted)
            return
        _send({"t": "jit", "compiled": False})
        print(f"[evoforge] numba: compiled {self.name} took {compiled_us:.2f} us per call, Python "
              f"{python_us:.2f} us; it runs as Python", file=sys.stderr)
        self._decide(self.python)

    def _fall_back(self, exc: Exception) -> Any:
        _send({"t": "compile", "phase": "end", "ok": False})
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        detail = "\n".join(lines[:6])[:800] or type(exc).__name__
        if self.fallback == "refuse":
            raise CandidateError(f"numba could not compile {self.name} in nopython mode, and this problem refuses such "
                               f"programs (numba_fallback='refuse'). {type(exc).__name__}: {detail}")
        print(f"[evoforge] numba could not compile {self.name}; it ran as plain Python. {type(exc).__name__}: "
              f"{detail}", file=sys.stderr)
        return self._decide(self.python)

    def _decide(self, target: Any) -> Any:
        self.target = target
        self.ns[self.name] = target
        return target
