"""Mistakes fresh users made writing problem files and candidates from the README: each gets one clear message at
the place it happens (the real CLI in a subprocess, real sandboxes), never a NameError or a numba traceback later."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBLEM = '''"""Add one."""
import numpy as np

from evoforge import evolve


@evolve
def f(x):
    return x + 1


def solve(x):
    return f(x)


def score(x, out):
    return float(out)


def inputs(params):
    return [1, 2]
'''


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evoforge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text)
    return name


def test_a_candidate_importing_a_module_the_sandbox_refuses_is_refused_naming_it(tmp_path: Path) -> None:
    problem = _write(tmp_path, "add.py", PROBLEM)
    scipy = _write(tmp_path, "scipy_cand.py", "import scipy.special\n\ndef f(x):\n"
                                              "    return float(scipy.special.gamma(x))\n")
    out = _cli("eval", problem, scipy, cwd=tmp_path)
    assert out.returncode == 2 and "NameError" not in out.stdout + out.stderr
    assert ("scipy_cand.py:1: `import scipy.special`: the evolved code may not use the module scipy.special"
            in out.stderr)
    assert "fix: use only numpy, math, " in out.stderr
    alias = _write(tmp_path, "alias_cand.py", "import numpy as numpy_\n\ndef f(x):\n    return float(numpy_.sqrt(x))\n")
    out = _cli("eval", problem, alias, cwd=tmp_path)
    assert out.returncode == 2
    assert "`import numpy as numpy_` binds numpy_, which the evolved code would not see" in out.stderr
    assert "the problem file gives it np (numpy)" in out.stderr and "import inside the function" in out.stderr
    same = _write(tmp_path, "same_cand.py", "import numpy as np\n\ndef f(x):\n    return float(np.sqrt(x))\n")
    out = _cli("eval", problem, same, "--json", cwd=tmp_path)  # the problem's own import: fine
    assert out.returncode == 0, out.stderr


def test_an_evolved_function_solve_never_calls_is_refused_when_the_problem_loads(tmp_path: Path) -> None:
    from evoforge.evaluators import ProblemError, load_problem

    nocall = _write(tmp_path, "nocall.py", PROBLEM.replace("    return f(x)\n", "    return x * 2\n"))
    out = _cli("eval", nocall, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert (f"{tmp_path / nocall}:8: solve never calls the @evolve function f, directly or through the functions it "
            "calls, so the score would not depend on it\n  fix: call it from solve") in out.stderr
    second = PROBLEM.replace("@evolve\ndef f(x):\n    return x + 1\n",
                             "@evolve\ndef f(x):\n    return x + 1\n\n\n@evolve\ndef g(x):\n    return x\n")
    with_g = tmp_path / "with_g.py"
    with_g.write_text(second)
    try:
        load_problem(with_g)
        raise AssertionError("g is never called, yet the problem loaded")
    except ProblemError as exc:
        assert "solve never calls the @evolve function g," in str(exc)
    reached = {  # solve reaches the evolved functions indirectly: all accepted
        "a helper": PROBLEM.replace("    return f(x)\n", "    return _twice(x)\n\n\ndef _twice(x):\n"
                                                         "    return 2 * f(x)\n"),
        "another evolved function": second.replace("    return x + 1\n", "    return g(x) + 1\n"),
        "a table of functions": PROBLEM.replace("    return f(x)\n", "    return STEPS[0](x)\n\n\nSTEPS = [f]\n"),
        "a compiled harness": (REPO / "tests" / "fixtures" / "toy_numba_problem.py").read_text(),
    }
    for why, text in reached.items():
        path = tmp_path / f"reached_{len(why)}.py"
        path.write_text(text)
        assert load_problem(path).evolved_names, why


HARNESS = '''"""Sum weights."""
import numpy as np

from evoforge import Settings, compiled_harness, evolve

SETTINGS = Settings(maximize=True, time_limit_s=60.0, memory_limit_mb=2048, numba=True)


@evolve
def weight(x: float) -> float:
    return x * 2.0


@compiled_harness("(weight, float64[::1])", weight="float64(float64)")
def total(weight, xs):
    s = 0.0
    for i in range(len(xs)):
        s += weight(xs[i])
    return s


def solve(n):
    return float(total(weight, np.arange(n, dtype=np.float64)))


def score(n, out):
    return float(out)


def inputs(params):
    return [5]
'''


def _eval_json(tmp_path: Path, *args: str) -> dict:
    import json

    out = _cli("eval", *args, "--json", cwd=tmp_path)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def test_numba_mistakes_are_said_in_the_problem_files_terms(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.py", HARNESS)
    assert _eval_json(tmp_path, good)["score"] == 20.0
    # a declared signature with another number of arguments than the seed has: said when the file loads, by name
    # (numba said only "mismatch of arguments number: 1 vs 2", when the sandbox started)
    two = 'weight="float64(float64, int64)"'
    short = _write(tmp_path, "short.py", HARNESS.replace('weight="float64(float64)"', two))
    out = _cli("eval", short, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert (f"{short}:14: the compiled harness total declares weight='float64(float64, int64)', which takes 2 "
            "argument(s), but weight(x) takes 1") in out.stderr, out.stderr
    # the evolved function misspelt in the argument types, or a type left out: numba said "name 'wieght' is not
    # defined" when the sandbox started, with no file or line
    for typo, said in (('"(wieght, float64[::1])"', "declares 'wieght' for its parameter weight, which takes the "
                        "evolved function weight\n  fix: name the evolved function there: '(weight, float64[::1])'"),
                       ('"(float64[::1])"', "declares 1 argument type(s), '(float64[::1])', but total(weight, xs) "
                        "takes 2\n  fix: give one type per parameter, in order, the evolved function(s) by name: "
                        "e.g. '(weight, <type of xs>)'")):
        misspelt = _write(tmp_path, "misspelt.py", HARNESS.replace('"(weight, float64[::1])"', typo))
        out = _cli("eval", misspelt, cwd=tmp_path)
        assert out.returncode == 2 and f"{tmp_path / misspelt}:14: the compiled harness total {said}" in out.stderr, \
            out.stderr
    wrong_type = _write(tmp_path, "wrong_type.py", HARNESS.replace("np.arange(n, dtype=np.float64)", "np.arange(n)"))
    report = _eval_json(tmp_path, wrong_type)
    assert report["status"] == "error" and "No matching definition" not in report["error"]
    assert ("HarnessCallError: solve called the compiled harness total(weight, xs: array(int64, 1d, C)), but it is "
            "declared as total(weight, xs: float64[::1]); convert the arguments in solve") in report["error"]
    arity = _write(tmp_path, "arity.py", HARNESS.replace("total(weight, np.arange(n, dtype=np.float64))",
                                                         "total(weight)"))
    report = _eval_json(tmp_path, arity)
    assert ("solve called the compiled harness total with 1 argument(s); it takes 2: total(weight, xs: float64[::1])"
            in report["error"])
    none = _write(tmp_path, "none_cand.py", "def weight(x: float) -> float:\n    if x > 100.0:\n        return x\n")
    report = _eval_json(tmp_path, good, none)
    assert ("weight returns None on some path (a branch that ends without `return`?), but the compiled harness "
            "declares it as float64(float64): return a float64 on every path") in report["stdout"]
    assert "No conversion from none" not in report["stdout"]


def test_a_seed_scoring_past_the_declared_bound_is_warned_about(tmp_path: Path) -> None:
    bounded = (REPO / "tests" / "fixtures" / "bounded_problem.py").read_text()
    assert "bound=100.0" in bounded
    past = _write(tmp_path, "past.py", bounded.replace("    return x * 2\n", "    return x * 200\n"))
    report = _eval_json(tmp_path, past)
    assert report["status"] == "ok" and report["score"] >= 100
    warned = [w for w in report["warnings"] if "the seed scores" in w]
    assert warned and (f"{tmp_path / past}: the seed scores 300, at or above Settings(bound=100), the best an "
                       "honest program can reach") in warned[0]
    run = _cli("run", past, "--name", "past", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--budget", "1", "--quiet",
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "the seed scores 300, at or above Settings(bound=100)" in run.stderr
    honest = _write(tmp_path, "honest.py", bounded)
    assert not [w for w in _eval_json(tmp_path, honest)["warnings"] if "the seed scores" in w]


def test_a_misspelt_settings_keyword_names_the_setting_meant(tmp_path: Path) -> None:
    typo = _write(tmp_path, "typo.py", PROBLEM.replace("from evoforge import evolve",
                                                        "from evoforge import Settings, evolve\n\n"
                                                        "SETTINGS = Settings(maximise=False)"))
    done = _cli("eval", typo, cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"{tmp_path / typo}:6: importing the problem file raised TypeError: Settings(maximise=...): no such " \
           "setting; did you mean 'maximize'?" in done.stderr, done.stderr


def test_resume_given_a_run_setting_says_the_run_keeps_its_own(tmp_path: Path) -> None:
    """`resume --seed 3` was answered 'did you mean --db?'; it must say that resume keeps the stored settings."""
    seed = _cli("resume", "any", "--seed", "3", cwd=tmp_path)
    assert seed.returncode == 2 and "did you mean" not in seed.stderr
    assert "unrecognized arguments: --seed 3; resume continues with the settings stored with the run" in seed.stderr
    typo = _cli("resume", "any", "--budgte", "40", cwd=tmp_path)
    assert typo.returncode == 2 and "did you mean --budget?" in typo.stderr


SLOW = PROBLEM.replace("from evoforge import evolve",
                       "import time\n\nfrom evoforge import evolve\n\nPARAMS = {'pause': 5.0}")
SLOW = SLOW.replace("def solve(x):\n", "def solve(x):\n    time.sleep(x[1])\n").replace("return f(x)", "return f(x[0])")
SLOW = SLOW.replace("    return [1, 2]\n", "    return [[1, params['pause']]]\n")


def test_a_seed_over_its_time_limit_names_the_limit_and_the_eval_with_the_runs_set_values(tmp_path: Path) -> None:
    """The fix said only `evoforge eval PROBLEM`, which without the run's --set values shows another seed."""
    slow = _write(tmp_path, "slow.py", SLOW)
    done = _cli("run", slow, "--db", f"sqlite:///{tmp_path / 'r.db'}", "--budget", "1", "--quiet",
                "--set", "time_limit_s=0.2", "--set", "pause=1.5", cwd=tmp_path)
    assert done.returncode != 0 and "the seed program's evaluation is 'timeout'" in done.stderr, done.stderr
    assert ("fix: make the seed's solve() lighter, or raise the limit (Settings(time_limit_s=...) in the problem "
            f"file, or --set time_limit_s=...); try `evoforge eval {tmp_path / slow} --set time_limit_s=0.2 "
            "--set pause=1.5` to see the details") in done.stderr, done.stderr


