"""The README's main command, `make search`, as a user runs it: the Makefile target searches with the offline
proposer on SQLite and finishes. A short budget keeps it cheap; the target's problem, flags and defaults are the
ones the README promises, so a renamed flag or problem breaks this test and not the user's first command."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What would make the target use a model instead of the offline proposer.
MODEL_VARIABLES = ("EVOFORGE_MODEL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "EVOFORGE_DB")


def _set_up() -> bool:
    """Whether `make setup` has nothing left to do: then `make search` runs no installer (no network needed)."""
    if shutil.which("make") is None:
        return False
    return subprocess.run(["make", "-q", "setup"], cwd=REPO, capture_output=True).returncode == 0


@pytest.mark.skipif(not _set_up(), reason="the repository's .venv is not set up (`make setup`); `make test` sets it "
                    "up before running the tests")
def test_make_search_runs_a_real_offline_search(tmp_path: Path) -> None:
    db = tmp_path / "main.db"
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    env["EVOFORGE_DB"] = f"sqlite:///{db}"
    done = subprocess.run(["make", "-s", "search", "BUDGET=4"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with sqlite3.connect(db) as connection:
        runs = connection.execute("SELECT status, config FROM runs").fetchall()
        programs = connection.execute("SELECT count(*) FROM programs").fetchone()[0]
    assert [status for status, _ in runs] == ["finished"], runs
    config = runs[0][1]
    assert '"dataset": "or3"' in config and '"models": []' in config, config  # OR3, and the offline proposer
    assert programs == 5, programs  # the seed and the four candidates of BUDGET=4
