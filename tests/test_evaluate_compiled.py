"""Compiled harnesses: the bundled problems score exactly as in Python, a program's compilation is kept by the
engine and reused, a compilation the candidate could have forged is never kept, and a problem may refuse candidates
that numba cannot compile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mutants import mutants

from evoforge.evaluators import ProblemError, SandboxPool, load_problem
from evoforge.evaluators.compile_store import CompileStore

REPO = Path(__file__).resolve().parent.parent
BIN_PACKING = REPO / "problems" / "bin_packing.py"
CAP_SET = REPO / "problems" / "cap_set.py"

# Written the way a model writes them; numba compiles the first three and refuses the others (they then run as
# Python): either way the score must be the Python one, to the last bit.
BIN_PACKING_CANDIDATES = {
    "first fit": "def priority(item, bins):\n    return -np.arange(len(bins), dtype=np.float64)\n",
    "nan priorities": "def priority(item, bins):\n    return np.where(bins > 60.0, np.nan, -(bins - item))\n",
    "integer powers": ("def priority(item, bins):\n    gap = bins - item\n"
                       "    return -(gap ** 3) / item ** 3 + bins ** 2 / 7 ** 2 - np.sqrt(gap + 1.0) ** 5\n"),
    # in-place on overlapping views, which numba does not buffer as numpy does: runs as Python
    "funsearch weibull": (
        "def priority(item, bins):\n    score = (bins - np.max(bins)) ** 2 / item + bins**2 / item**2\n"
        "    score += bins**2 / item**3\n    score[bins > item] = -score[bins > item]\n"
        "    score[1:] -= score[:-1]\n    return score\n"),
    "python list": "def priority(item, bins):\n    return [-(b - item) for b in bins]\n",
    "integer priorities": "def priority(item, bins):\n    return (bins - item).astype(np.int64) * -1\n",
}
UNCOMPILABLE = "def priority(item, bins):\n    return np.array(sorted(bins.tolist(), reverse=True))\n"


def same_as_python(path: Path, codes: list[str], overrides: dict[str, str]) -> list[bool | None]:
    """Evaluate every program with numba off and on; assert identical statuses and scores; return `compiled`."""
    python = load_problem(path, {**overrides, "numba": "false"})
    compiled = load_problem(path, {**overrides, "numba": "true"})
    with SandboxPool(python, 1) as py_pool, SandboxPool(compiled, 1) as nb_pool:
        flags = []
        for code in codes:
            a, b = py_pool.evaluate(code, cascade=False), nb_pool.evaluate(code, cascade=False)
            assert (a.status, a.scores, a.score) == (b.status, b.scores, b.score), (code, a, b)
            if code == codes[0] and python.held_out:
                held_a, held_b = py_pool.evaluate(code, held_out=True), nb_pool.evaluate(code, held_out=True)
                assert held_a.ok and held_a.scores == held_b.scores, (held_a, held_b)
            flags.append(b.compiled)
        return flags


def test_bin_packing_scores_exactly_as_in_python():
    problem = load_problem(BIN_PACKING)
    assert problem.settings.numba is True  # the bundled problem uses numba by default
    codes = [problem.seed_code, *mutants(problem, 6, seed=7), *BIN_PACKING_CANDIDATES.values(), UNCOMPILABLE]
    compiled = same_as_python(BIN_PACKING, codes, {})
    assert compiled[0] is True  # the seed
    named = dict(zip(BIN_PACKING_CANDIDATES, compiled[-1 - len(BIN_PACKING_CANDIDATES):-1]))
    assert named["first fit"] and named["nan priorities"] and named["integer powers"], named
    assert not named["funsearch weibull"] and not named["python list"], named
    assert compiled[-1] is False
    assert sum(flag is True for flag in compiled) >= len(compiled) // 2


def test_cap_set_scores_exactly_as_in_python():
    problem = load_problem(CAP_SET, {"n": "6"})
    codes = [problem.seed_code, *mutants(problem, 10, seed=7)] + [
        "def priority(el, n):\n    return float(sum(el)) - 0.5 * el.count(2)\n",
        "def priority(el, n):\n    score = 0.0\n    for i, x in enumerate(el):\n"
        "        score += (x == 1) * (i + 1) - (x == 2) * 0.5\n    return score\n",
    ]
    same_as_python(CAP_SET, codes, {"n": "6"})


def _payload_key(code: str) -> str:
    """The key the sandbox files the compiled `priority` of this bin packing program under (compiled here the
    same way, and the key it reports)."""
    from evoforge.evaluators.inside import jit_compile

    keys: dict[str, str] = {}
    jit_ns = jit_compile.jitted(code, {"np": np}, {}, keys.__setitem__, jit_compile.CANDIDATE_OPTIONS)
    jit_ns["priority"].compile(jit_compile.parse_signature("float64[:](float64, float64[::1])"))
    (key,) = keys
    return key


def test_a_program_is_compiled_once_and_loaded_by_later_servers(private_cache_dir):
    """The engine keeps what the sandbox compiled, by code hash; a new server (another run, a resume, held-out
    inputs) loads it instead of compiling. Proof that it loads: program A's compilation filed under program B's
    code and key makes B score as A does. Filed under B's code alone (A's key), it is never used for B: a
    compilation is keyed by the very source it was compiled from."""
    problem = load_problem(BIN_PACKING, {"num_instances": "2", "held_out_instances": "1"})
    first_fit = BIN_PACKING_CANDIDATES["first fit"]
    best_fit = problem.seed_code + "\n# the same program, another text\n"
    store = CompileStore(problem.source_hash)
    with SandboxPool(problem, 1) as pool:
        a = pool.evaluate(first_fit)
        honest = pool.evaluate(problem.seed_code)
        assert a.ok and a.compiled is True and honest.scores != a.scores
    assert store.program(first_fit), "the compilation was not kept"
    assert store.harness(), "the harness compilation was not kept"
    shutil.copy(store._program_file(first_fit), store._program_file(best_fit))
    with SandboxPool(problem, 1) as pool:
        b = pool.evaluate(best_fit)
    assert b.ok and b.compiled is True and b.scores == honest.scores  # A's key is not B's: B compiled itself
    (data,) = store.program(first_fit).values()
    store._program_file(best_fit).write_text(json.dumps({_payload_key(best_fit): data}))
    with SandboxPool(problem, 1) as pool:
        b = pool.evaluate(best_fit)
    assert b.ok and b.compiled is True and b.scores == a.scores  # ran first fit's compiled code


def test_a_compilation_the_candidate_could_forge_is_never_kept():
    """Once a candidate's Python runs (numba refused it), frames it writes itself must not reach the store."""
    problem = load_problem(BIN_PACKING, {"num_instances": "1", "num_items": "50"})
    forger = ("def priority(item, bins):\n    import os, json, struct\n"
              "    for frame in ({'t': 'compile', 'phase': 'begin'}, {'t': 'jit', 'key': '0' * 32, 'data': 'AAAA'},\n"
              "                  {'t': 'compile', 'phase': 'end', 'ok': True}):\n"
              "        body = json.dumps(frame).encode()\n"
              "        os.write(3, struct.pack('>I', len(body)) + body)\n"
              "    return np.array(sorted(bins.tolist(), reverse=True))\n")
    with SandboxPool(problem, 1) as pool:
        pool.evaluate(forger)
    assert CompileStore(problem.source_hash).program(forger) == {}


