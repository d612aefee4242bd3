"""Hostile candidates, one per case of issue 3, at every isolation level this machine offers.

Each test runs inside `Untouched` (tests/untouched.py): after the evaluation the engine, bystander processes and
the files outside the candidate's scratch directory are checked to be as they were. The cases that tamper with the
skeleton use cap_set, whose trusted score really verifies the output.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
import uuid
from pathlib import Path

import pytest
from untouched import MARKER, REPO, Untouched

from evoforge.evaluators import SandboxPool, load_problem
from evoforge.evaluators.isolation import available_levels
from evoforge.evaluators.scoring import plan_steps

FIXTURES = Path(__file__).parent / "fixtures"
TOY = FIXTURES / "toy_problem.py"
CAP_SET = REPO / "problems" / "cap_set.py"
LIMIT_S = 1.0
SEED_SCORES = {"a": 2.0, "b": 4.0}


@pytest.fixture(scope="module", params=available_levels(TOY))
def pool(request):
    # These candidates attack the operating-system layers (processes, files, sockets, memory) with everything
    # Python offers, so the language check that would refuse them first is off: what is tested is the layer below.
    with SandboxPool(load_problem(TOY, {"time_limit_s": str(LIMIT_S)}), 2, level=request.param,
                     check_code=False) as pool:
        yield pool


@pytest.fixture(scope="module")
def cap_pool():
    with SandboxPool(load_problem(CAP_SET, {"n": "4", "time_limit_s": "5"}), 1, check_code=False) as pool:
        yield pool


@pytest.fixture(autouse=True)
def untouched(request):
    """Every test here is checked to have left the engine, other processes and outside files alone."""
    name = "cap_pool" if "cap_pool" in request.fixturenames else "pool"
    with Untouched(request.getfixturevalue(name)) as guard:
        yield guard


def fn(body: str) -> str:
    """A candidate `f(x)` with the given body (indented for you)."""
    return "def f(x):\n" + "\n".join("    " + line for line in body.strip("\n").splitlines()) + "\n"


def assert_scores_like_the_seed(pool, body: str) -> None:
    """The candidate's attack was contained: it ran to the end and scored what the seed scores."""
    ev = pool.evaluate(fn(body))
    assert ev.status == "ok" and ev.scores == SEED_SCORES, ev


def marker() -> str:
    return f"{MARKER}{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- processes and threads


def test_threads_and_child_processes_do_not_outlive_it(pool):
    body = ("import os, threading, time\nif x == 1:\n"
            "    for _ in range(4):\n        if os.fork() == 0:\n            os.setsid()\n"
            "            time.sleep(600)\n"
            "    for _ in range(8):\n        threading.Thread(target=lambda: time.sleep(600)).start()\n"
            "    threading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\n"
            "return x * 2")
    assert_scores_like_the_seed(pool, body)


def test_forked_children_share_one_cpu_and_cannot_move_off_it(pool):
    """Children each get their own CPU-time limit, so the real bound is the one CPU they are all pinned to."""
    body = ("import os, resource, time\n"
            "if len(os.sched_getaffinity(0)) != 1:\n    raise RuntimeError('not pinned to one CPU')\n"
            "try:\n    os.sched_setaffinity(0, set(range(os.cpu_count())))\n"
            "    raise RuntimeError('the candidate moved itself to every CPU')\nexcept PermissionError:\n    pass\n"
            "before = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "t0 = time.monotonic()\nkids = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
            "        end = time.monotonic() + 0.5\n        while time.monotonic() < end:\n            pass\n"
            "        os._exit(0)\n    kids.append(pid)\nfor pid in kids:\n    os.waitpid(pid, 0)\n"
            "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\nwall = time.monotonic() - t0\n"
            "cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime\n"
            "if cpu > 1.25 * wall:\n"
            "    raise RuntimeError(f'children used {cpu:.2f} s of CPU in {wall:.2f} s')\n"
            "return x * 2")
    assert_scores_like_the_seed(pool, body)


