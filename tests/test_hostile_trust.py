"""Candidates that try to learn the answer instead of computing it (issue 13), in real sandboxes.

Each route a strong model would try is tried twice where it can be: as written (the language check refuses it
before anything runs, with the rule in the error) and, for the runtime layers, with the language check off
(`check_code=False`, full builtins): the candidate's own process then still holds nothing but its arguments, so
the search for the instance, the problem module, the held-out inputs or the scorer finds nothing and the
candidate scores what the honest heuristic inside it scores. Honest numpy-heavy candidates keep their exact scores.
"""

from __future__ import annotations

import ctypes
import os
import random
import types
from pathlib import Path

import numpy as np
import pytest
from in_process import in_process

from evoforge.evaluators import SandboxPool, load_problem
from evoforge.evaluators.channel import ChannelError, decode, encode
from evoforge.evaluators.inside import seccomp
from evoforge.evaluators.validator import Refused, check

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = REPO / "problems"
# numba off: the candidate's functions run in a process of their own (with numba they are compiled in the
# harness's process, and the language check and restricted namespace are the boundary: tested below).
SMALL_BINS = {"num_items": "200", "num_instances": "2", "held_out_instances": "1", "numba": "false"}
BEST_FIT = "def priority(item, bins):\n    return -(bins - item)\n"

# FunSearch's published heuristic for online bin packing (Weibull), numpy throughout.
FUNSEARCH_BINS = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    max_bin_cap = max(bins)
    score = (bins - max_bin_cap) ** 2 / item + bins**2 / (item**2)
    score += bins**2 / item**3
    score[bins > item] = -score[bins > item]
    score[1:] -= score[:-1]
    return score
