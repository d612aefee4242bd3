"""apply_response: every accepted answer format, the usual LLM noise, and the errors a user reads."""

from __future__ import annotations

import pytest

from evoforge.engine.program.patching import apply_response
from evoforge.engine.program.source import PatchError, check_program, code_hash, normalize_code

NAMES = ["priority"]
SEED = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns priority with which we want to add item to each bin."""
    return -(bins - item)
'''
TWO = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Priority of each bin."""
    # keep this comment
    r = bins - item
    return -r


def tiebreak(bins: np.ndarray) -> np.ndarray:
    return bins * 0.0
'''
SQUARED = SEED.replace("return -(bins - item)", "return -(bins - item) ** 2")


def block(search: str, replace: str, marks: int = 7) -> str:
    return f"{'<' * marks} SEARCH\n{search}\n{'=' * marks}\n{replace}\n{'>' * marks} REPLACE\n"


def test_search_replace_exact():
    response = block("    return -(bins - item)", "    return -(bins - item) ** 2")
    assert apply_response(response, SEED, NAMES) == SQUARED


def test_prose_and_fences_around_blocks():
    response = ("I will square the residual, which favours tight fits.\n\n```python\n"
                + block("    return -(bins - item)", "    return -(bins - item) ** 2") + "```\n\nThat's it!")
    assert apply_response(response, SEED, NAMES) == SQUARED


def test_fences_inside_sections():
    response = "<<<<<<< SEARCH\n```python\n    return -(bins - item)\n```\n=======\n```python\n" \
               "    return -(bins - item) ** 2\n```\n>>>>>>> REPLACE\n"
    assert apply_response(response, SEED, NAMES) == SQUARED


def test_crlf_and_trailing_spaces():
    response = block("    return -(bins - item)   ", "    return -(bins - item) ** 2  ").replace("\n", "\r\n")
    assert apply_response(response, SEED, NAMES) == SQUARED
    # A parent with trailing spaces still matches a SEARCH without them.
    parent = SEED.replace("return -(bins - item)", "return -(bins - item)   ")
    assert apply_response(block("    return -(bins - item)", "    return -(bins - item) ** 2"),
                          parent, NAMES) == SQUARED


@pytest.mark.parametrize("marks", [5, 6, 8, 9])
def test_marker_lengths(marks):
    response = block("    return -(bins - item)", "    return -(bins - item) ** 2", marks=marks)
    assert apply_response(response, SEED, NAMES) == SQUARED


def test_lost_indentation_is_restored():
    response = block("return -(bins - item)", "r = bins - item\nif True:\n    r = r + 1\nreturn -r")
    code = apply_response(response, SEED, NAMES)
    assert code.endswith("    r = bins - item\n    if True:\n        r = r + 1\n    return -r\n")
    check_program(code, NAMES)


def test_tabs_become_the_parents_spaces():
    response = block("\treturn -(bins - item)", "\tr = bins - item\n\treturn -r ** 2")
    code = apply_response(response, SEED, NAMES)
    assert "\t" not in code
    assert code.endswith("    r = bins - item\n    return -r ** 2\n")


def test_fragment_of_a_line():
    response = block("(bins - item)", "(bins - 2 * item)")
    assert apply_response(response, SEED, NAMES).endswith("    return -(bins - 2 * item)\n")


def test_blocks_apply_in_order():
    response = (block("    r = bins - item", "    r = bins - item + 1.0") + "and then\n"
                + block("    r = bins - item + 1.0\n    return -r", "    r = bins - item + 1.0\n    return r"))
    code = apply_response(response, TWO, ["priority", "tiebreak"])
    assert "    r = bins - item + 1.0\n    return r\n" in code
    assert "# keep this comment" in code


def test_whole_function_rewrite_fenced():
    response = ("Here is a better version:\n\n```python\ndef priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
                "    return -(bins - item) ** 2\n```\nHope this helps.")
    code = apply_response(response, SEED, NAMES)
    assert code == "def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    return -(bins - item) ** 2\n"


def test_whole_function_rewrite_bare_answer():
    response = "def priority(item, bins):\n    return bins - item\n"
    assert apply_response(response, SEED, NAMES) == response


def test_whole_function_rewrite_of_one_of_two():
    response = "```python\ndef tiebreak(bins: np.ndarray) -> np.ndarray:\n    return -bins * 1e-3\n```"
    code = apply_response(response, TWO, ["priority", "tiebreak"])
    assert code.startswith(TWO.split("\n\n\ndef tiebreak")[0])  # priority untouched, comments included
    assert code.endswith("def tiebreak(bins: np.ndarray) -> np.ndarray:\n    return -bins * 1e-3\n")


def test_last_block_wins_when_the_answer_shows_the_old_version_first():
    response = (f"The current version:\n```python\n{SEED}```\nImproved:\n```python\n"
                "def priority(item, bins):\n    return -(bins - item) ** 3\n```")
    assert apply_response(response, SEED, NAMES).endswith("return -(bins - item) ** 3\n")


@pytest.mark.parametrize("response, says", [
    ("```python\nimport math\n\ndef priority(item, bins):\n    return -math.e * bins\n```", "`import math`"),
    ("```python\ndef helper(x):\n    return x\n\ndef priority(item, bins):\n    return helper(bins)\n```",
     "function `helper`"),
    (block("def priority(item: float, bins: np.ndarray) -> np.ndarray:",
           "import math\n\ndef priority(item: float, bins: np.ndarray) -> np.ndarray:"), "`import math`"),
    (block("def priority(item: float, bins: np.ndarray) -> np.ndarray:",
           "def priority_v2(item: float, bins: np.ndarray) -> np.ndarray:"), "`priority` is missing"),
    (block("    return -(bins - item)", "    return -(bins - item)\n\n\ndef helper():\n    return 1"),
     "function `helper`"),
    (block("    return -(bins - item)", "    return -(bins - item)\nSCALE = 2"), "statement `SCALE = 2`"),
])
def test_edits_outside_the_evolved_functions_are_refused(response, says):
    with pytest.raises(PatchError) as info:
        apply_response(response, SEED, NAMES)
    message = str(info.value)
    assert says in message
    assert "edits outside the evolved functions are refused" in message
    assert "only priority(...) may change" in message


def test_search_not_found_names_block_and_closest_line():
    response = (block("    return -(bins - item)", "    return -(bins - item) ** 2")
                + block("    return -(bins - item) ** 3", "    return 0"))
    with pytest.raises(PatchError) as info:
        apply_response(response, SEED, NAMES)
    message = str(info.value)
    assert "block 2 of 2 (response line 6)" in message
    assert "after applying block 1" in message
    assert "SEARCH line 1 `return -(bins - item) ** 3` matches no line of the code" in message
    assert "the closest is code line 3: `return -(bins - item) ** 2`" in message


def test_search_lines_out_of_order():
    with pytest.raises(PatchError, match="each of its lines exists but not in this order"):
        apply_response(block("    r = bins - item\n    # keep this comment", "    pass"), TWO, ["priority", "tiebreak"])


def test_ambiguous_search():
    parent = "def priority(item, bins):\n    x = 1\n    y = 2\n    x = 1\n    return x + y\n"
    with pytest.raises(PatchError, match=r"block 1 of 1 .* occurs 2 times in the code \(at lines 2, 4\)"):
        apply_response(block("    x = 1", "    x = 3"), parent, NAMES)
    # More context makes it unique.
    code = apply_response(block("    y = 2\n    x = 1", "    y = 2\n    x = 3"), parent, NAMES)
    assert code == "def priority(item, bins):\n    x = 1\n    y = 2\n    x = 3\n    return x + y\n"


def test_no_block_at_all():
    with pytest.raises(PatchError) as info:
        apply_response("I think the function is already optimal.", SEED, NAMES)
    assert str(info.value) == ("no SEARCH/REPLACE block and no function definition of priority(...) found in "
                               "the response")


def test_no_block_mentions_a_renamed_function():
    with pytest.raises(PatchError, match=r"it defines priority_v2 instead"):
        apply_response("```python\ndef priority_v2(item, bins):\n    return bins\n```", SEED, NAMES)


@pytest.mark.parametrize("response", [
    block("    return -(bins - item)", "    return -(bins - item)"),
    f"```python\n{SEED}```",
    block("    return -(bins - item)", "    return -(bins - item)  # same, with a comment"),
])
def test_edit_that_changes_nothing(response):
    with pytest.raises(PatchError, match="^the edit changes nothing"):
        apply_response(response, SEED, NAMES)


def test_malformed_blocks():
    with pytest.raises(PatchError, match=r"block 1 \(response line 1\): no `=======` line"):
        apply_response("<<<<<<< SEARCH\n    return 1\n>>>>>>> REPLACE\n", SEED, NAMES)
    with pytest.raises(PatchError, match="is not closed by a `>>>>>>> REPLACE` line"):
        apply_response("<<<<<<< SEARCH\n    return 1\n=======\n    return 2\n", SEED, NAMES)
    with pytest.raises(PatchError, match="the SEARCH section is empty"):
        apply_response("<<<<<<< SEARCH\n=======\n    return 2\n>>>>>>> REPLACE\n", SEED, NAMES)
    with pytest.raises(PatchError, match="without a `<<<<<<< SEARCH`"):
        apply_response("    return 2\n>>>>>>> REPLACE\n", SEED, NAMES)


def test_result_that_does_not_parse_names_the_line():
    with pytest.raises(PatchError, match=r"the new code does not parse: .* at line 3"):
        apply_response(block("    return -(bins - item)", "    return -(bins - item"), SEED, NAMES)
    with pytest.raises(PatchError, match=r"response line 2 does not parse"):
        apply_response("```python\ndef priority(item, bins):\n    return (\n```", SEED, NAMES)


def test_check_program():
    check_program(TWO, ["priority", "tiebreak"])
    with pytest.raises(PatchError, match="function `tiebreak` is missing"):
        check_program(SEED, ["priority", "tiebreak"])
    with pytest.raises(PatchError, match="line 1: a decorator on `priority`"):
        check_program("@numba.njit\n" + SEED, NAMES)
    with pytest.raises(PatchError, match=r"line 4: `priority` is defined twice \(first at line 1\)"):
        check_program("def priority(a, b):\n    return 1\n\ndef priority(a, b):\n    return 2\n", NAMES)
    with pytest.raises(PatchError, match=r"does not parse: .* at line 2: `return \(`"):
        check_program("def priority(a, b):\n    return (\n", NAMES)


def test_normalize_ignores_comments_layout_and_docstrings():
    variant = ('def priority(item: float, bins: np.ndarray) -> np.ndarray:\n'
               '    """A different docstring."""\n    # a comment\n    return -( bins-item )\n')
    assert normalize_code(variant) == normalize_code(SEED)
    assert code_hash(variant) == code_hash(SEED)
    assert len(code_hash(SEED)) == 64
    assert code_hash(SQUARED) != code_hash(SEED)
    assert normalize_code('def f():\n    """doc"""\n') == normalize_code("def f():\n    pass\n")


@pytest.mark.parametrize("header", [
    "def priority(item, bins, _hijack=exec('solve = None')):",
    "def priority(item, bins, *, k=len(globals())):",
    "def priority(item: __import__('os').system('true'), bins):",
    "def priority(item, bins) -> (lambda: 0)():",
])
def test_code_that_would_run_when_the_def_is_loaded_is_refused(header):
    """Defaults and annotations run at definition time, before solve() calls anything: only literals and types."""
    code = header + "\n    return -(bins - item)\n"
    with pytest.raises(PatchError, match="not a literal|not a plain type"):
        check_program(code, ["priority"])
    fine = ("def priority(item: float, bins: np.ndarray | None, k: int = -2, s=(1, 'a')) -> np.ndarray:\n"
            "    return bins\n")
    check_program(fine, ["priority"])
