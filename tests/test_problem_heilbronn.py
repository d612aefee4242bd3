"""The Heilbronn triangle problem (problems/heilbronn.py): the seed scores its known value through the real sandbox,
constructions score what they should (exactly where the coordinates are exact floats), and `score` rejects invalid
outputs while scoring degenerate ones 0."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from evoforge.engine.run.evaluate import evaluate_file
from evoforge.evaluators import InvalidOutput, ProblemError, load_problem

REPO = Path(__file__).resolve().parent.parent
PROBLEM = REPO / "problems" / "heilbronn.py"

# The seed: 11 points evenly spaced on the circle of radius 1/2 inscribed in the square. Its smallest triangles are
# those of three consecutive points, of area 2 R^2 sin^2(pi/n) sin(2 pi/n) with R = 1/2; this is the exact value
# of the floats the seed returns.
SEED_SCORE = 0.02145620494458458

# 11 points found here by SLSQP (maximise t subject to +-area_ijk >= t, with the points mirrored in the diagonal
# y = x), rounded to 10 digits: smallest triangle 0.0352760, short of the best known 1/27.
ELEVEN_POINTS = [
    [0.6166891918, 0.1144044966], [1.0, 0.3421727277], [0.7786594922, 0.9576592071], [0.0, 0.1144044966],
    [0.0, 0.8715558947], [0.1144044966, 0.6166891918], [0.3421727277, 1.0], [0.9576592071, 0.7786594922],
    [0.1144044966, 0.0], [0.8715558947, 0.0], [0.617438641, 0.617438641]]

# 8 points on the 8 x 8 lattice {0..7}^2 whose smallest triangle has doubled area 6 in lattice units (OEIS A248866,
# a(8) = 6): an octagon, two points near each corner. Scaled by 1/8 every coordinate is an exact float, so the score
# is exactly 3/64.
OCTAGON = [[2, 0], [5, 0], [0, 2], [7, 2], [0, 5], [7, 5], [2, 7], [5, 7]]


def evaluate(candidate: str | None = None, tmp_path: Path | None = None, **overrides: str) -> dict:
    """Evaluate the seed, or a candidate given as source text, exactly as `evoforge eval` does."""
    path = None
    if candidate is not None:
        assert tmp_path is not None
        path = tmp_path / "candidate.py"
        path.write_text(textwrap.dedent(candidate))
    report = evaluate_file(str(PROBLEM), str(path) if path else None, overrides)
    assert report["status"] == "ok", report["error"]
    return report


def constant(points: list) -> str:
    return f"def points(n):\n    return np.array({points!r}, dtype=float)\n"


def rejects(problem, case, output, message: str) -> None:
    with pytest.raises(InvalidOutput, match=message):
        problem.score_output(case, output)


def brute_min_area(points) -> Fraction:
    """Smallest triangle area by the shoelace formula over all triples, in exact arithmetic (independent check)."""
    exact = [(Fraction(float(x)), Fraction(float(y))) for x, y in points]
    best = None
    for i in range(len(exact)):
        for j in range(i + 1, len(exact)):
            for k in range(j + 1, len(exact)):
                (x1, y1), (x2, y2), (x3, y3) = exact[i], exact[j], exact[k]
                area = abs(x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2)) / 2
                best = area if best is None else min(best, area)
    return best


def test_seed_scores_the_inscribed_regular_polygon_value() -> None:
    report = evaluate()
    assert report["scores"] == {"n11": pytest.approx(SEED_SCORE, abs=1e-12)}
    assert report["score"] == pytest.approx(SEED_SCORE, abs=1e-12)
    assert report["score"] == pytest.approx(0.5 * math.sin(math.pi / 11) ** 2 * math.sin(2 * math.pi / 11), abs=1e-12)
    assert report["maximize"] is True and report["warnings"] == []
    # The seed's points lie on the circle, so no three are collinear for any n; n = 4 is the square's inscribed
    # diamond, whose four triangles each have half its area 1/2.
    assert evaluate(n="4")["score"] == pytest.approx(0.25, abs=1e-12)


def test_eval_cli_reports_the_seed_as_json() -> None:
    result = subprocess.run([sys.executable, "-m", "evoforge", "eval", str(PROBLEM), "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "ok" and report["candidate"] == "seed"
    assert report["score"] == pytest.approx(SEED_SCORE, abs=1e-12)


def test_problem_file_settings_and_references() -> None:
    problem = load_problem(PROBLEM)
    assert problem.params == {"n": 11} and problem.inputs == {"n11": {"n": 11}}
    assert problem.evolved_names == ("points",)
    assert problem.settings.maximize is True
    assert problem.module.REFERENCES[11]["best_known"] == 1 / 27
    assert load_problem(PROBLEM, {"n": "5"}).inputs == {"n5": {"n": 5}}
    with pytest.raises(ProblemError, match="at least 3 points"):
        load_problem(PROBLEM, {"n": "2"})


def test_square_corners_score_one_half_for_four_points(tmp_path: Path) -> None:
    corners = [[0, 0], [1, 0], [1, 1], [0, 1]]
    assert evaluate(constant(corners), tmp_path, n="4")["score"] == 0.5
    assert evaluate(constant(corners[:3]), tmp_path, n="3")["score"] == 0.5
    references = load_problem(PROBLEM).module.REFERENCES
    assert references[3]["best_known"] == references[4]["best_known"] == 0.5


def test_lattice_octagon_scores_exactly_3_over_64(tmp_path: Path) -> None:
    octagon = (np.array(OCTAGON) / 8).tolist()
    assert brute_min_area(octagon) == Fraction(3, 64)
    assert evaluate(constant(octagon), tmp_path, n="8")["score"] == 3 / 64
    assert load_problem(PROBLEM).module.REFERENCES[8]["best_known"] > 3 / 64


def test_an_optimised_eleven_point_construction(tmp_path: Path) -> None:
    value = evaluate(constant(ELEVEN_POINTS), tmp_path)["score"]
    assert value == float(brute_min_area(ELEVEN_POINTS))
    assert value == pytest.approx(0.035276008239257486, abs=1e-12)
    assert SEED_SCORE < value < load_problem(PROBLEM).module.REFERENCES[11]["best_known"]


def test_score_matches_an_independent_exact_computation_on_random_points() -> None:
    problem = load_problem(PROBLEM)
    rng = np.random.default_rng(0)
    for _ in range(5):
        pts = rng.uniform(0, 1, (11, 2))
        assert problem.score_output({"n": 11}, pts) == float(brute_min_area(pts))


def test_degenerate_points_score_zero_and_are_not_rejected() -> None:
    problem = load_problem(PROBLEM, {"n": "4"})
    case = {"n": 4}
    assert problem.score_output(case, [[0, 0], [0.5, 0.5], [1, 1], [1, 0]]) == 0.0  # three on the diagonal
    assert problem.score_output(case, [[0, 0], [0, 0], [1, 1], [1, 0]]) == 0.0  # two points coincide
    assert problem.score_output(case, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.int64)) == 0.5


def test_score_rejects_points_outside_the_square_and_malformed_output() -> None:
    problem = load_problem(PROBLEM, {"n": "4"})
    case = {"n": 4}
    square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    assert problem.score_output(case, square) == 0.5  # the boundary itself is allowed
    just_above_one = np.nextafter(1.0, 2.0)
    rejects(problem, case, [[0, 0], [just_above_one, 0], [1, 1], [0, 1]], "outside the unit square")
    rejects(problem, case, [[0, 0], [1, 0], [1, 1], [-1e-300, 1]], "outside the unit square")
    rejects(problem, case, [[0.2, 0.2], [0.8, 0.3], [0.5, 1.5], [0.3, 0.7]], "outside the unit square")
    rejects(problem, case, square[:3], "expected an \\(4, 2\\) array")
    rejects(problem, case, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], "expected an \\(4, 2\\) array")
    rejects(problem, case, np.array(square).ravel(), "expected an \\(4, 2\\) array")
    rejects(problem, case, [["0", "0"], ["1", "0"], ["1", "1"], ["0", "1"]], "array of numbers")
    rejects(problem, case, [[0, 0], [1, 0], [1, 1], [float("nan"), 1]], "finite")
    rejects(problem, case, [[0, 0], [1, 0], [1, 1], [0, float("inf")]], "finite")
    rejects(problem, case, None, "expected an")


def test_a_candidate_outside_the_square_is_invalid_in_the_sandbox(tmp_path: Path) -> None:
    path = tmp_path / "candidate.py"
    path.write_text("def points(n):\n    return np.linspace(0, 2, 2 * n).reshape(n, 2)\n")
    report = evaluate_file(str(PROBLEM), str(path), {})
    assert report["status"] == "invalid" and "outside the unit square" in report["error"]
