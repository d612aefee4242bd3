"""Shared fixtures: the repository and the benchmark data bundled with the problems (problems/data)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_searches import openai_test_key  # noqa: F401 - the fixture, for every test module
from openai_server import openai_server  # noqa: F401 - the fixture, for every test module
from postgres_db import db_url, postgres_url  # noqa: F401 - the database fixtures, for every test module

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir():
    """Compilations the tests make are kept in a folder of their own, never in the user's cache."""
    with tempfile.TemporaryDirectory(prefix="evoforge-test-cache-") as folder:
        old = os.environ.get("EVOFORGE_CACHE_DIR")
        os.environ["EVOFORGE_CACHE_DIR"] = folder
        try:
            yield Path(folder)
        finally:
            if old is None:
                os.environ.pop("EVOFORGE_CACHE_DIR", None)
            else:
                os.environ["EVOFORGE_CACHE_DIR"] = old


@pytest.fixture(scope="session", autouse=True)
def ray_without_token() -> Iterator[None]:
    """Every Ray the tests start or join is a throwaway one without an auth token. Ray reads RAY_AUTH_MODE once
    per process, so it must be the same for the local instance one module starts and the cluster another joins
    (a driver that first ran with the default mode cannot start actors on a tokenless cluster later)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        yield


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def bin_packing_data() -> Path:
    """The folder of or3.json and weibull_5k.json (installed with evoforge, so never missing)."""
    return REPO / "problems" / "data"


@pytest.fixture(scope="module")
def compiled_bin_packing() -> Iterator[object]:
    """One sandbox worker on a small bin packing whose candidates are compiled (numba=True): what the hostile numba
    tests attack, since a compiled candidate runs in the harness's process beside the inputs."""
    from evoforge.evaluators import SandboxPool, load_problem

    small = {"num_items": "200", "num_instances": "2", "held_out_instances": "1"}
    with SandboxPool(load_problem(REPO / "problems" / "bin_packing.py", small), 1) as pool:
        assert pool.problem.settings.numba is True
        yield pool