def test_alarm_handler_that_ignores_the_limit_times_out(pool):
    body = ("import signal\nsignal.signal(signal.SIGALRM, lambda *a: signal.alarm(1))\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass")
    t0 = time.monotonic()
    ev = pool.evaluate(fn(body))
    assert ev.status == "timeout" and time.monotonic() - t0 < LIMIT_S + 30  # generous: loaded machines


@pytest.mark.parametrize("attack", [
    "os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
    "os.kill(-1, signal.SIGKILL)",
    "os.kill(-1, signal.SIGSTOP)",
    "os.killpg(os.getpgid(0), signal.SIGKILL)",
])
def test_killing_parent_group_or_everything_leaves_the_engine_running(pool, attack):
    if "-1" in attack and pool.isolation == "rlimits-only" and not pool._workers[0].uid:
        pytest.skip("without root, rlimits-only candidates run as you: kill(-1) would reach this test (see README)")
    ev = pool.evaluate(fn(f"import os, signal\ntry:\n    {attack}\nexcept OSError:\n    pass\nreturn x * 2"))
    # A stopped harness (the candidate's process shares its uid without root) is a timeout, never a score.
    assert ev.status in ("ok", "crashed", "error", "timeout"), ev
    for _ in range(3):
        assert pool.evaluate(fn("return x * 2")).scores == SEED_SCORES


# ---------------------------------------------------------------- crashes


@pytest.mark.parametrize(("body", "status", "reason"), [
    ("import ctypes\nctypes.memset(0, 1, 8)", "crashed", "SIGSEGV"),  # a real write through a NULL pointer
    ("import ctypes\nctypes.CDLL(None).abort()", "crashed", "SIGABRT"),
    ("import sys\nsys.setrecursionlimit(10 ** 8)\ndef deep(n):\n    return list(map(deep, [n + 1]))\n"
     "return deep(0)", "crashed", "SIGSEGV"),  # recursion through C code: the C stack overflows
    ("def deep(n):\n    return deep(n + 1) + 1\nreturn deep(0)", "error", "RecursionError"),
    ("raise SystemExit(0)", "error", "SystemExit: 0"),  # an exception of the candidate's call like any other
    ("import os\nos._exit(0)", "crashed", "exited with code 0"),
])
def test_crashes_are_recorded_with_the_reason(pool, body, status, reason):
    ev = pool.evaluate(fn(body))
    assert ev.status == status and reason in ev.error, ev
    assert pool.evaluate(fn("return x * 2")).status == "ok"


def test_printing_without_end_is_capped_and_timed_out(pool):
    body = "import os\nchunk = b'z' * (1 << 20)\nwhile True:\n    os.write(1, chunk)"
    ev = pool.evaluate(fn(body))
    assert ev.status == "timeout"
    assert len(ev.stdout) < 70_000 and "dropped" in ev.stdout


# ---------------------------------------------------------------- network


