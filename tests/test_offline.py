"""The offline proposer: its answers apply like an LLM's, vary, repeat for a seed, and produce code that runs."""

from __future__ import annotations

import collections
import re
import sys

import numpy as np
import pytest

from evoforge.engine.program.patching import apply_response
from evoforge.engine.program.source import check_program, normalize_code
from evoforge.engine.propose.offline import KINDS, AstMutator, NoMutationFound

NAMES = ["priority"]
LITERAL_KINDS = {"shift", "transform", "tune"}
BIN_SEED = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns priority with which we want to add item to each bin."""
    return -(bins - item)
'''
CAP_SEED = '''def priority(el: tuple[int, ...], n: int) -> float:
    """Returns the priority..."""
    return 0.0
'''


def run_bin(code: str):
    namespace = {"np": np}
    exec(compile(code, "<candidate>", "exec"), namespace)
    with np.errstate(all="ignore"):
        return namespace["priority"](5.0, np.array([10.0, 20.0, 6.0]))


def run_cap(code: str):
    namespace = {"np": np}
    exec(compile(code, "<candidate>", "exec"), namespace)
    with np.errstate(all="ignore"):
        return namespace["priority"]((0, 1, 2, 1), 4)


def proposals(seed: str, count: int, rng_seed: int) -> list[str]:
    proposer, rng = AstMutator(), np.random.default_rng(rng_seed)
    return [proposer.propose([seed], NAMES, rng) for _ in range(count)]


def test_200_proposals_from_the_bin_packing_seed_apply_vary_and_run():
    responses = proposals(BIN_SEED, 200, rng_seed=0)
    codes = []
    for response in responses:
        assert re.search(r"^<<<<<<< SEARCH\n.*^=======\n.*^>>>>>>> REPLACE$", response, re.M | re.S)
        code = apply_response(response, BIN_SEED, NAMES)
        check_program(code, NAMES)
        assert '"""Returns priority with which we want to add item to each bin."""' in code  # untouched lines stay
        codes.append(code)
    distinct = {normalize_code(code) for code in codes}
    assert normalize_code(BIN_SEED) not in distinct
    assert len(distinct) >= 0.8 * len(codes)
    failures = 0
    for code in codes:
        try:
            result = run_bin(code)
            failures += np.shape(result) != (3,)
        except Exception:
            failures += 1
    assert failures < 0.1 * len(codes)


def test_same_seed_same_responses():
    first = proposals(BIN_SEED, 200, rng_seed=7)
    assert first == proposals(BIN_SEED, 200, rng_seed=7)
    assert first != proposals(BIN_SEED, 200, rng_seed=8)


def evolve_pool(seed: str, steps: int, rng_seed: int):
    """A small population walk: each child joins the pool and parents are drawn from it, as in a search."""
    proposer, rng = AstMutator(), np.random.default_rng(rng_seed)
    pool, kinds, children = [seed], collections.Counter(), []
    for _ in range(steps):
        picks = sorted(rng.choice(len(pool), size=min(3, len(pool)), replace=False))
        parents = [pool[i] for i in picks]
        proposal = proposer.propose_detailed(parents, NAMES, rng)
        code = apply_response(proposal.response, parents[-1], NAMES)
        assert code == proposal.code
        assert normalize_code(code) not in {normalize_code(p) for p in parents}
        kinds[proposal.kind] += 1
        children.append((proposal.kind, code))
        pool = (pool + [code])[-6:]
    return kinds, children


def test_every_mutation_kind_appears_and_the_children_run():
    kinds, children = evolve_pool(BIN_SEED, 60, rng_seed=3)
    # swap and nudge need statements this seed grows rarely; the literal searches move constructions only
    # (tests/test_offline_literals.py), so they never appear here, nor extend (no list of terms)
    assert set(kinds) >= set(KINDS) - {"swap", "nudge", "extend", *LITERAL_KINDS}
    assert not set(kinds) & LITERAL_KINDS
    failures = 0
    for _, code in children:
        try:
            failures += np.shape(run_bin(code)) != (3,)
        except Exception:
            failures += 1
    assert failures < 0.1 * len(children)


def test_cap_set_seed_mutates_into_varied_scalar_programs():
    responses = proposals(CAP_SEED, 100, rng_seed=1)
    codes = [apply_response(r, CAP_SEED, NAMES) for r in responses]
    assert len({normalize_code(c) for c in codes}) >= 80
    assert any("el" in c.split('"""', 2)[2] for c in codes)  # the tuple argument is used, through a numeric view
    failures = 0
    for code in codes:
        try:
            failures += not (np.ndim(run_cap(code)) == 0 and np.isfinite(float(run_cap(code))))
        except Exception:
            failures += 1
    assert failures < 0.1 * len(codes)
    kinds, _ = evolve_pool(CAP_SEED, 50, rng_seed=3)
    assert set(kinds) >= set(KINDS) - {"swap", "nudge", "extend", *LITERAL_KINDS}  # not a construction


