"""Compiled candidates that turn numbers into text, where numba's text is not Python's, in real sandboxes.

numba's `str(n)` of an integer allocates `1 + floor(log10(n))` characters computed in floating point, which is one
too many where the float rounds up to the next power of ten (`10**17 - 1` becomes 1e17): its first character is
never written and holds whatever the allocator left there (in the sandbox, glibc's perturb byte 'Z'; elsewhere,
what the process freed). `str(-2**63)` asks for a negative length (MemoryError), and `str(1.5)` is the placeholder
'<object type:float64>'. f-strings and `repr` take the same paths. A candidate whose score depends on such text
scored other numbers compiled than it does as Python (here, more); `numba_semantics` runs it as Python instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.evaluators import SandboxPool, load_problem

REPO = Path(__file__).resolve().parent.parent

# The score is what f returns: the character code of the first character of its text.
PROBLEM = '''"""Return a number; the score is that number."""
from evoforge import Settings, evolve

SETTINGS = Settings(maximize=True, time_limit_s=20.0, numba=True)


@evolve
def f(x):
    return 1.0 * x


def solve(x):
    return f(x)


def score(x, output):
    return float(output)


def inputs(params):
    return {"zero": 0, "one": 1}
'''
NINES = "99999999999999999 + x"  # 10**17 - 1 on input 0: a float rounds it up to 1e17
TEXTS = {  # the candidate's text of a number, and the score Python gives it (the mean over both inputs)
    "str": (f"str({NINES})", (ord("9") + ord("1")) / 2),
    "f-string": (f"f'{{{NINES}}}'", (ord("9") + ord("1")) / 2),
    "repr": (f"repr({NINES})", (ord("9") + ord("1")) / 2),
    "negative": ("str(-9223372036854775807 - 1 + x)", float(ord("-"))),
    "float": ("str(1.5 + x)", (ord("1") + ord("2")) / 2),
}


@pytest.fixture(scope="module")
def numbers(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.py"
    path.write_text(PROBLEM)
    with SandboxPool(load_problem(path, {}), 1) as pool:
        yield pool


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_text_of_a_number_scores_what_python_scores(numbers, kind):
    text, python = TEXTS[kind]
    ev = numbers.evaluate(f"def f(x):\n    s = {text}\n    return float(ord(s[0]))\n")
    assert ev.status == "ok" and ev.score == python, ev
    assert ev.compiled is False, ev  # it ran as Python: numba's text of a number is not Python's


def test_numbers_without_text_stay_compiled(numbers):
    ev = numbers.evaluate("def f(x):\n    s = 'ab' + 'c'\n    return float(x + len(s))\n")
    assert ev.status == "ok" and ev.compiled is True and ev.score == 3.5, ev


# Bin packing as it ships (a compiled harness): best fit where the text reads as Python's, worst fit otherwise.
STEERED = """def priority(item, bins):
    s = str(99999999999999999 + int(item) * 0)
    if s[0] == '9':
        return -(bins - item)
    return bins - item
"""


def test_bin_packing_compiled_text_scores_what_python_scores():
    small = {"num_items": "200", "num_instances": "2", "held_out_instances": "1"}
    with SandboxPool(load_problem(REPO / "problems" / "bin_packing.py", small), 1) as pool:
        best_fit = pool.evaluate("def priority(item, bins):\n    return -(bins - item)\n")
        ev = pool.evaluate(STEERED)
    assert best_fit.status == "ok" and best_fit.compiled is True, best_fit
    assert ev.status == "ok" and ev.score == best_fit.score and ev.compiled is False, ev