'''
# After FunSearch's published n=8 cap set heuristic (symmetry of mirrored coordinates, zeros weighted by place),
# guarded so that it runs in every dimension from 3 on.
FUNSEARCH_CAPS = '''def priority(el: tuple[int, ...], n: int) -> float:
    score = float(n)
    zeros = el.count(0)
    v = np.array(el)
    if zeros == 0:
        score += n ** 2
        for i in range(1, min(4, n // 2 + 1)):
            if el[i] == el[-i]:
                score *= 1.5
    seen = 0
    for e in el:
        if e == 0:
            score *= n * 0.5 ** seen if seen else n * 0.5
            seen += 1
        else:
            score += 1
    return score + 0.01 * float(np.sum(v == 2))
'''


def pool_for(name: str, overrides: dict[str, str] | None = None, *, check_code: bool = True) -> SandboxPool:
    return SandboxPool(load_problem(PROBLEMS / f"{name}.py", overrides or {}), 1, check_code=check_code)


@pytest.fixture(scope="module")
def bins():
    with pool_for("bin_packing", SMALL_BINS) as pool:
        yield pool


@pytest.fixture(scope="module")
def bins_unchecked():
    with pool_for("bin_packing", SMALL_BINS, check_code=False) as pool:
        yield pool




def refused(ev, *words: str) -> None:
    assert ev.status == "error" and ev.error.startswith("refused before running"), ev
    for word in words:
        assert word in ev.error, ev.error


# ---------------------------------------------------------------- the routes, as a model writes them

SOLVE_FRAME = '''def priority(item, bins):
    import sys
    caller = sys._getframe(1)
    items = caller.f_locals.get("items")
    return -(bins - item) if items is None else -abs(bins - item - min(items))
'''
TRACEBACK = '''def priority(item, bins):
    try:
        raise ValueError
    except ValueError as e:
        frame = e.__traceback__.tb_frame.f_back
    return -(bins - item) + 0 * len(frame.f_locals)
'''
GENERATOR = '''def priority(item, bins):
    gen = (x for x in [1])
    up = gen.gi_frame.f_back
    return -(bins - item)
'''
GC = '''def priority(item, bins):
    import gc
    instances = [o for o in gc.get_objects() if isinstance(o, dict) and "items" in o]
    return -(bins - item)
'''
INSPECT = '''def priority(item, bins):
    import inspect
    outer = inspect.stack()[1].frame.f_locals
    return -(bins - item)
'''
CTYPES = '''def priority(item, bins):
    import ctypes
    return -(bins - item)
'''
NUMPY_CTYPES = '''def priority(item, bins):
    address = bins.ctypes.data
    return -(bins - item)
'''
AS_STRIDED = '''def priority(item, bins):
    wide = np.lib.stride_tricks.as_strided(bins, shape=(10 ** 6,), strides=(8,))
    return -(bins - item)
'''
GLOBALS = '''def priority(item, bins):
    harness = priority.__globals__
    return -(bins - item)
'''
BUILTIN_GLOBALS = '''def priority(item, bins):
    g = globals()
    return -(bins - item)
'''
FORMAT_LOOKUP = '''def priority(item, bins):
    leak = "{0.__globals__}".format(priority)
    return -(bins - item)
'''
PROBLEM_MODULE = '''def priority(item, bins):
    import sys
    problem = [m for m in sys.modules.values() if hasattr(m, "held_out_inputs")][0]
    return -(bins - item)
'''
NUMPY_FILES = '''def priority(item, bins):
    data = np.loadtxt("/etc/hostname")
    other = np.fromfile("/etc/hostname")
    return -(bins - item)
'''
OPEN = '''def priority(item, bins):
    with open("/etc/hostname") as f:
        f.read()
    return -(bins - item)
'''


@pytest.mark.parametrize(("code", "words"), [
    (SOLVE_FRAME, ["import sys", ".f_locals"]),
    (TRACEBACK, [".__traceback__", ".tb_frame", ".f_back"]),
    (GENERATOR, [".gi_frame"]),
    (GC, ["import gc"]),
    (INSPECT, ["import inspect"]),
    (CTYPES, ["import ctypes"]),
    (NUMPY_CTYPES, [".ctypes"]),
    (AS_STRIDED, [".lib", ".stride_tricks", ".as_strided"]),
    (GLOBALS, [".__globals__"]),
    (BUILTIN_GLOBALS, ["`globals`"]),
    (FORMAT_LOOKUP, [".format", "f-string"]),
    (PROBLEM_MODULE, ["import sys", "`hasattr`"]),
    (NUMPY_FILES, [".loadtxt", ".fromfile"]),
    (OPEN, ["`open`"]),
], ids=["solve-frame", "traceback", "generator", "gc", "inspect", "ctypes", "numpy-ctypes", "as_strided",
        "globals-attr", "globals-builtin", "format", "problem-module", "numpy-files", "open"])
def test_each_route_is_refused_before_running_with_the_rule(bins, code, words):
    refused(bins.evaluate(code), *words)


def test_the_private_helpers_and_data_are_not_there(tmp_path):
    """Names of the problem file that it does not expose are not defined for the evolved code."""
    with pool_for("symbolic_regression") as pool:
        law = ("def features(length, theta):\n    return np.stack([true_period(length, theta, 9.81)], axis=1)\n")
        ev = pool.evaluate(law)
        assert ev.status == "error" and "NameError: name 'true_period' is not defined" in ev.error, ev
    with pool_for("train_classifier") as pool:
        peek = ("def train(x, y, rng):\n    xv, yv = _digits(0, 'validation')\n    return []\n")
        ev = pool.evaluate(peek)
        assert ev.status == "error" and "NameError: name '_digits' is not defined" in ev.error, ev
        refused(pool.evaluate("def train(x, y, rng):\n    import sklearn\n    return []\n"), "import sklearn")


def test_an_exposed_helper_is_a_fresh_copy(tmp_path):
    """circle packing exposes safe_radii: the copy the candidate calls has the candidate's namespace as globals,
    so even with the language check off it leads to nothing of the problem module."""
    with pool_for("circle_packing", check_code=False) as pool:
        snoop = ("def pack(n):\n    g = safe_radii.__globals__\n"
                 "    if 'score' in g or 'solve' in g or 'inputs' in g:\n        raise RuntimeError('reached')\n"
                 "    k = math.ceil(math.sqrt(n))\n"
                 "    centres = np.array([((i + 0.5) / k, (j + 0.5) / k) for j in range(k) for i in range(k)][:n])\n"
                 "    return np.column_stack([centres, safe_radii(centres)])\n")
        ev = pool.evaluate(snoop)
        assert ev.status == "ok" and ev.score == pytest.approx(2.1666666666406664, abs=0), ev


def test_with_numba_the_problem_module_is_not_the_candidates_namespace():
    """Compiled in the harness's process, the evolved code still sees only its namespace: the problem module's
    helpers and data are not names it can use, compiled or (numba's fallback) as Python."""
    overrides = {k: v for k, v in SMALL_BINS.items() if k != "numba"}
    with pool_for("bin_packing", overrides) as pool:
        assert pool.problem.settings.numba
        honest = pool.evaluate(BEST_FIT)
        assert honest.status == "ok" and honest.compiled is True, honest
        for name in ("l1_bound", "solve", "held_out_inputs", "_weibull_instances"):
            ev = pool.evaluate(f"def priority(item, bins):\n    return -(bins - item) + 0 * len([{name}])\n")
            assert ev.status == "error" and f"name '{name}' is not defined" in ev.error, ev


# ---------------------------------------------------------------- the runtime layers, with the check off

HUNT_INSTANCE = '''def priority(item, bins):
    import gc, sys
    frame = sys._getframe()
    while frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, (list, dict)) and ("items" in value if isinstance(value, dict) else len(value) > 50):
                raise RuntimeError("found the instance in a frame")
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, dict) and "items" in obj and "capacity" in obj:
            raise RuntimeError("found the instance in memory")
    for name, module in list(sys.modules.items()):
        if hasattr(module, "held_out_inputs") or hasattr(module, "l1_bound"):
            raise RuntimeError("found the problem module " + name)
    return -(bins - item)
