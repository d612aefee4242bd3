"""A red team against marked blocks (issue 15): blocks written the way a model rewarded for the number writes them.

Each attack ran and won before its fix: a block that rebinds the trusted code around it through `:=` where the
rebinding check did not look, a block that reaches `builtins` through the real modules a block sees (and so
resets the sort's counted cost to 0), a block that uses a module the project's own code imported, a project file
with a form feed that shifted the blocks' line numbers, an `eval` folder whose other files were silently ignored,
and a sort that knows its inputs from the public seed. Each now ends refused, or marked beyond the honest bound,
and the files outside the blocks stay byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evoforge.engine.program.candidates import read_candidate
from evoforge.engine.program.patching import PatchError, apply_response
from evoforge.engine.program.source import code_hash
from evoforge.evaluators import ProblemError, SandboxPool, load_problem
from evoforge.evaluators.project import program_text, source_lines
from evoforge.evaluators.validator import Refused

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROBLEM = FIXTURES / "block_problem.py"
MERGE_SORT = Path(__file__).resolve().parent.parent / "problems" / "merge_sort.py"


@pytest.fixture(scope="module")
def problem():
    return load_problem(PROBLEM)


@pytest.fixture(scope="module")
def sort_problem():
    return load_problem(MERGE_SORT)


def with_blocks(problem, bodies: dict[str, str]) -> str:
    """The seed's program with these blocks (id -> text) replaced."""
    return program_text({**problem.project.blocks_of(problem.seed_code), **bodies})


@pytest.mark.parametrize("settings", [
    "GAIN = 2.0\n_ = [(scale := (lambda v: 1000000.0)) for _k in (0,)]\n",  # a comprehension binds around it
    "GAIN = 2.0\n_ = {k: (OFFSET := 1000.0) for k in [[(OFFSET := 5.0) for _j in (0,)]]}\n",
    "GAIN = [(len := (lambda v: 0)) for _k in (0,)]\n",  # a builtin the trusted code calls
    "GAIN = 2.0\ndef f(a=(OFFSET := 1000.0)):\n    return a\n",  # defaults run in the module
    "GAIN = 2.0\ndef f(a: (OFFSET := 1000.0)):\n    return a\n",  # so do annotations
    "GAIN = 2.0\ndef f() -> (OFFSET := 1000.0):\n    return 1\n",
    "GAIN = 2.0\ng = lambda a=(OFFSET := 1000.0): a\n",
    "GAIN = 2.0\n@(OFFSET := (lambda f: f))\ndef g():\n    return 1\n",
])
def test_a_block_cannot_rebind_the_trusted_code_through_an_assignment_expression(problem, settings) -> None:
    with pytest.raises(Refused, match="rebinds (OFFSET|scale|len)"):
        problem.project.check(with_blocks(problem, {"calc.py:settings": settings}))


def test_assignment_expressions_that_bind_only_their_own_scope_stay_allowed(problem) -> None:
    settings = "GAIN = 2.0\ng = lambda a: (OFFSET := a)\ndef h():\n    return [(OFFSET := 1) for _ in (0,)]\n"
    problem.project.check(with_blocks(problem, {"calc.py:settings": settings}))
    body = "    y = x * GAIN\n    total = total + y + sum([(OFFSET := 0.0) for _ in (0,)])\n"  # a local of compute
    problem.project.check(with_blocks(problem, {"calc.py:body": body}))


def test_a_walrus_that_replaced_scale_wins_nothing_in_the_sandbox(problem) -> None:
    settings = "GAIN = 2.0\n_ = [(scale := (lambda v: 1000000.0)) for _k in (0,)]\n"
    code = with_blocks(problem, {"calc.py:settings": settings})
    with SandboxPool(problem, 1) as pool:
        evaluation = pool.evaluate(code)
    assert evaluation.status == "error" and "rebinds scale" in (evaluation.error or "")


SORT_MERGE = ("    out = []\n    i = j = 0\n    while i < len(left) and j < len(right):\n"
              "        if less(right[j], left[i]):\n            out.append(right[j])\n            j += 1\n"
              "        else:\n            out.append(left[i])\n            i += 1\n"
              "    out.extend(left[i:])\n    out.extend(right[j:])\n    return out\n")
