"""An array of Python objects laid over bytes the candidate wrote turns those bytes into pointers, and so into
every object and byte of its process: in a real sandbox every way to build one is refused, with numba (where the
candidate's Python runs in the harness's process, next to the problem module) and without.

The exploit passes the language check: `np.ndarray(shape, dtype="O", buffer=...)` dereferences an address given
as an int64; a bytes object laid out as a bytearray that spans all memory reads any address; `len`'s module
pointer is the real builtins, whose `eval` with full builtins finds the problem module in `sys.modules`."""

from __future__ import annotations

from pathlib import Path

import pytest
from in_process import in_process

from evoforge.evaluators import SandboxPool, load_problem
from evoforge.evaluators.validator import check

BIN_PACKING = Path(__file__).resolve().parent.parent / "problems" / "bin_packing.py"
SMALL = {"num_items": "50", "num_instances": "1", "held_out_instances": "1"}
BEST_FIT = "def priority(item, bins):\n    return -(bins - item)\n"
# Worst fit once it has reached the problem module (a stand-in for reading its inputs, held-out inputs and
# scorer); best fit where the sandbox refused.
ESCAPE = '''def _obj(address):
    return np.ndarray((1,), dtype="O", buffer=np.array([address], dtype=np.int64))[0]

def _word(n):
    return n.to_bytes(8, "little")

def _escape():
    fake = _word(1 << 40) + _word(id(bytearray)) + _word(1 << 62) + _word(1 << 62) + _word(0) + _word(0) + _word(0)
    memory = _obj(id(fake) + 32)
    builtins = _obj(int.from_bytes(bytes(memory[id(len) + 24:id(len) + 32]), "little"))
    return builtins.eval("[m for m in __import__('sys').modules.values() if hasattr(m, 'held_out_inputs')]",
                         {"__builtins__": builtins.vars(builtins)})

try:
    REACHED = _escape()
except TypeError:
    REACHED = []

def priority(item, bins):
    return (bins - item) if REACHED else -(bins - item)
'''
# The same dereference through the other doors to ndarray's constructor; best fit wherever it is refused.
ROUTES = {
    "ndarray": 'np.ndarray((1,), dtype="O", buffer=P)[0]',
    "recarray": 'np.recarray((1,), dtype=[("x", "O")], buf=P)["x"][0]',
    "rec.array": 'np.rec.array(P.tobytes(), dtype=[("x", "O")])["x"][0]',
    "subclass-mro": 'np.matrix.mro()[1]((1,), "O", P)[0]',
    "generic-alias": 'np.ndarray[int]((1,), "O", P)[0]',
    "baseclass": 'np.ma.masked_array([1.0]).baseclass((1,), "O", P)[0]',
}
ROUTE = '''def _deref():
    P = np.array([id(len)], dtype=np.int64)
    try:
        return EXPRESSION is len
    except TypeError:
        return False

DEREF = _deref()

def priority(item, bins):
    return (bins - item) if DEREF else -(bins - item)
'''


@pytest.fixture(scope="module", params=[{}, {"numba": "false"}], ids=["numba", "no-numba"])
def bins(request):
    with SandboxPool(load_problem(BIN_PACKING, {**SMALL, **request.param}), 1) as pool:
        yield pool


def test_the_escape_reaches_nothing(bins):
    check(ESCAPE)
    ev = bins.evaluate(ESCAPE)
    assert ev.status == "ok" and ev.score == in_process(bins.problem, BEST_FIT), ev


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_door_to_an_object_array_over_raw_memory_is_shut(bins, route):
    code = ROUTE.replace("EXPRESSION", ROUTES[route])
    check(code)
    ev = bins.evaluate(code)
    assert ev.status == "ok" and ev.score == in_process(bins.problem, BEST_FIT), ev


def test_object_arrays_made_from_values_still_work(bins):
    code = ("def priority(item, bins):\n    boxes = np.array([item, 'x'], dtype='O')\n"
            "    empty = np.ndarray((2,), dtype='O')\n"
            "    return -(bins - boxes[0]) if empty[0] is None else bins\n")
    ev = bins.evaluate(code)
    assert ev.status == "ok" and ev.score == in_process(bins.problem, BEST_FIT), ev