def test_comments_elsewhere_survive_and_search_is_verbatim():
    parent = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    # residual capacity after placing the item
    r = bins - item  # may be negative
    # prefer tight fits
    score = -r * 1.5
    return score
'''
    proposer, rng = AstMutator(), np.random.default_rng(4)
    for _ in range(60):
        response = proposer.propose([parent], NAMES, rng)
        search = response.split("<<<<<<< SEARCH\n", 1)[1].split("\n=======\n", 1)[0]
        assert search in parent
        code = apply_response(response, parent, NAMES)
        assert "    # residual capacity after placing the item\n" in code
        assert "    # prefer tight fits\n" in code


def test_never_divides_by_a_literal_zero_and_counts_stay_integers():
    parent = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    total = np.zeros(len(bins))
    for k in range(2):
        total = total + bins[k] / 1
    return total / 2.0 - item / 0.5
'''
    proposer, rng = AstMutator(), np.random.default_rng(5)
    failures = 0
    for _ in range(200):
        code = apply_response(proposer.propose([parent], NAMES, rng), parent, NAMES)
        assert not re.search(r"/ -?0(\.0)?\b(?!\.)", code), code
        for arg in re.findall(r"range\(([^()]*)\)", code):
            assert re.fullmatch(r"\d+", arg.strip()), code
        try:
            failures += np.shape(run_bin(code)) != (3,)
        except IndexError:  # range(2) -> range(4) indexes past three bins: a real, rare runtime failure
            failures += 1
    assert failures < 20


def test_two_functions_mutate_one_at_a_time():
    parent = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    return -(bins - item)


def tiebreak(bins: np.ndarray) -> np.ndarray:
    return bins * 0.5
'''
    names = ["priority", "tiebreak"]
    proposer, rng = AstMutator(), np.random.default_rng(6)
    touched = collections.Counter()
    for _ in range(40):
        code = apply_response(proposer.propose([parent], names, rng), parent, names)
        first, second = code.split("\n\n\n")
        touched["priority" if second == parent.split("\n\n\n")[1] else "tiebreak"] += 1
        assert first == parent.split("\n\n\n")[0] or second == parent.split("\n\n\n")[1]
    assert touched["priority"] > 0 and touched["tiebreak"] > 0


def test_nothing_to_mutate_is_a_clear_error():
    with pytest.raises(NoMutationFound, match="no valid new program"):
        AstMutator(max_tries=10).propose(["def priority(item, bins):\n    pass\n"], NAMES,
                                               np.random.default_rng(0))
    with pytest.raises(NoMutationFound, match="does not parse"):
        AstMutator().propose(["def priority(item, bins):\n    return (\n"], NAMES, np.random.default_rng(0))


def test_structured_parent_with_branches_loops_and_repeated_lines():
    parent = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Several statements, a loop and an if/elif chain."""
    score = np.zeros_like(bins)
    score = score + 1.0
    for k in range(len(bins)):
        # a comment inside the loop
        if bins[k] - item < 1.0:
            score[k] = score[k] + 10.0
        elif bins[k] > 2 * item:
            score[k] = score[k] - 1.0
        else:
            score[k] = score[k] + 0.5
    score = score + 1.0
    return score
'''
    proposer, rng = AstMutator(), np.random.default_rng(9)
    failures, kinds = 0, collections.Counter()
    for _ in range(150):
        proposal = proposer.propose_detailed([parent], NAMES, rng)
        code = apply_response(proposal.response, parent, NAMES)
        assert code == proposal.code
        kinds[proposal.kind] += 1
        assert len(re.findall(r"^ *elif ", code, re.M)) == 1 and len(re.findall(r"^ *else:", code, re.M)) == 1
        try:
            failures += np.shape(run_bin(code)) != (3,)
        except Exception:
            failures += 1
    assert failures < 15
    assert {"constant", "operator", "insert", "condition"} <= set(kinds)