# `re.enum.bltns` is the builtins module: with getattr, the block reads `less`'s closure, sorts the values
# themselves and sets the count to 0 (it scored 0.0, status ok, before the fix).
FORGE_COUNT = ("    peek = re.enum.bltns.getattr\n    counter, values = [peek(c, 'cell_contents') for c in "
               "peek(less, '__closure__')]\n    out = sorted(items, key=lambda i: values[i])\n    counter[0] = 0\n"
               "    return out\n")


@pytest.mark.parametrize("settings, small, reason", [
    ("import re\nCUTOFF = 100000\n", FORGE_COUNT, "attribute `.bltns`"),
    ("import typing\nCUTOFF = 100000\n", "    kinds = typing.types\n    return items\n", "attribute `.types`"),
    ("from re import enum\nCUTOFF = 100000\n", "    return items\n", "from re import enum"),
    ("import typing\nCUTOFF = 100000\n", "    make = typing.ABCMeta\n    return items\n", "attribute `.ABCMeta`"),
])
def test_modules_reached_through_the_allowed_ones_are_refused_in_blocks(sort_problem, settings, small,
                                                                          reason) -> None:
    code = with_blocks(sort_problem, {"sorter.py:settings": settings, "sorter.py:small": small,
                       "merging.py:1": SORT_MERGE})
    with SandboxPool(sort_problem, 1) as pool:
        evaluation = pool.evaluate(code)
        seed = pool.evaluate(sort_problem.seed_code)
    assert evaluation.status == "error" and reason in (evaluation.error or ""), evaluation.error
    assert seed.status == "ok" and seed.score > 3


TRUSTED_IMPORTS = '''"""A module whose own code imports modules that evolved code may not use."""
import os
import pickle as serial
from os import getpid
from numpy import load
import numpy as np
import merging

# EVOLVE-BLOCK-START body
VALUE = 1.0
# EVOLVE-BLOCK-END


def run(x):
    return {"value": VALUE * x + len(os.sep) + getpid() * 0 + float(np.sum(np.ones(1))) * 0 + merging.ONE * 0}
'''

TRUSTED_PROBLEM = '''"""Maximise run(x)["value"]."""
from evoforge import Project, Settings

PROJECT = Project("proj", calls=["calc.run"])
SETTINGS = Settings(maximize=True, time_limit_s=5.0)


def solve(x):
    return PROJECT.call("calc.run", x)


def score(x, output):
    return float(output["value"])


def inputs(params):
    return {"a": 1.0}
'''


@pytest.fixture()
def trusted_imports(tmp_path: Path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "calc.py").write_text(TRUSTED_IMPORTS)
    (tmp_path / "proj" / "merging.py").write_text("import marshal as wire\n\nONE = 1\n")
    (tmp_path / "problem.py").write_text(TRUSTED_PROBLEM)
    return load_problem(tmp_path / "problem.py")


@pytest.mark.parametrize("body, reason", [
    ("VALUE = float(os.getpid())\n", "a block uses os, which"),
    ("VALUE = float(len(serial.dumps(1)))\n", "a block uses serial, which"),
    ("VALUE = float(getpid())\n", "a block uses getpid, which"),
    ("VALUE = float(callable(load))\n", "a block uses load, which"),
    ("VALUE = float(merging.os.getpid())\n", "attribute `.os`"),
    ("VALUE = float(len(merging.wire.dumps(1)))\n", "attribute `.wire`"),  # a file without blocks imported it
])
def test_a_block_cannot_use_a_module_the_trusted_code_imported(trusted_imports, body, reason) -> None:
    with pytest.raises(Refused, match=reason):
        trusted_imports.project.check(program_text({"calc.py:body": body}))
    # numpy, the project's own modules and plain names stay usable
    trusted_imports.project.check(program_text({"calc.py:body": "VALUE = float(np.sqrt(4.0)) + merging.ONE\n"}))


