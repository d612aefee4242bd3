"""--llm-client: the same searches through litellm and through the direct client (auto's choice for an
OpenAI-compatible server), which must not differ.

Real components throughout: the OpenAI-compatible HTTP server of tests/openai_server.py answering with real
mutations (benchmarks/mutation_server.py), SQLite files, the sandbox. The clients' call-level contract (answers,
faults, retries, costs) is tests/test_llm.py's, run with both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from model_searches import BIN_PACKING, REPO, SMALL  # puts benchmarks/ on the import path
from mutation_server import MutationResponder
from openai_server import Fault, OpenAIServer, RecordedRequest

from evoforge.db import Store
from evoforge.engine.analysis.views import show
from evoforge.engine.run.config import ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import run_search
from evoforge.islands import IslandConfig

pytestmark = pytest.mark.usefixtures("openai_test_key")


class FaultyMutations:
    """Mutations, except that the listed answers (counted over every choice asked) are faults: with one candidate in
    flight the same answers fail in every run, whichever client asks."""

    def __init__(self, seed: int, faults: dict[int, Fault]) -> None:
        self._mutations = MutationResponder(seed)
        self._faults = faults
        self._count = 0

    def __call__(self, body: dict[str, Any]) -> str | Fault:
        self._count += 1
        fault = self._faults.get(self._count)
        return fault if fault is not None else self._mutations(body)


def search(db: str, name: str, client: str, server: OpenAIServer, **options: Any) -> RunConfig:
    entry = ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10, input_cost_per_token=1e-6,
                       output_cost_per_token=4e-6)
    config = RunConfig(offline_share=0.0, problem=BIN_PACKING, name=name, budget=9, seed=3, overrides=dict(SMALL),
                       concurrency=1,
                       islands=IslandConfig(num_islands=2, reset_period=5), answers=2,
                       models=ModelConfig(models=(entry,), backoff_s=0.01, client=client), **options)
    assert run_search(config, db, progress=False).status == "finished"
    return config


def record(db: str, name: str) -> tuple[list[tuple], list[tuple]]:
    """Every proposal (answer, parents by position, island, tokens, cost, attempts, error) and every program."""
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None
        programs = store.get_programs([b.id for b in store.program_briefs(run.id)])
        position = {p.id: i for i, p in enumerate(programs)}
        proposals = [(p.response, [position[i] for i in p.parent_ids], p.island, p.details.get("answer"),
                      p.prompt_tokens, p.completion_tokens, round(p.cost, 12), p.attempts, p.error)
                     for p in store.proposals(run.id)]
    return proposals, [(p.code_hash, p.status, p.score, [position[i] for i in p.parent_ids]) for p in programs]


def sent(requests: list[RecordedRequest]) -> list[tuple]:
    """What the server was asked, without what differs by client (headers, ids)."""
    return [(r.body["model"], r.body["messages"], r.body["temperature"], r.body["max_tokens"], r.body.get("n"))
            for r in requests]


def test_both_clients_give_the_same_candidates_for_the_same_seed(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    faults = {5: Fault.http(500), 6: Fault.garbage(), 11: Fault.reset()}  # the 3rd call's first two tries, the 5th's
    # first: answers 1-4 are the first two calls' (2 each), 7-8 the 3rd call's third try, 9-10 the 4th call's
    asked = {}
    for client in ("litellm", "direct"):
        with OpenAIServer(FaultyMutations(7, faults)) as server:
            search(db, client, client, server)
            asked[client] = sent(server.completion_requests)
    proposals, programs = record(db, "litellm")
    assert (proposals, programs) == record(db, "direct")
    assert asked["litellm"] == asked["direct"]
    assert [n for *_, n in asked["direct"]] == [2, 2, 2, 2, 2, 2, None, None]  # the last call asks for one
    assert [p[7] for p in proposals if p[3] in (0, None)] == [1, 1, 3, 1, 2]  # attempts per call
    assert len(proposals) == 9 and all(p[8] is None for p in proposals)
    assert sum(p[6] for p in proposals) > 0 and len({p[0] for p in proposals}) > 5


def test_the_cli_flag_and_the_api_build_the_same_direct_run_and_show_names_the_client(tmp_path: Path) -> None:
    import evoforge
    from evoforge.engine.cli.main import main

    db = f"sqlite:///{tmp_path / 'r.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    with OpenAIServer(MutationResponder(0)) as server:
        assert main(["run", "bin_packing", "--budget", "3", "--model", "openai/cheap", "--api-base", server.base_url,
                     "--llm-client", "direct", "--db", db, "--name", "cli", "--quiet", *sets]) == 0
        api = evoforge.run("bin_packing", budget=3, model="openai/cheap", api_base=server.base_url,
                           llm_client="direct", db=db, name="api", overrides=SMALL)
        default = evoforge.run("bin_packing", budget=1, model="openai/cheap", api_base=server.base_url, db=db,
                               name="default", overrides=SMALL)
        through = evoforge.run("bin_packing", budget=1, model="openai/cheap", api_base=server.base_url, db=db,
                               name="litellm", overrides=SMALL, llm_client="litellm")
    cli = evoforge.load_run("cli", db=db)
    # auto, the default, calls an OpenAI-compatible server directly and stores that it did
    assert (cli.config.models.client, default.config.models.client, through.config.models.client) == (
        "direct", "direct", "litellm")
    assert {**cli.config.to_dict(), "name": "api"} == api.config.to_dict()
    with Store(db) as store:
        assert json.loads(show(store, "cli", as_json=True))["config"]["run"]["models"]["client"] == "direct"
        assert 'models.client="direct"' in show(store, "cli", as_json=False)


def test_a_direct_run_with_a_model_it_cannot_call_is_refused_before_it_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evoforge.engine.cli.main import main

    db = f"sqlite:///{tmp_path / 'r.db'}"
    for model in (["--model", "gpt-4o-mini"], ["--model", "openai/local"], []):  # a provider, no server, none
        capsys.readouterr()
        assert main(["run", "bin_packing", "--budget", "3", *model, "--llm-client", "direct", "--db", db,
                     "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "(--llm-client) direct" in err and ("--llm-client litellm" in err or "no model is given" in err)
    assert not (tmp_path / "r.db").exists()  # refused before any run was made


def test_a_run_against_an_openai_compatible_server_never_imports_litellm_by_default(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.path[:0] = ['tests', 'benchmarks']\n"
        "from mutation_server import MutationResponder\n"
        "from openai_server import OpenAIServer\n"
        "import evoforge\n"
        "with OpenAIServer(MutationResponder(0)) as server:\n"
        f"    run = evoforge.run('bin_packing', budget=4, model='openai/local-llama', api_base=server.base_url,\n"
        f"                       db='sqlite:///{tmp_path / 'r.db'}', overrides={SMALL!r}, offline_share=0)\n"
        "print(run.result.status, run.result.stats.calls, 'litellm' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["finished", "4", "False"]  # a name litellm cannot price is free, not imported
