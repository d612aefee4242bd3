"""What the tests of searches with a stand-in model share: a small bin packing to search, the mutation server of
benchmarks/ as the model (benchmarks/ is not a package, so its folder joins the import path here), and a key that
litellm accepts (the local server takes any)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN_PACKING = str(REPO / "problems" / "bin_packing.py")
SMALL = {"num_items": "200", "num_instances": "2", "held_out_instances": "1"}
sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.fixture
def openai_test_key() -> Iterator[None]:
    """OPENAI_API_KEY set for the test: litellm asks for a key before it calls even a local server."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-test-key")
        yield