def test_a_problem_may_refuse_what_numba_cannot_compile():
    problem = load_problem(BIN_PACKING, {"num_instances": "1", "num_items": "50", "numba_fallback": "refuse"})
    with SandboxPool(problem, 1) as pool:
        refused = pool.evaluate(UNCOMPILABLE)
        fine = pool.evaluate(problem.seed_code)
    assert refused.status == "error" and "numba_fallback='refuse'" in (refused.error or ""), refused
    assert fine.ok and fine.compiled is True


def test_falling_back_says_why():
    problem = load_problem(BIN_PACKING, {"num_instances": "1", "num_items": "50"})
    with SandboxPool(problem, 1) as pool:
        ev = pool.evaluate(UNCOMPILABLE)
    assert ev.ok and ev.compiled is False
    assert "[evoforge] numba could not compile" in ev.stdout and "tolist" in ev.stdout, ev.stdout


def test_compiled_code_cannot_read_past_its_arrays():
    """Indexing is bounds-checked in compiled candidates: memory beyond an argument is the harness's."""
    problem = load_problem(BIN_PACKING, {"num_instances": "1", "num_items": "50"})
    reader = "def priority(item, bins):\n    return bins + bins[len(bins) + 1000]\n"
    with SandboxPool(problem, 1) as pool:
        ev = pool.evaluate(reader)
    assert ev.status == "error" and "IndexError" in (ev.error or ""), ev


def test_auto_runs_tiny_inputs_as_python():
    """A program never compiled before, on inputs far cheaper than a compilation, runs as Python under "auto"."""
    problem = load_problem(BIN_PACKING, {"num_instances": "2", "num_items": "20", "numba": "auto"})
    fresh = "def priority(item, bins):\n    return -(bins - item) * 1.5\n"
    with SandboxPool(problem, 1) as pool:
        ev = pool.evaluate(fresh)
    assert ev.ok and ev.compiled is False


def test_harness_declarations_are_checked(tmp_path):
    source = BIN_PACKING.read_text().replace('priority="float64[:](float64, float64[::1])"',
                                             'prio="float64[:](float64, float64[::1])"')
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(ProblemError, match="prio"):
        load_problem(path)


def test_the_store_ignores_what_it_cannot_use(tmp_path):
    store = CompileStore("ab" * 32, tmp_path)
    store.keep_program("x", {"k": "v", 3: "bad", "j": 4})
    assert store.program("x") == {"k": "v"}
    store._program_file("y").write_text("not json")
    assert store.program("y") == {}
    assert json.loads(store._program_file("x").read_text()) == {"k": "v"}
