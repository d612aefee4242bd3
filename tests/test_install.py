"""evoforge as a user installs it: the wheel built from this tree, installed alone, used from outside the repository.

The wheel is built without a network (`pip wheel --no-build-isolation`, setuptools from the test extra) from a copy
of the tree, so the repository gets no build/ folder. It is installed with --no-deps into a folder of its own; the
dependencies come from the running environment.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import evoforge

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--set", "num_items=200", "--set", "num_instances=2", "--set", "held_out_instances=1"]
GENERIC = {"engine", "db", "islands", "evaluators", "problems"}


def _pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this tree, built from a copy of it."""
    root = tmp_path_factory.mktemp("build")
    source = root / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs", "*.db"))
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source), cwd=root)
    (found,) = (root / "dist").glob("evoforge-*.whl")
    return found


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed wheel and nothing else, as site-packages would."""
    target = tmp_path_factory.mktemp("site")
    _pip("install", "--no-deps", "--target", str(target), str(wheel), cwd=target)
    return target


def test_the_wheel_holds_one_package_of_real_files_with_its_data_license_and_marker(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        entries = archive.infolist()
        names = {e.filename for e in entries}
        dist_info = f"evoforge-{evoforge.__version__}.dist-info"
        assert {name.split("/")[0] for name in names} == {"evoforge", dist_info}
        assert not [e.filename for e in entries if stat.S_ISLNK(e.external_attr >> 16)]  # files, not links
        for path in ("engine/cli/main.py", "db/store.py", "islands/model.py", "evaluators/sandbox.py",
                     "problems/bin_packing.py", "problems/data/README.md", "problems/merge_sort.py",
                     "problems/sort_project/sorter.py", "problems/sort_project/merging.py",
                     "problems/train_script.py", "problems/train_project/train.py"):
            assert archive.read(f"evoforge/{path}") == (REPO / path).read_bytes(), path
        for data in ("or3", "weibull_5k", "alphaevolve_constructions"):
            assert json.loads(archive.read(f"evoforge/problems/data/{data}.json"))
        assert {"evoforge/py.typed", "evoforge/api.py", "evoforge/__main__.py"} <= names
        assert archive.read(f"{dist_info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        assert f"Version: {evoforge.__version__}" in metadata and "License-Expression: MIT" in metadata
        assert "evoforge = evoforge.engine.cli.main:main" in archive.read(f"{dist_info}/entry_points.txt").decode()
    assert not [n for n in names if n.startswith(("evoforge/tests", "evoforge/benchmarks"))]


def _outside(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Python run from `cwd` (not the repository) with the installed package ahead of the editable one."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("EVOFORGE_DB", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_installed_it_runs_from_any_folder_by_the_bundled_names(site: Path, tmp_path: Path) -> None:
    assert {p.name for p in site.iterdir()} & GENERIC == set()  # one top-level name: evoforge
    done = _outside(site, tmp_path, "-c", "import evoforge; print(evoforge.__version__, evoforge.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [evoforge.__version__, str(site / "evoforge" / "__init__.py")]
    done = _outside(site, tmp_path, "-m", "evoforge", "--help")
    assert done.returncode == 0 and "resume" in done.stdout and "report" in done.stdout

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    done = _outside(site, tmp_path, "-m", "evoforge", "run", "bin_packing", "--budget", "4", "--db", db,
                    "--name", "cli", "--quiet", "--set", "dataset=or3", *SMALL[2:])
    assert done.returncode == 0, done.stderr
    api = ("import evoforge\n"
           f"run = evoforge.run('bin_packing', budget=4, db={db!r}, name='api', overrides={{'num_items': 200}})\n"
           "print(run.best(1)[0].score, run.info.problem_path)\n"
           f"print(evoforge.load_run('cli', db={db!r}).info.problem_path)\n")
    done = _outside(site, tmp_path, "-c", api)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    score, api_problem = first.split()
    assert float(score) > 0 and api_problem == second == str(site / "evoforge" / "problems" / "bin_packing.py")


def test_nothing_in_the_repository_needs_files_beside_it() -> None:
    """A user's clone has no ../shared: docs, code and data must not send anyone there."""
    pointers = ("../shared", '"shared" /', "shared/data", "shared/ARCHITECTURE")
    found = []
    for path in [REPO / "README.md", REPO / "Makefile", REPO / "pyproject.toml", *REPO.glob("docs/*.md"),
                 *(p for folder in ("engine", "db", "islands", "evaluators", "problems", "benchmarks", "tests",
                                    "evoforge") for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".md"))]:
        if path.resolve() == Path(__file__).resolve() or "__pycache__" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{path.relative_to(REPO)}: {p}" for p in pointers if p in text]
    assert not found