PLAIN_SEED = '''def weight(value: float, sizes: list[float]) -> float:
    """How much an item is worth per unit of size, in a problem that imports no numpy."""
    total = sum(sizes)
    return value / (1.0 + total)
'''


def test_a_problem_without_numpy_gets_only_mutations_whose_names_it_can_resolve():
    proposer, rng = AstMutator(global_names={"math", "weight", "solve", "score"}), np.random.default_rng(3)
    kinds = collections.Counter()
    for _ in range(150):
        proposal = proposer.propose_detailed([PLAIN_SEED], ["weight"], rng)
        kinds[proposal.kind] += 1
        namespace: dict = {"math": __import__("math")}  # what the problem module gives, with no np in it
        exec(compile(proposal.code, "<candidate>", "exec"), namespace)
        try:
            namespace["weight"](3.0, [1.0, 2.0, 0.5])
        except NameError as exc:  # the failure this guards against; arithmetic errors are a candidate's own
            pytest.fail(f"{proposal.kind} mutation uses a name the problem does not define: {exc}\n{proposal.code}")
        except (ArithmeticError, TypeError, ValueError):
            pass  # e.g. a list compared with a number: a poor mutation, not an unresolved name
    assert kinds["insert"] > 0  # the numpy-free part of the vocabulary still adds terms
    # The same seed with numpy in the problem's globals does use np.
    with_numpy = AstMutator(global_names={"np", "weight"})
    codes = [with_numpy.propose_detailed([PLAIN_SEED], ["weight"], rng).code for _ in range(150)]
    assert any("np." in code for code in codes)


GRAPH_SEED = "def priority(degree: np.ndarray) -> np.ndarray:\n    return degree.astype(float)\n"
GRID_SEED = '''def points(n: int) -> np.ndarray:
    side = int(np.ceil(np.sqrt(n)))
    grid = np.array([(i, j) for i in range(side) for j in range(side)][:n], dtype=float)
    return grid / side
'''
STATEMENTS_SEED = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    gap = bins - item
    waste = np.max(gap) - gap
    score = -gap
    score += 0.1 * waste
    return score
