"""numba_load defines a candidate's functions for numba without running any of its code: what it accepts (imports,
constants, constant defaults) and what it leaves to the Python run in the candidate's own process."""

from __future__ import annotations

import math

import pytest

from evoforge.evaluators.inside import numba_load
from evoforge.evaluators.inside.numba_semantics import Divergent


def test_functions_constants_and_defaults_are_bound_in_program_order():
    scope: dict = {"__builtins__": __builtins__}
    code = ("import math\nK = 3\nK2 = -K * 2 + math.pi\nPAIR = (1, 'a') + (K,)\n\ndef f(x, k=K, *, m=2.5):\n"
            "    return x * k * m\n\ndef f(x, k=K2):\n    return x + k\n")
    assert numba_load.define(code, "<t>", scope) == ["f"]
    assert scope["K2"] == -6 + math.pi and scope["PAIR"] == (1, "a", 3)
    assert scope["f"](1.0) == 1.0 + scope["K2"] and scope["f"].__defaults__ == (scope["K2"],)


@pytest.mark.parametrize("code", [
    "X = print('ran')\ndef f(x):\n    return x\n",
    "def f(x, k=print('ran')):\n    return x\n",
    "def f(x, *, k=[]):\n    return x\n",
    "@print\ndef f(x):\n    return x\n",
    "print('ran')\ndef f(x):\n    return x\n",
    "class C:\n    pass\n",
    "for i in range(3):\n    pass\n",
    "X = 2 ** 10 ** 9\n",
    "X = 1 / 0\n",
    "X = 'a' * 3\n",
    "X, Y = 1, 2\n",
], ids=["call", "default", "mutable-kwdefault", "decorator", "statement", "class", "loop", "power", "zero",
        "string-product", "unpacking"])
def test_load_time_code_is_left_to_the_python_run(code, capsys):
    with pytest.raises(Divergent, match="load time"):
        numba_load.define(code, "<t>", {"__builtins__": __builtins__})
    assert capsys.readouterr().out == ""  # nothing of the program ran


def test_annotations_are_not_evaluated(capsys):
    scope: dict = {"__builtins__": __builtins__}
    numba_load.define("def f(x: print('ran')) -> print('ran'):\n    return x\n", "<t>", scope)
    assert scope["f"](2) == 2 and capsys.readouterr().out == ""