FORM_FEED = ('"""A module with a page break (form feed), as old code has."""\n\x0c\nOFFSET = 1.0\n\n\n'
             "def run(x):\n    total = 0.0\n    # EVOLVE-BLOCK-START body\n    y = x * 2.0\n    total = total + y\n"
             "    # EVOLVE-BLOCK-END\n    return {\"value\": total + OFFSET}\n")


def test_line_breaks_python_does_not_know_keep_blocks_where_python_sees_them(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "calc.py").write_text(FORM_FEED, newline="")
    (tmp_path / "proj" / "merging.py").write_text("ONE = 1\n")
    (tmp_path / "problem.py").write_text(TRUSTED_PROBLEM)
    problem = load_problem(tmp_path / "problem.py")
    assert problem.project.assemble(problem.seed_code)["calc.py"] == FORM_FEED
    # An honest edit of the block was refused as "changes the code around it" (the lines were off by one).
    body = ("    y = x * 3.0  # a comment with a line separator \u2028 and a page break \x0c in it\n"
            "    total = total + y\n")
    files = problem.project.check(program_text({"calc.py:body": body}))
    assert files["calc.py"] == FORM_FEED.replace("    y = x * 2.0\n", body.partition("    total")[0])
    # The files written back read as the same program, separators and all.
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "proj", copy)
    (copy / "calc.py").write_text(files["calc.py"], newline="")
    assert read_candidate(copy, problem) == program_text({"calc.py:body": body})
    assert "".join(source_lines(files["calc.py"])) == files["calc.py"]