def test_a_run_whose_problem_file_was_deleted_or_edited_is_resumed_from_the_text_it_stored(tmp_path: Path) -> None:
    """A deleted file was answered 'fix: pass the path of a .py problem file, e.g. problems/bin_packing.py', and an
    edited one 'restore the file (its original text is stored with the run)' with no way to get that text."""
    problem = _write(tmp_path, "add.py", PROBLEM)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert _cli("run", problem, "--name", "r", "--db", db, "--budget", "2", "--quiet", cwd=tmp_path).returncode == 0
    restore = f"`evoforge export r --original -o {tmp_path / problem} --db {db}"
    (tmp_path / problem).unlink()
    gone = _cli("resume", "r", "--db", db, "--budget", "4", cwd=tmp_path)
    assert gone.returncode == 2 and "e.g. problems/bin_packing.py" not in gone.stderr
    assert f"{tmp_path / problem}: the problem file of run 'r' is gone\n  fix: write it back as the run stored it, " \
           f"{restore}`, then resume" in gone.stderr, gone.stderr
    (tmp_path / problem).write_text(PROBLEM.replace("return [1, 2]", "return [1, 2, 3]"))
    mine = _write(tmp_path, "mine.py", "def f(x):\n    return x + 2\n")
    for edited in (_cli("resume", "r", "--db", db, "--budget", "4", cwd=tmp_path),
                   _cli("add", "r", mine, "--db", db, cwd=tmp_path)):
        assert edited.returncode == 2 and "changed since run 'r' started" in edited.stderr
        assert f"{restore} --force`" in edited.stderr, edited.stderr  # it replaces the edited file
    kept = _cli("export", "r", "--original", "-o", str(tmp_path / problem), "--db", db, cwd=tmp_path)
    assert kept.returncode == 2 and "--force to replace it" in kept.stderr  # export never overwrites unasked
    back = _cli("export", "r", "--original", "-o", str(tmp_path / problem), "--db", db, "--force", cwd=tmp_path)
    assert back.returncode == 0 and "`evoforge resume r` reads it there" in back.stdout, back.stderr
    assert (tmp_path / problem).read_text() == PROBLEM
    resumed = _cli("resume", "r", "--db", db, "--budget", "4", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
