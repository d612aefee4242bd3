"""A new user's problem file, written from the README alone, and the mistakes a new user makes with one.

Each mistake must end in one message that names the file, the line and the fix, at load time where it can be
seen there, never as a traceback of evoforge's own code or a NameError from inside the sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from evoforge.engine.program.candidates import read_candidate
from evoforge.engine.run.progress import status_line
from evoforge.engine.run.stats import RunStats
from evoforge.evaluators import ProblemError, SandboxPool
from evoforge.evaluators.loader import load_problem
from evoforge.problems import problem_path

REPO = Path(__file__).resolve().parent.parent

# A greedy graph colouring written as the README's "Writing a problem file" says: docstring, PARAMS, SETTINGS
# with a bound, one @evolve function called through batch, solve/score/inputs/held_out_inputs.
PROBLEM = '''"""Greedy graph colouring: priority(degree, saturation, n) picks the next vertex to colour.

The evolved code may use math.
"""
import math
import random

from evoforge import Settings, batch, evolve

PARAMS = {"n": 14, "p": 0.4}
SETTINGS = Settings(maximize=False, time_limit_s=10.0, bound=0.0)


@evolve
def priority(degree: int, saturation: int, n: int) -> float:
    return float(degree)


def solve(graph):
    n = graph["n"]
    adj = [set() for _ in range(n)]
    for a, b in graph["edges"]:
        adj[a].add(b)
        adj[b].add(a)
    colour = [-1] * n
    for _ in range(n):
        todo = [v for v in range(n) if colour[v] < 0]
        args = [(len(adj[v]), len({colour[u] for u in adj[v]} - {-1}), n) for v in todo]
        scores = batch(priority, args)
        best = todo[max(range(len(todo)), key=lambda i: scores[i])]
        used = {colour[u] for u in adj[best]}
        colour[best] = min(c for c in range(n) if c not in used)
    return colour


def score(graph, output):
    for a, b in graph["edges"]:
        if output[a] == output[b]:
            raise ValueError(f"edge {a}-{b} has both ends coloured {output[a]}")
    return float(len(set(output)))


def _graph(n, p, seed):
    rng = random.Random(seed)
    return {"n": n, "edges": [[a, b] for a in range(n) for b in range(a + 1, n) if rng.random() < p]}


def inputs(params):
    return {f"g{i}": _graph(params["n"], params["p"], i) for i in range(3)}


def held_out_inputs(params):
    return {"h0": _graph(2 * params["n"], params["p"], 100)}
'''


def _write(folder: Path, text: str = PROBLEM, name: str = "colouring.py") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _variant(folder: Path, old: str, new: str, name: str = "colouring.py") -> Path:
    assert old in PROBLEM
    return _write(folder, PROBLEM.replace(old, new, 1), name)


def _cli(*args: str, cwd: Path | str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "evoforge", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_problem_file_written_the_readme_way_loads_runs_and_reports(tmp_path):
    problem = _write(tmp_path)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    seed = json.loads(_cli("eval", str(problem), "--json", cwd=tmp_path).stdout)
    assert seed["status"] == "ok" and seed["held_out_status"] == "ok" and not seed["warnings"]
    done = _cli("run", str(problem), "--budget", "6", "--db", db, "--name", "fresh", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = json.loads(_cli("runs", "--db", db, "--json", cwd=tmp_path).stdout)
    assert [(r["name"], r["status"], r["candidates"]) for r in runs] == [("fresh", "finished", 7)]
    assert runs[0]["best_score"] <= seed["score"]
    exported = _cli("export", "fresh", "--db", db, "-o", str(tmp_path / "out" / "best.py"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    scored = subprocess.run([sys.executable, "best.py"], cwd=tmp_path / "out", capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert f"training score {runs[0]['best_score']:g}" in scored.stdout, scored.stderr


@pytest.mark.parametrize("cwd", [tempfile.gettempdir(), "/"])
def test_eval_works_from_the_temp_folder_and_the_filesystem_root(tmp_path, cwd):
    """The sandbox replaces /tmp (and hides /root, /home): run from / or /tmp itself, it must still show the
    problem's folder and Python below them, not take the working folder as standing for them."""
    problem = _write(tmp_path)
    assert Path(cwd) in problem.parents
    done = _cli("eval", str(problem), "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok"


def test_a_score_that_is_an_array_is_invalid_with_the_reason(tmp_path):
    problem = load_problem(_variant(tmp_path, "    return float(len(set(output)))",
                                    "    return [len(set(output)), 0]\n"
                                    "\n\ndef aggregate(scores, inputs):\n    return sum(scores)"))
    problem_arr = load_problem(_variant(tmp_path, "    return float(len(set(output)))",
                                        "    import numpy\n    return numpy.array([len(set(output)), 0])",
                                        "array_score.py"))
    for each in (problem, problem_arr):
        with SandboxPool(each, workers=1) as pool:
            evaluation = pool.evaluate(each.seed_code)
        assert evaluation.status == "invalid"
        assert "score() returned" in evaluation.error and "not a number" in evaluation.error
    assert "ndarray of shape (2,)" in evaluation.error


def test_inputs_that_are_not_plain_data_are_refused_at_load(tmp_path):
    path = _variant(tmp_path, "def _graph(n, p, seed):",
                    "class Graph(dict):\n    pass\n\n\nclass Edges:\n    pass\n\n\ndef _graph(n, p, seed):")
    path.write_text(path.read_text().replace('return {"n": n, "edges": [[a, b]',
                                             'return {"n": n, "e": Edges(), "edges": [[a, b]'))
    with pytest.raises(ProblemError) as caught:
        load_problem(path)
    message = str(caught.value)
    line = PROBLEM.splitlines().index("def inputs(params):") + 1 + 8  # the two classes above it
    assert f"{path}:{line}: inputs(params) returned input 'g0'" in message
    assert "Edges" in message and "solve()" not in message and "fix:" in message


def test_evolved_code_that_uses_a_name_it_will_not_see_is_refused_at_load(tmp_path):
    helper = "def tie_break(degree, n):\n    return degree / (n + 1)\n\n\n@evolve"
    uses = ("    return float(degree)", "    return float(degree) + tie_break(degree, n)")
    path = _variant(tmp_path, "@evolve", helper)
    path.write_text(path.read_text().replace(*uses))
    with pytest.raises(ProblemError, match=r"priority uses 'tie_break', which the evolved code does not see"
                                           r"(.|\n)*EXPOSE = \['tie_break'\]"):
        load_problem(path)
    path.write_text(path.read_text().replace("PARAMS = {", 'EXPOSE = ["tie_break"]\nPARAMS = {'))
    assert load_problem(path, with_inputs=False).exposed_helpers.keys() == {"tie_break"}

    imported = _variant(tmp_path, "import math\n", "import math\nfrom math import sqrt\n")
    imported.write_text(imported.read_text().replace("    return float(degree)", "    return sqrt(degree)"))
    with pytest.raises(ProblemError, match=r"'sqrt', an imported function(.|\n)*`math.sqrt`"):
        load_problem(imported)

    misspelt = _variant(tmp_path, "    return float(degree)", "    return float(degre)")
    with pytest.raises(ProblemError, match=r"uses 'degre', which the file does not define(.|\n)*'degree'"):
        load_problem(misspelt)


def test_solve_calling_the_evolved_function_by_another_name_is_refused_at_load(tmp_path):
    path = _variant(tmp_path, "def priority(", "def priorty(")
    line = PROBLEM.splitlines().index("def solve(graph):") + 1
    with pytest.raises(ProblemError, match=rf":{line}: solve uses 'priority', which the file does not define\n"
                                           r"  fix: call the @evolve function by its name, 'priorty'"):
        load_problem(path)
    missing_import = load_problem(_variant(tmp_path, "import random\n", ""), with_inputs=False)
    assert any("_graph" in w and "'random'" in w for w in missing_import.warnings)


def test_misspelt_names_are_named_with_the_name_meant(tmp_path):
    with pytest.raises(ProblemError, match=r"name 'evolved' is not defined; did you mean evoforge's 'evolve'"):
        load_problem(_variant(tmp_path, "@evolve", "@evolved"))
    problem = load_problem(_write(tmp_path), with_inputs=False)
    candidate = tmp_path / "mine.py"
    candidate.write_text("def prioritty(degree, saturation, n):\n    return saturation\n")
    with pytest.raises(ProblemError, match=r"is 'prioritty' meant to be 'priority'\?"):
        read_candidate(candidate, problem)


def test_eval_says_in_one_line_why_the_sandbox_cannot_start(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), EVOFORGE_SANDBOX="no-such-level")
    done = subprocess.run([sys.executable, "-m", "evoforge", "eval", str(_write(tmp_path))], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("evoforge: the sandbox could not evaluate it: sandbox level 'no-such-level'")


def test_the_progress_line_shows_no_valid_rate_before_anything_is_evaluated():
    """Twenty duplicates in a row (a seed whose mutants all behave alike) are not twenty failures."""
    stats = RunStats(budget=30, attempts=20, done=20, duplicates=20, best_score=3.75)
    assert "| valid - |" in status_line(stats)
    stats.evaluated, stats.valid = 4, 3
    assert "| valid 75% |" in status_line(stats)


MODULE = '''import math

# EVOLVE-BLOCK-START settings
TOLERANCE = 1e-6
# EVOLVE-BLOCK-END


def integrate_counted(rate, b):
    counter = [0]

    def f(x):
        counter[0] += 1
        return math.exp(rate * x)

    return {"value": adapt(f, 0.0, b, TOLERANCE), "evaluations": counter[0]}


def adapt(f, a, b, tol):
    m = (a + b) / 2
    whole = (b - a) * (f(a) + 4 * f(m) + f(b)) / 6
    left = (m - a) * (f(a) + 4 * f((a + m) / 2) + f(m)) / 6
    right = (b - m) * (f(m) + 4 * f((m + b) / 2) + f(b)) / 6
    # EVOLVE-BLOCK-START accept
    if abs(left + right - whole) <= 15 * tol:
        return left + right
    # EVOLVE-BLOCK-END
    return adapt(f, a, m, tol / 2) + adapt(f, m, b, tol / 2)
'''

BLOCKS_PROBLEM = '''"""Adaptive Simpson: as few evaluations of exp(rate x) on [0, b] as the error allows."""
import math

from evoforge import Project, Scored, Settings

PROJECT = Project("quad_project", calls=["quad.integrate_counted"])
SETTINGS = Settings(maximize=False, primary_metric="evaluations", constraints={"error": 1e-6})


def solve(case):
    return PROJECT.call("quad.integrate_counted", case["rate"], case["b"])


def score(case, output):
    exact = (math.exp(case["rate"] * case["b"]) - 1) / case["rate"]
    error = abs(output["value"] - exact) / abs(exact)
    return Scored({"evaluations": float(output["evaluations"]), "error": error}, feedback=f"error {error:.1e}")


def inputs(params):
    return [{"rate": 1.5, "b": 2.0}, {"rate": -2.0, "b": 3.0}]
'''


def _blocks_problem(folder: Path, module: str = MODULE, problem: str = BLOCKS_PROBLEM) -> Path:
    (folder / "quad_project").mkdir(exist_ok=True)
    (folder / "quad_project" / "quad.py").write_text(module)
    return _write(folder, problem, "quadrature.py")


def test_a_block_problem_written_the_readme_way_evaluates(tmp_path):
    problem = load_problem(_blocks_problem(tmp_path))
    assert [b.id for b in problem.project.blocks] == ["quad.py:settings", "quad.py:accept"]
    with SandboxPool(problem, workers=1) as pool:
        evaluation = pool.evaluate(problem.seed_code)
    assert evaluation.status == "ok", evaluation.error
    assert evaluation.metrics["error"] <= 1e-6 and evaluation.score > 5


def test_block_mistakes_name_the_line_and_what_was_meant(tmp_path):
    typo = MODULE.replace("    # EVOLVE-BLOCK-START accept", "    # EVOLVE_BLOCK_START accept")
    line = typo.splitlines().index("    # EVOLVE_BLOCK_START accept") + 1
    with pytest.raises(ProblemError, match=rf"quad.py:{line}: '# EVOLVE_BLOCK_START accept' looks like a misspelt "
                                           r"marker\n  fix: write `# EVOLVE-BLOCK-START \[name\]`"):
        load_problem(_blocks_problem(tmp_path, typo))
    wrong_call = BLOCKS_PROBLEM.replace('calls=["quad.integrate_counted"]', 'calls=["quad.integrate"]')
    with pytest.raises(ProblemError, match=r"'quad.integrate', which is not a top-level def(.|\n)*quad defines "
                                           r"integrate_counted, adapt$"):
        load_problem(_blocks_problem(tmp_path, MODULE, wrong_call))


def test_a_problem_named_without_its_py_in_the_working_folder_is_pointed_at(tmp_path, monkeypatch):
    _write(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProblemError, match=r"fix: add the .py \(colouring.py is a file here\)"):
        problem_path("colouring")
    assert problem_path("colouring.py") == Path("colouring.py")


def test_the_readme_problem_template_evaluates_as_it_stands(tmp_path):
    """The block under "Writing a problem file" is what a new user copies first: it must load and score."""
    readme = (REPO / "README.md").read_text()
    start = readme.index("```python\n", readme.index("## Writing a problem file")) + len("```python\n")
    problem = load_problem(_write(tmp_path, readme[start:readme.index("```", start)], "template.py"))
    assert not problem.warnings and problem.cascade
    with SandboxPool(problem, workers=1) as pool:
        evaluation = pool.evaluate(problem.seed_code)
        held_out = pool.evaluate(problem.seed_code, held_out=True)
    assert evaluation.status == "ok" and held_out.status == "ok"
    assert evaluation.scores == {"small": sum(range(100)), "large": sum(range(1000))}


def test_batch_given_single_arguments_says_what_it_takes(tmp_path):
    problem = load_problem(_variant(tmp_path, "        scores = batch(priority, args)",
                                    "        scores = batch(priority, [a[0] for a in args])"))
    with SandboxPool(problem, workers=1) as pool:
        evaluation = pool.evaluate(problem.seed_code)
    assert evaluation.status == "error"
    assert "each call is a tuple of fn's arguments (for one argument: batch(fn, [(x,) for x in xs]))" in (
        evaluation.error)