def test_an_eval_folder_whose_other_files_differ_is_refused(problem, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(FIXTURES / "block_project", copy)
    (copy / "plain.py").write_text((copy / "plain.py").read_text().replace("HELPER = 3", "HELPER = 300"))
    with pytest.raises(ProblemError, match="plain.py: differs"):
        read_candidate(copy, problem)
    (copy / "plain.py").unlink()
    with pytest.raises(ProblemError, match="plain.py: missing"):
        read_candidate(copy, problem)


# The inputs come from `random.Random(seed)` in the problem file, and `random` is an allowed module: a block that
# makes them itself needs a handful of comparisons to tell which one it got, and then knows the order.
KNOWS_INPUTS = ("import random\nCUTOFF = 100000\nKNOWN = []\nfor seed, n in ((0, 200), (1000003, 400)):\n"
                "    rng = random.Random(seed)\n    shuffled = rng.sample(range(10 * n), n)\n"
                "    nearly = sorted(shuffled)\n    for _ in range(n // 20):\n"
                "        a, b = rng.randrange(n), rng.randrange(n)\n"
                "        nearly[a], nearly[b] = nearly[b], nearly[a]\n"
                "    KNOWN.extend([shuffled, nearly, sorted(shuffled, reverse=True), "
                "[rng.randrange(5) for _ in range(n)]])\n")
RECOGNISE = ("    for known in KNOWN:\n"
             "        if len(known) == len(items) and all(less(i, j) == (known[i] < known[j])\n"
             "                for i, j in [(k, (k * 37 + 11) % len(items)) for k in range(0, len(items), 30)]\n"
             "                if known[i] != known[j]):\n"
             "            return sorted(items, key=lambda i: (known[i], i))\n    return items\n")


def test_a_sort_that_knows_its_inputs_scores_past_the_honest_bound(sort_problem) -> None:
    code = with_blocks(sort_problem, {"sorter.py:settings": KNOWS_INPUTS, "sorter.py:small": RECOGNISE,
                       "merging.py:1": SORT_MERGE})
    with SandboxPool(sort_problem, 1) as pool:
        cheat = pool.evaluate(code)
        seed = pool.evaluate(sort_problem.seed_code)
    assert cheat.status == "ok" and cheat.metrics["misordered"] == 0 and cheat.score < 0.5
    assert sort_problem.settings.beyond_bound(cheat.score)  # held as SUSPECT, never a parent
    assert not sort_problem.settings.beyond_bound(seed.score)


def test_a_block_in_a_packages_init_cannot_take_the_name_of_its_submodule(tmp_path: Path) -> None:
    # `from pkg import util` returns what the package's `util` already is: a block that bound it first replaced
    # the trusted module (score 1000000.0, status ok, before the fix).
    (tmp_path / "proj" / "pkg").mkdir(parents=True)
    (tmp_path / "proj" / "pkg" / "__init__.py").write_text("# EVOLVE-BLOCK-START\nFACTOR = 1.0\n# EVOLVE-BLOCK-END\n")
    (tmp_path / "proj" / "pkg" / "util.py").write_text("def value(x):\n    return x * 2.0\n")
    (tmp_path / "proj" / "calc.py").write_text("from pkg import util\n\n\ndef run(x):\n    return {\"value\": "
                                               "util.value(x)}\n")
    (tmp_path / "problem.py").write_text(TRUSTED_PROBLEM)
    problem = load_problem(tmp_path / "problem.py")
    fake = ("import collections\nFACTOR = 1.0\ndef fake(x):\n    return 1000000.0\n"
            "util = collections.namedtuple('U', 'value')(fake)\n")
    with pytest.raises(Refused, match="rebinds util"):
        problem.project.check(program_text({"pkg/__init__.py:1": fake}))
    with SandboxPool(problem, 1) as pool:
        assert pool.evaluate(problem.seed_code).scores == {"a": 2.0}
        evaluation = pool.evaluate(program_text({"pkg/__init__.py:1": fake}))
    assert evaluation.status == "error" and "rebinds util" in (evaluation.error or "")


@pytest.mark.parametrize("depth", [1000, 20000])
def test_a_block_nested_too_deeply_is_refused_never_a_crash(problem, depth) -> None:
    # `GAIN = 1+1+...` thousands of terms deep: the parser and the tree walks recurse; the engine got a
    # RecursionError out of apply_response (which a search does not expect) and `evoforge eval` a traceback.
    answer = f"calc.py:settings\n<<<<<<< SEARCH\nGAIN = 2.0\n=======\nGAIN = 1{'+1' * depth}\n>>>>>>> REPLACE\n"
    try:
        code = apply_response(answer, problem.seed_code, (), problem.project)
    except PatchError as exc:
        assert "nest too deeply" in str(exc)
        code = with_blocks(problem, {"calc.py:settings": f"GAIN = 1{'+1' * depth}\n"})
    assert code_hash(code) != code_hash(problem.seed_code)
    with pytest.raises(Refused, match="nest too deeply"):
        problem.project.check(code)
    with SandboxPool(problem, 1) as pool:
        evaluation = pool.evaluate(code)
    assert evaluation.status == "error" and "nest too deeply" in (evaluation.error or "")


@pytest.mark.parametrize("depth", [1500, 30000])
def test_an_evolved_function_nested_too_deeply_is_refused_never_a_crash(depth) -> None:
    # The same answer for an @evolve problem: apply_response, the hash and the sandbox's check raised
    # RecursionError (eval printed a traceback; a search would have stopped).
    toy = load_problem(FIXTURES / "toy_problem.py")
    answer = f"def f(x):\n    return x{'+0' * depth}\n"
    try:
        code = apply_response(answer, toy.seed_code, toy.evolved_names)
    except PatchError as exc:
        assert "nests too deeply" in str(exc)
        return
    assert code_hash(code) != code_hash(toy.seed_code)
    with SandboxPool(toy, 1) as pool:
        evaluation = pool.evaluate(code)
    assert evaluation.status == "error" and "nests too deeply" in (evaluation.error or "")


@pytest.mark.parametrize("fake", ["# EVOLVE\u2010BLOCK\u2010END", "# evolve-block-end", "# EVOLVE BLOCK END",
                                  "# \uff25\uff36\uff2f\uff2c\uff36\uff25-BLOCK-END", "x = '# EVOLVE-BLOCK-END'"])
def test_a_block_may_not_hold_a_look_alike_of_a_marker(problem, fake) -> None:
    # A block that "ends" at a look-alike marker and goes on with `return 1e9`: a reader of the exported file
    # would take that line for the trusted code after the block.
    answer = (f"calc.py:body\n<<<<<<< SEARCH\n    total = total + y\n=======\n    total = total + y\n    {fake}\n"
              "    return 1e9\n>>>>>>> REPLACE\n")
    with pytest.raises(PatchError, match="marker"):
        apply_response(answer, problem.seed_code, (), problem.project)
