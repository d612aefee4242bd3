"""Each island's recent failures are shown in its next prompts, and a resumed run shows the same ones: the prompt
is the request, so a resume that forgot them asked the model something else than the uninterrupted run did.

Real components: the OpenAI-compatible HTTP server of tests/openai_server.py answering with real mutations
(benchmarks/mutation_server.py), SQLite files, the sandbox."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.feedback import FEEDBACK_ITEMS, Feedback
from evoforge.engine.run.search import resume_search, run_search

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from mutation_server import MutationResponder  # noqa: E402  (benchmarks/ is not a package)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


def test_an_island_keeps_its_last_notes_in_order() -> None:
    feedback = Feedback()
    feedback.failed(0, "error", "boom")
    feedback.unapplied(1, "no SEARCH block")
    for score in (1.0, 2.0, 3.0):
        feedback.held(0, score, gaming=score == 2.0)
    assert list(feedback.of(0)) == [
        "a version scored 1, past what an honest program can reach; it waits for a person's review",
        "a version scored 2, but the reviewer judged that it games the score; it waits for a person's review",
        "a version scored 3, past what an honest program can reach; it waits for a person's review",
    ][-FEEDBACK_ITEMS:]
    assert list(feedback.of(1)) == ["an answer could not be applied: no SEARCH block"]
    assert not feedback.of(2)


def test_a_resumed_llm_run_shows_the_failures_the_uninterrupted_run_showed(tmp_path: Path) -> None:
    """min_max_distance's mutants often fail (a float slice index, a bad dtype), so prompts carry failures."""
    db = f"sqlite:///{tmp_path / 'r.db'}"

    def config(name: str, budget: int, server: OpenAIServer) -> RunConfig:
        model = ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10)
        return RunConfig(offline_share=0.0, problem=str(REPO / "problems" / "min_max_distance.py"), name=name,
                         budget=budget, seed=0,
                         concurrency=1, models=ModelConfig(models=(model,), backoff_s=0.05))

    with OpenAIServer(MutationResponder(2)) as whole:
        run_search(config("whole", 30, whole), db, progress=False)
    with OpenAIServer(MutationResponder(2)) as parts:
        run_search(config("parts", 20, parts), db, progress=False)
        assert resume_search("parts", db, budget=30, progress=False).status == "finished"
    with Store(db) as store:
        a, b = (store.proposals(store.get_run(name).id) for name in ("whole", "parts"))  # type: ignore[union-attr]
    assert any("Recent failed attempts" in json.loads(p.prompt)[-1]["content"] for p in a[20:21])  # the premise
    assert [(p.prompt, p.response) for p in a] == [(p.prompt, p.response) for p in b]
