"""With numba, a candidate's Python (numba's fallback, and the program's load-time code) runs in the candidate's
own process, never in the harness's: what it does to its process's state (here numpy's global RNG, which solve
draws from after calling it) does not reach solve, in a real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.evaluators import SandboxPool, load_problem

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HONEST = "def predict(x):\n    return x * 0.0\n"
# numba refuses Python's `random`, so this predict runs as Python; it reseeds numpy's RNG in whatever process runs it.
REFUSED = ("import random\nimport numpy as np\n\ndef predict(x):\n    np.random.seed(12345)\n"
           "    return x * 0.0 + random.random() * 0.0\n")
# numba would compile predict; the seeding is load-time code (a top-level call).
AT_LOAD = "import numpy as np\nnp.random.seed(12345)\n\ndef predict(x):\n    return x * 0.0\n"
# numba refuses a decorated function; the decorator runs at load time.
DECORATOR = ("import numpy as np\n\ndef mark(f):\n    np.random.seed(12345)\n    return f\n\n@mark\n"
             "def predict(x):\n    return x * 0.0\n")
# a default argument is evaluated at load time
DEFAULT = "import numpy as np\n\ndef predict(x, k=np.random.seed(12345)):\n    return x * 0.0\n"
# no load-time code, but numba cannot type int(str): it falls back when it compiles
TYPING = ("import numpy as np\n\ndef predict(x):\n    np.random.seed(12345)\n"
          "    return x * 0.0 + float(int('1')) * 0.0\n")


@pytest.fixture(scope="module", params=[
    ("shared_rng_numba_problem.py", "true"), ("shared_rng_numba_problem.py", "auto"),
    ("shared_rng_harness_problem.py", "true"), ("shared_rng_harness_problem.py", "auto"),
], ids=["numba", "auto", "harness-numba", "harness-auto"])
def pool(request):
    problem, numba = request.param
    with SandboxPool(load_problem(FIXTURES / problem, {"numba": numba}), 1) as pool:
        assert pool.problem.settings.numba == (True if numba == "true" else numba)
        yield pool


@pytest.mark.parametrize("code", [REFUSED, AT_LOAD, DECORATOR, DEFAULT, TYPING],
                         ids=["refused", "at-load", "decorator", "default", "typing"])
def test_the_candidates_python_cannot_touch_the_harness_processs_rng(pool, code):
    honest = pool.evaluate(HONEST)
    assert honest.status == "ok", honest
    ev = pool.evaluate(code)
    assert ev.status == "ok", ev
    assert ev.score == honest.score  # the harness's draw, as if the candidate had never run there
    assert ev.compiled is not True  # it ran as Python, in the candidate's own process


def test_constants_at_load_time_still_compile(pool):
    """Top-level imports and constants need no code of the candidate's to run: still compiled."""
    code = ("import math\nimport numpy as np\nEPS = 1e-9\nSCALE: float = -(2 ** 10) * math.pi / np.inf\n"
            "PAIR = (1, 2.5)\n\ndef predict(x):\n    return x * 0.0 + EPS * 0.0 + SCALE * 0.0 + PAIR[1] * 0.0\n")
    ev = pool.evaluate(code)
    assert ev.status == "ok" and ev.score == pool.evaluate(HONEST).score, ev
    if pool.problem.settings.numba is True:
        assert ev.compiled is True, ev


def test_a_missing_evolved_function_is_an_error(pool):
    ev = pool.evaluate("import numpy as np\n\ndef other(x):\n    return x * 0.0\n")
    assert ev.status == "error", ev
