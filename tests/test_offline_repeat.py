"""Offline constant moves that improved are repeated: by the same ratio, once from each program, replayed on resume."""

from __future__ import annotations

import ast

import numpy as np

from evoforge.engine.propose.offline import AstMutator
from evoforge.engine.propose.offline.mutations import repeat_constant
from evoforge.engine.propose.offline.walk import CHILD_SCORE, LEVEL

NAMES = ["train"]
SEED = '''def train(x: np.ndarray, steps: int) -> np.ndarray:
    """Returns the trained weights."""
    w = np.zeros(3)
    for _ in range(steps):
        w -= 0.5 * (w - x)
    return w
'''


def _function(code: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef))


def _constant_proposal(proposer: AstMutator, code: str, rng: np.random.Generator):
    for _ in range(200):
        proposal = proposer.propose_detailed([code], NAMES, rng, level=1.0)
        if proposal.kind == "constant" and "index" in proposal.details and not proposal.details.get("repeat"):
            return proposal
    raise AssertionError("no constant move in 200 proposals")


def test_repeat_constant_moves_by_the_same_ratio_or_difference():
    lines = SEED.split("\n")
    moved = repeat_constant(_function(SEED), lines, 1, 0.25, 0.5)  # constants in order: 3, then 0.5
    assert moved is not None and moved.new == ["        w -= 1.0 * (w - x)"]
    added = repeat_constant(_function(SEED), lines, 0, 2, 3)  # an integer moves by the same difference
    assert added is not None and added.new == ["    w = np.zeros(4)"]
    assert repeat_constant(_function(SEED), lines, 1, -0.5, 0.5).new == ["        w -= 1.5 * (w - x)"]
    assert repeat_constant(_function(SEED), lines, 1, 0.25, 0.7) is None  # the constant is no longer 0.7
    assert repeat_constant(_function(SEED), lines, 5, 0.25, 0.5) is None  # no such constant


def test_an_improving_constant_move_is_repeated_once_from_its_child():
    proposer, rng = AstMutator(maximize=True), np.random.default_rng(0)
    first = _constant_proposal(proposer, SEED, rng)
    before, after = first.details["before"], first.details["after"]
    proposer.observe({"kind": "constant", **first.details, CHILD_SCORE: 2.0}, True)
    repeats = []
    for _ in range(40):
        proposal = proposer.propose_detailed([first.code], NAMES, rng, level=2.0)
        if proposal.details.get("repeat"):
            repeats.append(proposal)
            proposer.observe({"kind": "constant", **proposal.details, CHILD_SCORE: 1.0}, False)
    assert len(repeats) == 1  # a worse repeat ends the run of moves from that program
    assert repeats[0].details["before"] == after and repeats[0].details["index"] == first.details["index"]
    expected = after + (after - before) if isinstance(after, int) or before * after <= 0 \
        else float(f"{after * after / before:.3g}")
    assert repeats[0].details["after"] == expected


def test_a_move_that_did_not_improve_is_not_repeated_and_replay_matches():
    proposer, rng = AstMutator(maximize=True), np.random.default_rng(1)
    first = _constant_proposal(proposer, SEED, rng)
    proposer.observe({"kind": "constant", **first.details, CHILD_SCORE: 1.0}, False)  # tied with its parent
    assert proposer.repeats == {}
    recorded = {"kind": "constant", **first.details, LEVEL: 1.0, CHILD_SCORE: 3.0}
    proposer.observe(recorded, True)
    resumed = AstMutator(maximize=True)
    resumed.observe(recorded, False)  # on resume the recorded scores decide, as in the run
    assert resumed.repeats == proposer.repeats != {}
