"""Marked blocks in ordinary files (issue 15): markers, the program as its blocks, edits inside the blocks only.

Every accepted edit is checked byte for byte against the project's files outside the blocks; every refused one
must say why, since that text goes back to the model as the candidate's error.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from evoforge.engine.program.candidates import read_candidate
from evoforge.engine.program.patching import PatchError, apply_response
from evoforge.engine.program.source import code_hash
from evoforge.engine.propose.offline import BlockMutator, NoMutationFound
from evoforge.engine.propose.prompts import ParentView, build_messages
from evoforge.evaluators import ProblemError, load_problem
from evoforge.evaluators.project import ProjectError, parse_markers, program_text
from evoforge.evaluators.validator import Refused

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROBLEM = FIXTURES / "block_problem.py"
MERGE_SORT = Path(__file__).resolve().parent.parent / "problems" / "merge_sort.py"
_MARKER = re.compile(rb"^[ \t]*# EVOLVE-BLOCK-(START|END).*$", re.MULTILINE)


@pytest.fixture(scope="module")
def problem():
    return load_problem(PROBLEM)


def outside(text: str) -> list[bytes]:
    """The bytes of a file outside its blocks: everything but what lies between a START and its END."""
    data = text.encode()
    pieces, at, inside = [], 0, False
    for match in _MARKER.finditer(data):
        if not inside:
            pieces.append(data[at:match.end()])
        else:
            at = match.start()
        inside = not inside
    pieces.append(data[at:])
    return pieces


def assert_only_blocks_changed(problem, code: str) -> dict[str, str]:
    files = problem.project.check(code)
    for path, text in problem.project.files.items():
        assert outside(files[path]) == outside(text), path
    return files


def test_the_seed_is_the_blocks_and_assembles_to_the_files_byte_for_byte(problem) -> None:
    project = problem.project
    assert project.block_ids == ("calc.py:settings", "calc.py:body", "helpers/scale.py:1")
    assert problem.seed_code.startswith("# EVOLVE-BLOCK calc.py:settings\nGAIN = 2.0\n")
    assert project.check(problem.seed_code) == project.files  # CRLF of helpers/scale.py included
    assert "\r\n" in project.files["helpers/scale.py"]
    assert problem.module.solve({"x": 1.0}) == {"value": 3.0}  # outside a sandbox, the files run in-process


def test_search_replace_across_blocks_of_two_files_changes_only_the_blocks(problem) -> None:
    answer = ("I change two blocks.\n\ncalc.py:body\n<<<<<<< SEARCH\n    y = x * GAIN\n=======\n"
              "    y = x * GAIN + 1.0\n>>>>>>> REPLACE\n\nhelpers/scale.py\n```\n<<<<<<< SEARCH\n    factor = 1.0\n"
              "=======\n    factor = 3.0\n>>>>>>> REPLACE\n```\n")
    code = apply_response(answer, problem.seed_code, problem.evolved_names, problem.project)
    files = assert_only_blocks_changed(problem, code)
    assert "    y = x * GAIN + 1.0\n" in files["calc.py"]
    assert files["helpers/scale.py"].count("\r\n") == problem.project.files["helpers/scale.py"].count("\r\n")
    assert "factor = 3.0\r\n" in files["helpers/scale.py"]
    assert files["plain.py"] == problem.project.files["plain.py"]


def test_an_unnamed_search_is_found_in_the_one_block_that_has_it_and_a_whole_block_may_be_rewritten(problem) -> None:
    code = apply_response("<<<<<<< SEARCH\nGAIN = 2.0\n=======\nGAIN = 4.0\n>>>>>>> REPLACE\n", problem.seed_code,
                          (), problem.project)
    assert "GAIN = 4.0" in assert_only_blocks_changed(problem, code)["calc.py"]
    rewrite = "<<<<<<< BLOCK calc.py:body\ny = x * x\ntotal = y - 1.0\n>>>>>>> BLOCK\n"  # dedented: re-indented
    code = apply_response(rewrite, problem.seed_code, (), problem.project)
    assert "\n    y = x * x\n    total = y - 1.0\n    # EVOLVE-BLOCK-END" in assert_only_blocks_changed(problem, code)[
        "calc.py"]


@pytest.mark.parametrize("answer, reason", [
    ("calc.py\n<<<<<<< SEARCH\nOFFSET = 1.0\n=======\nOFFSET = 100.0\n>>>>>>> REPLACE\n",
     "outside the evolve blocks"),
    ("<<<<<<< SEARCH\n    return total\n=======\n    return total * 100\n>>>>>>> REPLACE\n",
     "outside the evolve blocks"),
    ("calc.py:nope\n<<<<<<< SEARCH\nGAIN = 2.0\n=======\nGAIN = 3.0\n>>>>>>> REPLACE\n",
     "no block named calc.py:nope"),
    ("<<<<<<< BLOCK calc.py:7\nGAIN = 3.0\n>>>>>>> BLOCK\n", "no block named calc.py:7"),
    ("../block_problem.py\n<<<<<<< SEARCH\nGAIN = 2.0\n=======\nGAIN = 3.0\n>>>>>>> REPLACE\n",
     "outside the project folder"),
    ("/etc/passwd\n<<<<<<< SEARCH\nroot\n=======\nx\n>>>>>>> REPLACE\n", "outside the project folder"),
    ("plain.py\n<<<<<<< SEARCH\nHELPER = 3\n=======\nHELPER = 4\n>>>>>>> REPLACE\n", "has no evolve block"),
    ("missing.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n", "no file missing.py"),
    ("calc.py:body\n<<<<<<< SEARCH\n    y = x * GAIN\n    total = total + y\n=======\n    y = 1.0\n>>>>>>> REPLACE\n"
     "calc.py:body\n<<<<<<< SEARCH\n    total = total + y\n=======\n    total = 2.0\n>>>>>>> REPLACE\n", "overlap"),
    ("<<<<<<< BLOCK calc.py:body\n    y = 1.0\n>>>>>>> BLOCK\ncalc.py:body\n<<<<<<< SEARCH\n    y = x * GAIN\n=======\n"
     "    y = 2.0\n>>>>>>> REPLACE\n", "overlap"),
    # A block that dedents makes the trusted `return total` the body of its own `if`: the structure around it.
    ("calc.py:body\n<<<<<<< SEARCH\n    total = total + y\n=======\n    total = total + y\nif False:\n"
     ">>>>>>> REPLACE\n", "change the code around them"),
    ("calc.py:body\n<<<<<<< SEARCH\n    total = total + y\n=======\n    total = total + y\n    if total:\n"
     "        total = 1.0\n    x = '''\n>>>>>>> REPLACE\n", "syntax error"),
    ("calc.py:settings\n<<<<<<< SEARCH\nGAIN = 2.0\n=======\nGAIN = 2.0\nOFFSET = 50.0\n>>>>>>> REPLACE\n",
     "rebinds OFFSET"),
    ("calc.py:settings\n<<<<<<< SEARCH\nGAIN = 2.0\n=======\nGAIN = 2.0\nrun = None\n>>>>>>> REPLACE\n",
     "rebinds run"),
    ("calc.py:body\n<<<<<<< SEARCH\n    y = x * GAIN\n=======\n    global scale\n    y = x * GAIN\n>>>>>>> REPLACE\n",
     "rebinds scale"),
    ("calc.py:settings\n<<<<<<< SEARCH\nGAIN = 2.0\n=======\nlen = 2.0\nGAIN = 2.0\n>>>>>>> REPLACE\n", "rebinds len"),
    ("calc.py:settings\n<<<<<<< SEARCH\nGAIN = 2.0\n=======\ntry:\n    GAIN = 1 / 0\nexcept ZeroDivisionError as run:\n"
     "    GAIN = 2.0\n>>>>>>> REPLACE\n", "rebinds run"),
    ("calc.py:body\n<<<<<<< SEARCH\n    y = x * GAIN\n=======\n    def bump():\n        nonlocal total\n"
     "        total = 9.0\n    bump()\n    y = x * GAIN\n>>>>>>> REPLACE\n", "rebinds total"),
    ("calc.py:settings\n<<<<<<< SEARCH\nGAIN = 2.0\n=======\nGAIN = 2.0\n# EVOLVE-BLOCK-END\n>>>>>>> REPLACE\n",
     "marker"),
    ("calc.py:body\n<<<<<<< SEARCH\n    y = x * GAIN\n=======\n    y = x * GAIN\n    yield y\n>>>>>>> REPLACE\n",
     "into a generator"),
    ("Here is my idea: make it bigger.", "no SEARCH/REPLACE edit"),
])
def test_edits_outside_the_blocks_and_malformed_ones_are_refused_with_the_reason(problem, answer, reason) -> None:
    with pytest.raises(PatchError) as caught:
        apply_response(answer, problem.seed_code, (), problem.project)
    assert reason in str(caught.value)


def test_a_block_that_captures_the_code_after_it_is_refused_even_where_it_parses(problem) -> None:
    # The block ends with `if GAIN:` at a lower indentation, so `return total` (trusted) would become its body.
    blocks = problem.project.blocks_of(problem.seed_code)
    blocks["calc.py:body"] = "    y = x * GAIN\n    total = total + y\n    for _ in [1]:\n"
    with pytest.raises(Refused, match="change the code around them|syntax error"):
        problem.project.check(program_text(blocks))
    blocks["calc.py:body"] = "    y = x * GAIN\n    total = total + y\n    if GAIN:\n     pass\n"
    problem.project.check(program_text(blocks))  # a whole statement at the block's indentation is fine
    blocks["calc.py:body"] = "    def doubled():\n        yield x * GAIN\n    total = total + sum(doubled())\n"
    problem.project.check(program_text(blocks))  # a generator of the block's own


def test_the_language_check_applies_to_the_blocks_only(problem) -> None:
    blocks = problem.project.blocks_of(problem.seed_code)
    blocks["calc.py:body"] = "    y = open('/etc/passwd').read()\n    total = total + len(y)\n"
    with pytest.raises(Refused, match="calc.py line 23: `open` is not available"):
        problem.project.check(program_text(blocks))
    problem.project.check(program_text(blocks), language=False)  # structure only: a person vouched for it
    blocks["calc.py:body"] = "    import os\n    total = total + os.getpid()\n"
    with pytest.raises(Refused, match="import os"):
        problem.project.check(program_text(blocks))


def test_program_text_round_trip_and_hash_ignores_comments(problem) -> None:
    code = problem.seed_code
    assert program_text(problem.project.blocks_of(code)) == code
    commented = code.replace("GAIN = 2.0\n", "GAIN = 2.0  # the gain\n")
    assert code_hash(commented) == code_hash(code)
    assert code_hash(code.replace("GAIN = 2.0", "GAIN = 2.5")) != code_hash(code)
    with pytest.raises(Refused, match="missing"):
        problem.project.blocks_of("# EVOLVE-BLOCK calc.py:settings\nGAIN = 1.0\n")


@pytest.mark.parametrize("text, message", [
    ("x = 1\n# EVOLVE-BLOCK-START\ny = 2\n", "never closed"),
    ("# EVOLVE-BLOCK-END\n", "without a"),
    ("# EVOLVE-BLOCK-START a\n# EVOLVE-BLOCK-START b\n# EVOLVE-BLOCK-END\n", "inside the block"),
    ("# EVOLVE-BLOCK-START a\n# EVOLVE-BLOCK-END\n# EVOLVE-BLOCK-START a\n# EVOLVE-BLOCK-END\n", "second block named"),
    ("x = 1  # EVOLVE-BLOCK-START\n", "outside a marker line"),
])
def test_malformed_markers_are_refused_naming_the_line(text, message) -> None:
    with pytest.raises(ProjectError, match=message):
        parse_markers("f.py", text)


def test_problem_file_mistakes_about_the_project_are_refused(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "block_project", tmp_path / "block_project")
    source = PROBLEM.read_text()
    cases = {
        "calls=[\"calc.run\"]": ("calls=[\"calc.GAIN\"]", "not a top-level def outside the blocks"),
        "Project(\"block_project\"": ("Project(\"nowhere\"", "no such folder"),
        "Settings(maximize=True": ("Settings(numba=True, maximize=True", "numba is on"),
    }
    for old, (new, message) in cases.items():
        path = tmp_path / "problem.py"
        path.write_text(source.replace(old, new))
        with pytest.raises(ProblemError, match=message):
            load_problem(path)
    inside = tmp_path / "block_project" / "problem.py"
    inside.write_text(source.replace("Project(\"block_project\"", "Project(\".\""))
    with pytest.raises(ProblemError, match="holds the problem file itself"):
        load_problem(inside)


def test_the_prompt_shows_the_whole_files_with_the_blocks_marked_and_named(problem) -> None:
    parents = [ParentView(problem.seed_code.replace("2.0", "1.5"), 2.0, "ok"), ParentView(problem.seed_code, 4.0, "ok")]
    text = build_messages(problem.description, (), parents, project=problem.project)[1]["content"]
    assert "### calc.py (Version 1)" in text and "### helpers/scale.py (Version 1)" in text
    assert "    # EVOLVE-BLOCK-START calc.py:body\n    y = x * GAIN" in text
    assert "def run(item):" in text  # the code around the blocks is shown, to read
    assert "# EVOLVE-BLOCK calc.py:settings\nGAIN = 1.5" in text  # an older version: its blocks
    assert "plain.py" in text and "<<<<<<< BLOCK calc.py:settings" in text


def test_offline_block_mutations_apply_and_change_only_the_blocks(problem) -> None:
    mutator = BlockMutator(problem.project)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(12):
        made = mutator.propose_detailed([problem.seed_code], (), rng)
        code = apply_response(made.response, problem.seed_code, (), problem.project)
        assert code == made.code
        assert_only_blocks_changed(problem, code)
        seen.add(re.search(r"of block (\S+)\.", made.response).group(1))
    assert len(seen) >= 2  # it varies which block it changes


def test_a_candidate_is_read_from_a_copy_of_the_project_folder_or_its_blocks(problem, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(FIXTURES / "block_project", copy)
    calc = copy / "calc.py"
    calc.write_text(calc.read_text().replace("GAIN = 2.0", "GAIN = 7.0"))
    code = read_candidate(copy, problem)
    assert "GAIN = 7.0" in code and code_hash(code) != code_hash(problem.seed_code)
    calc.write_text(calc.read_text().replace("OFFSET = 1.0", "OFFSET = 9.0"))
    with pytest.raises(ProblemError, match="outside its blocks"):
        read_candidate(copy, problem)
    blocks_file = tmp_path / "blocks.txt"
    blocks_file.write_text(code)
    assert read_candidate(blocks_file, problem) == code


def test_the_bundled_example_loads_and_its_seed_sorts(tmp_path: Path) -> None:
    example = load_problem(MERGE_SORT)
    assert example.project is not None and len({b.file for b in example.project.blocks}) == 2
    for values in example.inputs.values():
        scored = example.score_input(values, example.module.solve(values))
        assert scored.metrics["misordered"] == 0.0 and scored.value > 3


def test_an_empty_block_is_a_place_to_write_code(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "m.py").write_text("def f(x):\n    y = x\n    # EVOLVE-BLOCK-START\n    # EVOLVE-BLOCK-END\n"
                                            "    return y")  # no newline at the end: kept so
    (tmp_path / "p.py").write_text(PROBLEM.read_text().replace('"block_project", calls=["calc.run"]',
                                                               '"proj", calls=["m.f"]'))
    empty = load_problem(tmp_path / "p.py")
    assert empty.seed_code == "# EVOLVE-BLOCK m.py:1\n"
    assert empty.project.check(empty.seed_code) == empty.project.files
    with pytest.raises(NoMutationFound, match="every block is empty"):
        BlockMutator(empty.project).propose_detailed([empty.seed_code], (), np.random.default_rng(0))
    code = apply_response("<<<<<<< BLOCK m.py:1\ny = y + 1\n>>>>>>> BLOCK", empty.seed_code, (), empty.project)
    assert empty.project.check(code)["m.py"] == ("def f(x):\n    y = x\n    # EVOLVE-BLOCK-START\n    y = y + 1\n"
                                                 "    # EVOLVE-BLOCK-END\n    return y")