class _Listeners:
    """TCP, UDP and Unix (abstract and file) servers on this machine that note any connection or datagram."""

    def __init__(self, tmp: Path) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.abstract_name = "\0" + marker()
        self.abstract = socket.socket(socket.AF_UNIX)
        self.abstract.bind(self.abstract_name)
        self.path = str(tmp / "engine.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.path)
        os.chmod(tmp, 0o777)
        os.chmod(self.path, 0o777)
        self.sockets = [self.tcp, self.udp, self.abstract, self.unix]
        for s in (self.tcp, self.abstract, self.unix):
            s.listen(4)
        for s in self.sockets:
            s.setblocking(False)
        self.heard: list[str] = []

    def poll(self) -> list[str]:
        for s in self.sockets:
            try:
                s.accept() if s is not self.udp else s.recvfrom(100)
                self.heard.append(repr(s))
            except BlockingIOError:
                pass
        return self.heard

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def test_no_connection_is_ever_made(pool, tmp_path):
    listeners = _Listeners(tmp_path)
    port = listeners.tcp.getsockname()[1]
    targets = [(int(family), int(kind), address) for family, kind, address in [
        (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", port)),
        (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", listeners.udp.getsockname()[1])),
        (socket.AF_INET, socket.SOCK_STREAM, ("192.0.2.1", 80)),  # TEST-NET-1: somewhere else
        (socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 53)),
        (socket.AF_INET6, socket.SOCK_STREAM, ("::1", port)),
        (socket.AF_UNIX, socket.SOCK_STREAM, listeners.abstract_name),
        (socket.AF_UNIX, socket.SOCK_STREAM, listeners.path)]]
    # Where the candidate cannot read the Python install (rlimits-only, another uid), it calls libc directly:
    # there even creating a socket counts as reaching out.
    body = ("reached = []\ntry:\n    import socket\nexcept ImportError:\n    import ctypes\n"
            "    libc = ctypes.CDLL(None)\n"
            f"    reached = [k for f, k, _ in {targets!r} if libc.socket(f, k, 0) >= 0]\n"
            "    socket = None\n"
            f"for family, kind, address in {targets!r} if socket else []:\n"
            "    try:\n        s = socket.socket(family, kind)\n        s.settimeout(0.3)\n"
            "        s.connect(address)\n        s.send(b'x')\n        reached.append(address)\n"
            "    except OSError:\n        pass\n"
            "return -1000 if reached else x * 2")
    try:
        ev = pool.evaluate(fn(body))
        time.sleep(0.05)
        assert listeners.poll() == []
    finally:
        listeners.close()
    assert ev.status == "ok" and ev.scores == SEED_SCORES, ev


# ---------------------------------------------------------------- files and secrets


def test_writes_outside_scratch_leave_nothing(pool):
    name = marker()
    new_files = [REPO / name, FIXTURES / name, Path("/tmp") / name, Path.home() / name, Path("/var/tmp") / name,
                 Path("/dev/shm") / name, Path.cwd() / name]
    existing = [TOY, REPO / "README.md", REPO / "evaluators" / "sandbox.py"]
    body = (f"import os\nfor path in {[str(p) for p in new_files]!r}:\n"
            "    try:\n        open(path, 'w').write('x')\n    except OSError:\n        pass\n"
            f"for path in {[str(p) for p in existing]!r}:\n"
            "    try:\n        open(path, 'a').write('# planted')\n    except OSError:\n        pass\n"
            "    try:\n        os.chmod(path, 0o777)\n    except OSError:\n        pass\n"
            f"try:\n    os.symlink('/tmp/{name}-link', 'link')\n    open('link', 'w').write('x')\nexcept OSError:\n"
            "    pass\nopen('scratch.txt', 'w').write('ok')\nreturn x * 2")
    ev = pool.evaluate(fn(body))
    assert ev.status == "ok", ev
    assert not [p for p in new_files if p.exists()] and not Path(f"/tmp/{name}-link").exists()
    assert all(p.stat().st_mode & 0o777 != 0o777 for p in existing)


def test_what_one_candidate_leaves_in_temp_folders_the_next_never_sees(pool):
    """Two candidates on one server: the second finds none of the first's files in /tmp, /var/tmp or /dev/shm."""
    name = marker()
    folders = ["/tmp", "/var/tmp", "/dev/shm"]
    writer = (f"import os\nfor d in {folders!r}:\n    try:\n"
              f"        os.makedirs(d + '/{name}-dir', exist_ok=True)\n"
              f"        open(d + '/{name}-dir/f', 'w').write('x' * 1000)\n"
              f"        open(d + '/{name}', 'w').write('left')\n    except OSError:\n        pass\n"
              "return x * 2")
    reader = (f"import os\nfor d in {folders!r}:\n"
              f"    if os.path.exists(d + '/{name}') or os.path.exists(d + '/{name}-dir'):\n"
              "        raise RuntimeError('found what the previous candidate left in ' + d)\n"
              "return x * 2")
    problem = load_problem(TOY, {"time_limit_s": str(LIMIT_S)})
    with SandboxPool(problem, 1, level=pool.isolation, check_code=False) as one_server:
        for code in (fn(writer), fn(reader)):
            ev = one_server.evaluate(code)
            assert ev.status == "ok" and ev.scores == SEED_SCORES, ev


def test_forked_children_share_one_memory_limit(pool):
    """RLIMIT_AS is per process and each fork gets it afresh: the server sums the candidate's processes."""
    body = ("import os, time\nimport numpy as np\nif x == 1:\n    for _ in range(4):\n        if os.fork() == 0:\n"
            "            block = np.ones(400 * 2 ** 20 // 8)\n            time.sleep(30)\n            os._exit(0)\n"
            "    time.sleep(30)\nreturn x * 2")
    problem = load_problem(TOY, {"time_limit_s": "20"})  # memory_limit_mb is 1024: 4 x 400 MB is over it
    with SandboxPool(problem, 1, level=pool.isolation, check_code=False) as roomy:
        t0 = time.monotonic()
        ev = roomy.evaluate(fn(body))
    assert ev.status == "memory" and "processes together" in (ev.error or ""), ev
    assert time.monotonic() - t0 < 20  # the memory sum ended it, before the 20 s time limit would have


def test_a_folder_nested_thousands_deep_does_not_break_the_cleanup(pool):
    """shutil.rmtree gives up with RecursionError at about a thousand levels; the next candidates must not care."""
    body = "import os\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\nreturn x * 2"
    with SandboxPool(load_problem(TOY, {"time_limit_s": "5"}), 1, level=pool.isolation, check_code=False) as one_server:
        for code in (fn(body), fn("return x * 2"), fn("return x * 2")):
            ev = one_server.evaluate(code)
            assert ev.status == "ok" and ev.scores == SEED_SCORES, ev


@pytest.mark.parametrize("attempt", [
    "libc.mq_open(b'/evoforge-q', 0o100 | 0o2, 0o600, None)",  # POSIX message queue
    "libc.syscall(206, 64, ctypes.byref(ctypes.c_ulong(0)))",  # io_setup: kernel AIO
    "libc.syscall(42, pair[0], b'\\x01\\x00/dev/log\\x00', 11)",  # connect a socketpair end to a host socket
    "libc.syscall(44, pair[0], b'x', 1, 0, b'\\x01\\x00/dev/log\\x00', 11)",  # sendto with an address
])
def test_ways_out_of_a_socketpair_and_kernel_pools_are_refused(pool, attempt):
    # Only ctypes (imported by the harness already): at rlimits-only the candidate's uid may not be able to read
    # a Python installed under /root to import anything new.
    body = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "fds = (ctypes.c_int * 2)()\nassert libc.socketpair(1, 2, 0, fds) == 0\npair = (fds[0], fds[1])\n"
            f"result = {attempt}\n"
            "if result != -1:\n    raise RuntimeError(f'allowed: {result}')\n"
            "assert os.write(pair[0], b'plain writes on the pair still work') > 0 and os.read(pair[1], 100)\n"
            "return x * 2")
    assert_scores_like_the_seed(pool, body)


def test_anonymous_memory_files_are_refused(pool):
    """memfd pages count against no address space (unmapped) or as shared (mapped): they would escape the limit."""
    body = ("import os\ntry:\n    os.memfd_create('hoard')\n    raise RuntimeError('memfd_create worked')\n"
            "except PermissionError:\n    pass\nreturn x * 2")
    assert_scores_like_the_seed(pool, body)


def test_millions_of_empty_files_end_the_candidate(pool):
    """Empty files use inodes, not the tmpfs's bytes: kernel memory no limit counts, so the count is capped."""
    body = ("import os\nos.mkdir('many')\nfor i in range(10 ** 7):\n    open(f'many/{i}', 'w').close()\n"
            "return x * 2")
    with SandboxPool(load_problem(TOY, {"time_limit_s": "60"}), 1, level=pool.isolation,
                     check_code=False) as roomy:
        ev = roomy.evaluate(fn(body))
        assert ev.status == "memory" and "files" in (ev.error or ""), ev  # the cap ended it, not the time limit
        assert roomy.evaluate(fn("return x * 2")).status == "ok"  # and the server is fine afterwards


def test_system_v_shared_memory_is_refused(pool):
    """A SysV segment is charged to no process's memory limit and outlives the candidate: shmget must fail."""
    body = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "segment = libc.shmget(0x5EC0 + x, 64 << 20, 0o1000 | 0o600)\n"
            "if segment != -1:\n    raise RuntimeError(f'shmget gave segment {segment}')\n"
            "return x * 2")
    assert_scores_like_the_seed(pool, body)