'''


def detailed(seed: str, names: list[str], count: int, rng_seed: int = 0, **options) -> list:
    proposer = AstMutator(**options)
    rng = np.random.default_rng(rng_seed)
    return [proposer.propose_detailed([seed], names, rng) for _ in range(count)]


def test_a_builtin_is_never_used_as_a_value():
    """`float` in `degree.astype(float)` is a type, not a number: it never enters a term or a condition."""
    made = detailed(GRAPH_SEED, NAMES, 80, global_names={"np"})
    assert len({p.code for p in made}) > 20
    for p in made:
        namespace = {"np": np}
        exec(compile(p.code, "<candidate>", "exec"), namespace)
        with np.errstate(all="ignore"):
            out = namespace["priority"](np.array([1, 4, 2, 0]))
        assert np.shape(out) == (4,), p.code
        code = p.code.replace("astype(float)", "")
        assert not re.search(r"float\s*[-+*/<>)]|[-+*/<>(]\s*float\b(?!\()", code), p.code


def test_statement_edits_delete_swap_duplicate_wrap_and_call_apply_and_run():
    made = detailed(STATEMENTS_SEED, NAMES, 300)
    by_kind = collections.defaultdict(list)
    for p in made:
        by_kind[p.kind].append(p.code)
    assert {"delete", "swap", "duplicate", "wrap", "call"} <= set(by_kind)
    assert any("score += 0.1 * waste" not in c and "waste" in c for c in by_kind["delete"])
    assert any(c.count("score += 0.1 * waste") == 2 for c in by_kind["duplicate"])
    assert any(re.search(r"^    (if .*|for _ in range\(2\)):\n        ", c, re.M) for c in by_kind["wrap"])
    assert any(re.search(r"np\.(min|mean|median|sum)\(gap\)", c) for c in by_kind["call"])
    for kind in ("delete", "swap", "duplicate", "wrap", "call"):
        for code in by_kind[kind]:
            assert np.shape(run_bin(code)) == (3,), code  # every name still bound where it is read


def test_a_rigid_construction_gets_nudged_and_its_steps_adapt_to_the_score():
    made = detailed(GRID_SEED, ["points"], 120)
    nudges = [p for p in made if p.kind == "nudge"]
    assert nudges and all(re.search(r"grid\.flat\[\d+ % grid\.size\] \+= -?[\d.e-]+", p.code) for p in nudges)
    namespace = {"np": np}
    exec(compile(nudges[0].code, "<candidate>", "exec"), namespace)
    moved = namespace["points"](9)
    base = np.array([(i, j) for i in range(3) for j in range(3)], dtype=float) / 3
    assert np.count_nonzero(np.abs(moved - base) > 1e-12) == 1  # exactly one coordinate moved
    proposer = AstMutator()
    proposer.observe_nudge(True)
    grown = proposer.nudge_scale
    for _ in range(5):
        proposer.observe_nudge(False)
    assert grown == pytest.approx(0.015) and proposer.nudge_scale < grown


def test_subtree_crossover_takes_an_expression_of_the_other_parent():
    donor = "def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    return np.sqrt(bins) * item\n"
    proposer = AstMutator()
    rng = np.random.default_rng(0)
    crossed = []
    for _ in range(200):
        p = proposer.propose_detailed([donor, BIN_SEED], NAMES, rng)
        if p.kind == "crossover":
            crossed.append(p.code)
    assert crossed and any("np.sqrt(bins) * item" in c or "np.sqrt(bins)" in c for c in crossed)
    assert all(np.shape(run_bin(c)) == (3,) for c in crossed)


def test_when_nothing_can_change_the_reason_names_what_was_tried():
    with pytest.raises(NoMutationFound, match=r"nothing to change \(x\d+\)"):
        AstMutator(max_tries=10).propose(["def priority(item, bins):\n    return 'x'\n"], NAMES,
                                               np.random.default_rng(0))


FEATURES_SEED = '''def features(length: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Terms for a fitted linear combination."""
    return np.stack([np.sqrt(length) * np.ones_like(theta)], axis=1)
'''
PACK_SEED = '''def pack(n: int) -> np.ndarray:
    centres = np.array([((i + 0.5) / 4, (j + 0.5) / 4) for j in range(4) for i in range(4)][:n])
    return np.column_stack([centres, np.full(n, 0.1)])
'''


def test_extend_appends_a_term_to_a_list_of_terms_and_only_there():
    proposer, rng = AstMutator(), np.random.default_rng(5)
    extended = [p for p in (proposer.propose_detailed([FEATURES_SEED], ["features"], rng) for _ in range(120))
                if p.kind == "extend"]
    assert len(extended) >= 5
    for proposal in extended:
        assert apply_response(proposal.response, FEATURES_SEED, ["features"]) == proposal.code
        namespace = {"np": np}
        exec(compile(proposal.code, "<candidate>", "exec"), namespace)
        with np.errstate(all="ignore"):
            columns = namespace["features"](np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.5, 1.0]))
        assert np.shape(columns) == (3, 2)  # one more term beside the one it had
    # no list of terms (a priority function), or a construction (whose list is its output's columns): no extend
    kinds, _ = evolve_pool(BIN_SEED, 60, rng_seed=3)
    assert "extend" not in kinds
    rng = np.random.default_rng(6)
    assert all(proposer.propose_detailed([PACK_SEED], ["pack"], rng).kind != "extend" for _ in range(60))


WHILE_SEED = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    score = np.zeros_like(bins)
    k = 0
    while k < len(bins):
        score[k] = item - bins[k]
        k += 1
    return score
'''


class _Endless(Exception):
    pass


def _ends(code: str, lines: int = 20_000) -> bool:
    """Whether the child's priority returns within `lines` traced lines (a loop that never ends does not)."""
    seen = [0]

    def trace(frame, event, arg):
        if frame.f_code.co_filename == "<candidate>" and event == "line":
            seen[0] += 1
            if seen[0] > lines:
                raise _Endless
        return trace

    sys.settrace(trace)
    try:
        run_bin(code)
    except _Endless:
        return False
    except Exception:  # a child may fail in other ways; this test is about loops that never end
        return True
    finally:
        sys.settrace(None)
    return True


def test_a_while_loop_keeps_what_makes_it_end():
    """Deleting `k += 1`, putting it under an `if`, changing its step or replacing the test's `k` by a number made
    children that never end, each costing the whole time limit offline; the loop's test and progress stay as they
    are, and the rest of the body still changes."""
    made = detailed(WHILE_SEED, NAMES, 300, rng_seed=3)
    endless = [p.code for p in made if not _ends(p.code)]
    assert endless == [], endless[0]
    assert all("    while k < len(bins):\n" in p.code and "\n        k += 1\n" in p.code for p in made)
    assert sum("score[k] = item - bins[k]" not in p.code for p in made) > 30  # the body still varies
