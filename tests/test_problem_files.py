"""The problem-file loader: bundled problems load and score their published figures; broken files explain themselves."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from evoforge.evaluators import InvalidOutput, ProblemError, load_problem, parse_overrides

GOOD = '''\
"""Toy problem: double a number."""
from evoforge import evolve, Settings

PARAMS = {"k": 2, "label": "x", "flag": False}
SETTINGS = Settings(maximize=True, time_limit_s=5.0)

@evolve
def f(x):
    return x * 2

def solve(x):
    return f(x)

def score(x, out):
    return float(out)

def inputs(params):
    return {"one": 1, "k": params["k"]}
'''


def write(tmp_path: Path, text: str, name: str = "prob.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run_seed(problem) -> float:
    scores = {n: problem.score_output(i, problem.module.solve(i)) for n, i in problem.inputs.items()}
    return problem.aggregate(scores, problem.inputs)


def test_good_problem_loads_with_seed_and_inputs(tmp_path: Path) -> None:
    problem = load_problem(write(tmp_path, GOOD))
    assert problem.description == "Toy problem: double a number."
    assert problem.evolved_names == ("f",)
    assert problem.seed_code == "def f(x):\n    return x * 2\n"
    assert problem.inputs == {"one": 1, "k": 2}
    assert problem.settings.time_limit_s == 5.0


def test_overrides_reach_params_and_settings_with_types(tmp_path: Path) -> None:
    overrides = parse_overrides(["k=7", "time_limit_s=1.5", "flag=true", "numba=1"])
    problem = load_problem(write(tmp_path, GOOD), overrides)
    assert problem.params["k"] == 7 and problem.params["flag"] is True
    assert problem.settings.time_limit_s == 1.5 and problem.settings.numba is True
    assert problem.inputs["k"] == 7


@pytest.mark.parametrize("pairs, message", [
    (["nope=1"], "no such parameter or setting"),
    (["flags=1"], "did you mean 'flags' -> 'flag'? use one of"),
    (["time_limit=3"], "did you mean 'time_limit' -> 'time_limit_s'?"),
    (["k=seven"], "give k a value of type int"),
    (["flag=maybe"], "expected true or false"),
    (["numba=maybe"], "give numba true, false or auto"),
])
def test_bad_overrides_are_named(tmp_path: Path, pairs: list[str], message: str) -> None:
    with pytest.raises(ProblemError, match=re.escape(message)):
        load_problem(write(tmp_path, GOOD), parse_overrides(pairs))


def test_malformed_set_pair() -> None:
    with pytest.raises(ProblemError, match="expected key=value"):
        parse_overrides(["novalue"])


@pytest.mark.parametrize("edit, message, line", [
    (lambda s: s.replace("return x * 2", "return x *"), "syntax error", ":9:"),
    (lambda s: s.replace("@evolve\n", ""), "no function is marked @evolve", None),
    (lambda s: s.replace("def score(x, out):\n    return float(out)\n", ""), "no function `score`", None),
    (lambda s: s.replace("def solve(x):\n    return f(x)\n", ""), "no function `solve`", None),
    (lambda s: s.replace('"""Toy problem: double a number."""\n', ""), "no module docstring", None),
    (lambda s: s + "\nraise RuntimeError('boom')\n", "RuntimeError: boom", ":20:"),
    (lambda s: s.replace('return {"one": 1, "k": params["k"]}', "return 3"), "returned int", None),
    (lambda s: s.replace("maximize=True", 'maximize="False"'), "use True or False", ":5:"),
    (lambda s: s.replace("time_limit_s=5.0", "time_limit_s=-1"), "time_limit_s=-1", ":5:"),
    (lambda s: s.replace("def solve(x):", "def solve(x, params):"), "cannot be called as solve(input)", ":11:"),
    (lambda s: s.replace("def score(x, out):", "def score(out):"), "score(input, output)", ":14:"),
    (lambda s: s.replace("def inputs(params):", "def inputs():"), "inputs(params)", ":17:"),
    (lambda s: s.replace("def score(x, out):", "def scroe(x, out):"), "is 'scroe' meant to be 'score'", None),
    (lambda s: s.replace('params["k"]', 'params["kk"]'), "did you mean 'k'", ":18:"),
    (lambda s: s.replace("SETTINGS = Settings(maximize=True, time_limit_s=5.0)", 'SETTINGS = {"maximise": True}'),
     "SETTINGS has unknown key", ":5:"),
    (lambda s: s.replace("SETTINGS = Settings(maximize=True, time_limit_s=5.0)", 'SETTINGS = {"maximise": True}'),
     "did you mean 'maximise' -> 'maximize'?", ":5:"),
    # A seed def no candidate may keep: every mutation would be refused, and the search would stall unexplained.
    (lambda s: s.replace("def f(x):", "def f(x, scale=abs(-2)):"), "default value of `f` that is not a literal",
     ":8:"),
    (lambda s: s.replace("def f(x):", "def f(x: print('loaded')):"), "annotation of `f` that is not a plain type",
     ":8:"),
    (lambda s: s.replace("@evolve\n", "@evolve\n@staticmethod\n"), "has the decorator @staticmethod", ":8:"),
])
def test_broken_problem_files_get_one_clear_message(tmp_path: Path, edit, message: str, line: str | None) -> None:
    path = write(tmp_path, edit(GOOD))
    with pytest.raises(ProblemError) as info:
        load_problem(path)
    text = str(info.value)
    assert message in text
    assert str(path) in text
    assert "fix:" in text
    if line:
        assert line in text


@pytest.mark.parametrize("pairs, message", [(["time_limit_s=0"], "use a positive number"),
                                             (["memory_limit_mb=-5"], "use a positive number")])
def test_set_values_a_setting_cannot_take_are_refused(tmp_path: Path, pairs: list[str], message: str) -> None:
    with pytest.raises(ProblemError, match=message):
        load_problem(write(tmp_path, GOOD), parse_overrides(pairs))


def test_a_misspelt_optional_name_is_warned_about_not_silently_ignored(tmp_path: Path) -> None:
    text = GOOD.replace("SETTINGS = Settings(", "SETTING = Settings(").replace(
        "def inputs(params):", "def held_out_input(params):\n    return [3]\n\ndef inputs(params):")
    problem = load_problem(write(tmp_path, text))
    assert problem.settings.maximize  # the default, since SETTINGS is missing: which is why it is worth a warning
    assert any("'SETTING'" in w and "'SETTINGS'" in w for w in problem.warnings)
    assert any("'held_out_input'" in w for w in problem.warnings)
    assert load_problem(write(tmp_path, GOOD, "good.py")).warnings == ()  # the imported Settings class is no typo


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="no such problem file"):
        load_problem(tmp_path / "missing.py")


@pytest.mark.parametrize("returned, said", [
    ("None", "score() returned NoneType as the score, not a number; does a path of score() end without `return`? "
             "(prob.py:14)"),
    ("float(out), 'fine'", "score() returned tuple as the score, not a number; return one number, a dict of named "
                           "metrics, or Scored(value, feedback=...) (from evoforge) for a number with text"),
])
def test_a_score_that_is_not_a_number_says_what_to_return(tmp_path: Path, returned: str, said: str) -> None:
    problem = load_problem(write(tmp_path, GOOD.replace("    return float(out)\n", f"    return {returned}\n")))
    with pytest.raises(InvalidOutput) as info:
        problem.score_output(1, 2)
    assert said in str(info.value)


def test_score_must_be_finite(tmp_path: Path) -> None:
    problem = load_problem(write(tmp_path, GOOD))
    with pytest.raises(InvalidOutput, match="not a finite number"):
        problem.score_output(1, float("nan"))
    with pytest.raises(InvalidOutput, match="rejected"):
        problem.score_output(1, "not a number")


def test_cap_set_seed_gives_256(repo: Path) -> None:
    problem = load_problem(repo / "problems" / "cap_set.py")
    assert run_seed(problem) == 256.0


def test_cap_set_score_rejects_a_line(repo: Path) -> None:
    problem = load_problem(repo / "problems" / "cap_set.py", {"n": "3"})
    with pytest.raises(InvalidOutput, match="complete a line"):
        problem.score_output(3, [[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    with pytest.raises(InvalidOutput, match="repeats"):
        problem.score_output(3, [[0, 0, 1], [0, 0, 1]])
    assert problem.score_output(3, [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]) == 4.0


def test_bin_packing_reproduces_published_or3_and_weibull_figures(repo: Path, bin_packing_data: Path) -> None:
    expected = {"or3.json": (5.37, 5.74), "weibull_5k.json": (3.98, 4.23)}
    for name, (best_fit, first_fit) in expected.items():
        problem = load_problem(repo / "problems" / "bin_packing.py", {"dataset": str(bin_packing_data / name)})
        assert round(run_seed(problem), 2) == best_fit
        problem.module.priority = lambda item, bins: -np.arange(len(bins), dtype=float)
        assert round(run_seed(problem), 2) == first_fit


def funsearch_weibull_priority(item: float, bins: np.ndarray) -> np.ndarray:
    """The Weibull heuristic published with FunSearch (google-deepmind/funsearch, bin_packing notebook)."""
    score = (bins - max(bins)) ** 2 / item + bins**2 / item**2
    score += bins**2 / item**3
    score[bins > item] = -score[bins > item]
    score[1:] -= score[:-1]
    return score


def test_bin_packing_funsearch_heuristic_reproduces_its_weibull_figure(repo: Path, bin_packing_data: Path) -> None:
    problem = load_problem(repo / "problems" / "bin_packing.py", {"dataset": str(bin_packing_data / "weibull_5k.json")})
    problem.module.priority = funsearch_weibull_priority
    assert round(run_seed(problem), 2) == problem.module.REFERENCES["weibull_5k"]["funsearch"] == 0.68


def test_bin_packing_score_rejects_overfull_bin(repo: Path) -> None:
    problem = load_problem(repo / "problems" / "bin_packing.py")
    instance = {"capacity": 10, "items": [6, 6]}
    with pytest.raises(InvalidOutput, match="capacity"):
        problem.score_output(instance, [0, 0])
    assert problem.score_output(instance, [0, 1]) == 0.0


def test_bin_packing_missing_dataset_says_where(repo: Path) -> None:
    with pytest.raises(ProblemError, match="--set dataset="):
        load_problem(repo / "problems" / "bin_packing.py", {"dataset": "/nonexistent/or3.json"})


def test_bin_packing_held_out_is_disjoint_from_training(repo: Path) -> None:
    problem = load_problem(repo / "problems" / "bin_packing.py")
    train = {tuple(i["items"]) for i in problem.inputs.values()}
    held = {tuple(i["items"]) for i in problem.held_out.values()}
    assert held and not train & held