def test_secret_files_and_the_engine_environment_stay_unread(pool, tmp_path, monkeypatch):
    secret = "sk-" + uuid.uuid4().hex
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    files = [tmp_path / ".env", Path.home() / f"{marker()}.key"]
    for path in files:
        path.write_text(secret)
        path.chmod(0o600)
    body = (f"import os\nseen = repr(dict(os.environ))\n"
            f"for path in {[str(p) for p in files]!r} + [f'/proc/{{p}}/environ' for p in os.listdir('/proc')\n"
            "        if p.isdigit()] + ['/proc/1/environ', '/proc/self/environ']:\n"
            "    try:\n        seen += open(path, errors='replace').read()\n    except OSError:\n        pass\n"
            f"return -1000 if {secret!r} in seen or 'ANTHROPIC' in seen else x * 2")
    try:
        ev = pool.evaluate(fn(body))
    finally:
        for path in files:
            path.unlink()
    assert ev.status == "ok" and ev.scores == SEED_SCORES, ev


def test_secrets_and_run_databases_in_the_working_folder_stay_hidden(pool, tmp_path, monkeypatch):
    """The engine's working folder is visible to the sandbox (for relative --set paths), but a `.env` with keys,
    the run database and `.git` in it are covered. rlimits-only shares the host's files: see the README."""
    if pool.isolation == "rlimits-only":
        pytest.skip("rlimits-only shares the host's filesystem (README: where isolation is missing)")
    secret = "sk-" + uuid.uuid4().hex
    project = tmp_path / "project"
    (project / "runs").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "config" / "deploy").mkdir(parents=True)
    targets = [project / ".env", project / "runs" / "evoforge.db", project / ".git" / "config",
               project / "prod.key", project / "config" / ".env", project / "config" / "deploy" / "server.pem"]
    for path in targets:
        path.write_text(secret)
    (project / "data.json").write_text("[1, 2]")  # an ordinary file stays readable
    monkeypatch.chdir(project)
    body = (f"seen = ''\nfor path in {[str(p) for p in targets]!r}:\n"
            "    try:\n        seen += open(path).read()\n    except OSError:\n        pass\n"
            f"if {secret!r} in seen:\n    raise RuntimeError('read a secret')\n"
            f"if open({str(project / 'data.json')!r}).read() != '[1, 2]':\n    raise RuntimeError('data hidden')\n"
            "return x * 2")
    with SandboxPool(load_problem(TOY, {"time_limit_s": str(LIMIT_S)}), 1, level=pool.isolation,
                     check_code=False) as here:
        ev = here.evaluate(fn(body))
    assert ev.status == "ok" and ev.scores == SEED_SCORES, ev


