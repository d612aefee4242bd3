"""Offline mutations of a function that holds arrays: thresholds within the array's range, terms that read it."""

from __future__ import annotations

import ast
import re

import numpy as np

from evoforge.engine.program.patching import apply_response
from evoforge.engine.program.source import check_program
from evoforge.engine.propose.offline import AstMutator
from evoforge.engine.propose.offline.mutations import array_names

NAMES = ["priority"]
BIN_SEED = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns priority with which we want to add item to each bin."""
    return -(bins - item)
'''
SCALAR_SEED = '''def priority(processing_time: int, weight: int, due_date: int) -> float:
    """Returns the priority of a job."""
    return weight / processing_time
'''
RANGE_CUT = re.compile(r"np\.min\((?P<v>[^()]*(?:\([^()]*\))?[^()]*)\) \+ [0-9.e-]+ \* "
                       r"\(np\.max\((?P=v)\) - np\.min\((?P=v)\)\)")


def _function(code: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef))


def _children(seed: str, count: int, rng_seed: int) -> list[str]:
    proposer, rng = AstMutator(), np.random.default_rng(rng_seed)
    return [proposer.propose_detailed([seed], NAMES, rng).code for _ in range(count)]


def test_array_names_follow_annotations_and_assignments():
    func = _function('''def priority(item: float, bins: np.ndarray, w: npt.NDArray[np.float64], n: int) -> np.ndarray:
    r = bins - item
    s = r * 2
    k = n + 1
    return s + w + k
''')
    assert array_names(func) == {"bins", "w", "r", "s"}
    assert array_names(_function(SCALAR_SEED)) == frozenset()


def test_thresholds_in_an_arrays_range_compare_only_values_that_read_an_array():
    children = _children(BIN_SEED, 300, rng_seed=0)
    cuts = 0
    for code in children:
        check_program(code, NAMES)
        func = _function(code)
        arrays = array_names(func)
        for match in RANGE_CUT.finditer(ast.unparse(func)):
            cuts += 1
            v = ast.parse(match["v"], mode="eval").body
            assert any(isinstance(n, ast.Name) and n.id in arrays for n in ast.walk(v)), code
        namespace = {"np": np}
        exec(compile(code, "<candidate>", "exec"), namespace)
        with np.errstate(all="ignore"):
            assert np.shape(namespace["priority"](5.0, np.array([10.0, 20.0, 6.0]))) == (3,)
    assert cuts >= 10  # offered, and on the array's values only
    assert not any("np.min(" in code for code in _children(SCALAR_SEED, 200, rng_seed=0))  # scalars keep numbers


def test_new_comparisons_mostly_read_the_array():
    """A comparison of `item` alone is the same for every bin: it moves all priorities alike and changes no
    argmax. Most new comparisons should read the bins (before this rule, a third of them read `item` only)."""
    on_array = on_scalar = 0
    for code in _children(BIN_SEED, 200, rng_seed=2):
        func = _function(code)
        arrays = array_names(func)
        for node in ast.walk(func):
            if isinstance(node, ast.Compare):
                reads = any(isinstance(n, ast.Name) and n.id in arrays for n in ast.walk(node.left))
                on_array, on_scalar = on_array + reads, on_scalar + (not reads)
    assert on_array >= 40
    assert on_scalar < 0.2 * (on_array + on_scalar)


def test_same_seed_same_children_and_every_child_applies():
    proposer, rng = AstMutator(), np.random.default_rng(4)
    first = [proposer.propose_detailed([BIN_SEED], NAMES, rng) for _ in range(100)]
    again = _children(BIN_SEED, 100, rng_seed=4)
    assert [p.code for p in first] == again
    for proposal in first:
        assert apply_response(proposal.response, BIN_SEED, NAMES) == proposal.code
