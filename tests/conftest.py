"""Shared fixtures: paths to the bundled problems and to the shared benchmark data beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_server import openai_server  # noqa: F401 - the fixture, for every test module

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def bin_packing_data() -> Path:
    folder = SHARED_DATA / "bin_packing"
    if not folder.is_dir():
        pytest.skip(f"shared bin packing data not found at {folder}")
    return folder