def test_published_answers_bundled_with_the_problems_stay_hidden(pool):
    """The AlphaEvolve circle packings ship with evoforge (for the tests); a candidate must not return them. The
    bundled instances a problem reads as inputs stay readable."""
    if pool.isolation == "rlimits-only":
        pytest.skip("rlimits-only shares the host's filesystem (README: where isolation is missing)")
    data = REPO / "problems" / "data"
    body = (f"try:\n    seen = open({str(data / 'alphaevolve_constructions.json')!r}).read()\n"
            "except OSError:\n    seen = ''\n"
            "if 'n26' in seen:\n    raise RuntimeError('read the answers')\n"
            f"if 'u500_00' not in open({str(data / 'or3.json')!r}).read():\n    raise RuntimeError('inputs hidden')\n"
            "return x * 2")
    ev = pool.evaluate(fn(body))
    assert ev.status == "ok" and ev.scores == SEED_SCORES, ev


# ---------------------------------------------------------------- tampering (cap_set: the score verifies)


PICKLE_MARKER = Path("/tmp") / marker()


class _Trap:
    """Unpickling this object on the trusted side would create PICKLE_MARKER."""

    def __reduce__(self):
        return (os.system, (f"touch {PICKLE_MARKER}",))


TRAP = pickle.dumps(_Trap())
PRIORITY = "def priority(el, n):\n    return 0.0\n"