'''
SPOT_HELD_OUT = '''SEEN = []

def priority(item, bins):
    import gc, os, sys
    if not SEEN:
        SEEN.append(1)
        texts = [str(sys.argv), str(dict(os.environ))]
        for obj in gc.get_objects():
            if isinstance(obj, dict):
                texts += [k for k in obj if isinstance(k, str)] + [v for v in obj.values() if isinstance(v, str)]
            elif isinstance(obj, (list, tuple)):
                texts += [v for v in obj if isinstance(v, str)]
        wanted = "_".join(["weibull", "heldout"])  # built at run time: the code itself holds no match
        if any(wanted in t for t in texts if t is not wanted):
            while True:
                pass
    return -(bins - item)
'''


def test_without_the_check_the_candidates_process_holds_no_instance_and_no_problem(bins_unchecked):
    ev = bins_unchecked.evaluate(HUNT_INSTANCE)
    assert ev.status == "ok" and ev.score == in_process(bins_unchecked.problem, BEST_FIT), ev


def test_the_held_out_run_cannot_be_told_from_a_training_run(bins_unchecked):
    """A program that hangs once it sees held-out inputs (a harness local, before) runs like any other."""
    training = bins_unchecked.evaluate(SPOT_HELD_OUT)
    held_out = bins_unchecked.evaluate(SPOT_HELD_OUT, held_out=True)
    assert training.status == "ok" and held_out.status == "ok", (training, held_out)
    assert held_out.score == in_process(bins_unchecked.problem, BEST_FIT, held_out=True)


def test_train_classifier_without_the_check_finds_no_validation_or_test_images():
    hunt = ("def train(x, y, rng):\n    import gc, sys\n"
            "    for o in gc.get_objects():\n"
            "        if isinstance(o, np.ndarray) and o.ndim == 2 and o.shape[0] in (397, 400) and o.shape[1] == 64:\n"
            "            raise RuntimeError('found evaluation images')\n"
            "    if any(hasattr(m, '_evaluation_split') for m in list(sys.modules.values())):\n"
            "        raise RuntimeError('found the problem module')\n"
            "    return [np.zeros((64, 10)), np.zeros(10)]\n")
    with pool_for("train_classifier", check_code=False) as pool:
        ev = pool.evaluate(hunt)
        honest = "def train(x, y, rng):\n    return [np.zeros((64, 10)), np.zeros(10)]\n"
        assert ev.status == "ok" and ev.score == in_process(pool.problem, honest), ev


def test_the_candidates_process_can_open_no_file_and_start_no_program():
    """The second seccomp filter (numba off): open, openat, creat and exec fail with EACCES."""
    if not seccomp.supported():
        pytest.skip("seccomp filters are x86_64 only")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(38, 1, 0, 0, 0)  # no_new_privs
            seccomp.install(libc, files=True)
            results = []
            for attempt in (lambda: open("/etc/hostname").close(), lambda: os.open("/tmp", os.O_RDONLY),
                            lambda: os.execv("/bin/true", ["true"])):
                try:
                    attempt()
                    results.append("allowed")
                except PermissionError:
                    results.append("refused")
            os.write(w, ",".join(results).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    got = os.read(r, 100).decode()
    os.waitpid(pid, 0)
    assert got == "refused,refused,refused"


# ---------------------------------------------------------------- honest candidates keep their scores


def test_honest_numpy_heavy_candidates_keep_their_exact_scores(bins):
    ev = bins.evaluate(FUNSEARCH_BINS)
    assert ev.status == "ok" and ev.score == in_process(bins.problem, FUNSEARCH_BINS), ev
    with pool_for("cap_set", {"n": "6"}) as caps:
        ev = caps.evaluate(FUNSEARCH_CAPS)
        assert ev.status == "ok" and ev.score == in_process(caps.problem, FUNSEARCH_CAPS), ev


# ---------------------------------------------------------------- the language check and the codec alone


@pytest.mark.parametrize("code", [
    "def f(x):\n    return x.__class__\n",
    "def f(x):\n    return x._private\n",
    "def f(x):\n    return getattr(x, 'y')\n",
    "def f(x):\n    return vars()\n",
    "def f(x):\n    return eval('1')\n",
    "def f(x):\n    return type(x)\n",
    "def f(x):\n    import os\n",
    "def f(x):\n    from numpy import lib\n",
    "def f(x):\n    from numpy.lib import stride_tricks\n",
    "def f(x):\n    import numpy.testing\n",
    "def f(x):\n    from math import *\n",
    "def f(x):\n    x.y = 1\n",
    "def f(x):\n    class A:\n        pass\n",
    "async def f(x):\n    pass\n",
    "def f(x):\n    import functools\n    return functools.update_wrapper\n",
    "def f(x):\n    import operator\n    return operator.attrgetter('a')\n",
    "def f(x):\n    match x:\n        case int(__class__=c):\n            return c\n",
    "def f(__x):\n    return 1\n",
    "def f(x):\n    try:\n        pass\n    except Exception as __e:\n        pass\n",
    "def f(x):\n    return [g.gi_code for g in x]\n",
    "def f(x):\n    return x.co_consts\n",
])
def test_the_check_refuses(code):
    with pytest.raises(Refused):
        check(code)


@pytest.mark.parametrize("code", [
    FUNSEARCH_BINS, FUNSEARCH_CAPS,
    "def f(x):\n    import math, itertools, functools, collections, heapq, bisect, random\n"
    "    from numpy.linalg import norm\n    import numpy.random as npr\n"
    "    h = []\n    heapq.heappush(h, (1, 2))\n    c = collections.Counter([1, 1])\n"
    "    rng = np.random.default_rng(0)\n    return f'{norm(np.ones(3)):.3f}', functools.reduce(max, [1, 2]), c\n",
    "def f(x, *args, **kwargs):\n    g = (i * i for i in range(3))\n    try:\n        return sum(g) + x\n"
    "    except ZeroDivisionError as e:\n        return e.args\n",
])
def test_the_check_lets_ordinary_numerical_code_through(code):
    check(code)


def test_the_codec_round_trips_plain_data_and_refuses_garbage_with_its_own_error():
    values = [None, True, -3, 2**80, 1.5, 2j, "é", b"x", [1, 2], [1.0, 2.5], (1, "a"), {3}, frozenset({4}),
              {"k": [(1, 2), (3, 4)]}, np.arange(6, dtype=np.int32).reshape(2, 3), [], ()]
    for value in values:
        back = decode(encode(value))
        if isinstance(value, np.ndarray):
            assert back.dtype == value.dtype and (back == value).all()
        else:
            assert back == value and type(back) is type(value)
    with pytest.raises(ChannelError):
        encode(object())
    with pytest.raises(ChannelError):
        encode(np.array([object()]))
    rng = random.Random(0)
    good = encode({"a": [1.0, 2.0], "b": (np.zeros(3), "x")})
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            decode(bytes(data))
        except ChannelError:
            pass
    with pytest.raises(ChannelError):
        decode(encode(np.random.default_rng(0)))  # a Generator only ever travels to the candidate
    assert isinstance(decode(encode(np.random.default_rng(0)), generators=True), np.random.Generator)


def test_module_views_hold_no_module_outside_the_allowed_list():
    from evoforge.evaluators.inside import namespace

    numpy_view = namespace.module_copy("numpy")
    inner = {name for name, value in vars(numpy_view).items() if isinstance(value, types.ModuleType)}
    assert inner <= {"linalg", "random", "fft", "polynomial", "emath", "ma", "char", "rec"}, inner
    for hidden in ("lib", "ctypeslib", "load", "fromfile", "memmap", "testing"):
        assert not hasattr(numpy_view, hidden)
    namespace.prepare()
    metaclasses = [f"{view.__name__}.{name}" for view in namespace._copies.values()
                   for name, value in vars(view).items() if isinstance(value, type) and issubclass(value, type)]
    assert not metaclasses, f"a metaclass makes classes with dunder methods from a dict: {metaclasses}"