@pytest.mark.parametrize("code", [
    # a patched skeleton: solve returns every vector of F_3^4, far "larger" than any cap set
    PRIORITY + "import itertools\n\ndef solve(n):\n    return [list(v) for v in itertools.product((0, 1, 2), "
               "repeat=n)]\n",
    # patch solve and the sandbox's copy of score, through the module object (none is loaded in its process)
    PRIORITY + "import sys\nfor mod in [m for m in sys.modules.values() if hasattr(m, 'REFERENCE_SIZES')]:\n"
               "    mod.score = lambda n, output: 1e9\n    mod.solve = lambda n: [[0] * n] * 500\n",
    PRIORITY + "def solve(n):\n    return float('nan')\n",
    PRIORITY + "def solve(n):\n    return [[float('inf')] * n]\n",
    PRIORITY + "class Forged(list):\n    def __len__(self):\n        return 10 ** 6\n\n"
               "def solve(n):\n    return Forged([[0] * n, [0] * n])\n",
    PRIORITY + "class Fake:\n    def __float__(self):\n        return 1e9\n\ndef solve(n):\n    return Fake()\n",
    PRIORITY + f"import pickle\n\ndef solve(n):\n    return pickle.loads({TRAP!r})\n",
    PRIORITY + f"def solve(n):\n    return {TRAP!r}\n",
])
def test_a_candidate_cannot_replace_the_harness(cap_pool, code):
    """Whatever else the code defines or patches lives in the candidate's own process: the problem's solve runs,
    calls the candidate's priority, and the score is the honest one (the seed's)."""
    ev = cap_pool.evaluate(code)
    assert ev.status == "ok" and ev.scores == {"n3": 8.0, "n4": 16.0}, ev
    assert not PICKLE_MARKER.exists()


def _frame(payload: str) -> bytes:
    data = payload.encode()
    return len(data).to_bytes(4, "big") + data


@pytest.mark.parametrize("value", [
    '{"$ndarray": ["|O", [1], "%s"]}',  # an object array whose bytes are a pickle
    '{"$pickle": "%s"}',
    '{"$ndarray": ["<f8", [1], "%s"]}',  # the wrong number of bytes for the shape
])
def test_forged_frames_reach_nothing(cap_pool, value):
    """The candidate's process holds no pipe to the server: frames written to every fd it has go nowhere that
    trusts them (its call channel takes them as a malformed reply), and nothing is unpickled."""
    import base64

    payload = value % base64.b64encode(TRAP).decode()
    first = plan_steps(cap_pool.problem, list(cap_pool.problem.inputs), True)[0].inputs[0]
    frames = _frame(f'{{"t": "output", "name": "{first}", "value": {payload}}}') + _frame('{"t": "done"}')
    code = ("import os\n\ndef priority(el, n):\n    for fd in range(3, 64):\n        try:\n"
            f"            os.write(fd, {frames!r})\n        except OSError:\n            pass\n    return 0.0\n")
    ev = cap_pool.evaluate(code)
    # The frames land on its reply channel as bytes of no valid message (a wrong length, a wrong tag): a crash.
    # How it ends depends on scheduling (the harness refusing the frame and closing the channel, the candidate's
    # next write finding it closed, SIGPIPE, or the process ending before any result): always a crash, never a
    # forged output accepted, and nothing unpickled.
    assert ev.status == "crashed" and not ev.scores, ev
    assert not PICKLE_MARKER.exists()


def test_forged_channel_messages_are_refused(cap_pool):
    """Bytes the candidate writes on its reply channel are decoded as plain data only, never as objects."""
    forged = (len(b"lxxxx").to_bytes(4, "little") + b"g" + b"\xff" * 64)
    code = ("import os\n\ndef priority(el, n):\n"
            f"    os.write(4, {forged!r})\n    os._exit(0)\n")
    ev = cap_pool.evaluate(code)
    assert ev.status == "crashed", ev
    assert cap_pool.evaluate(cap_pool.problem.seed_code).status == "ok"


