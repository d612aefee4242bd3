"""Search strategies, each by its mechanics: selection weights, offspring penalties, elite exploitation,
behavioural duplicates as parents (also across a resume), inspirations in the prompt, and the benchmark's sources.

Searches here are real: a real HTTP server speaking the OpenAI chat API, real sandboxes, real SQLite.
"""

from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from model_searches import BIN_PACKING, REPO, SMALL
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.program.patching import apply_response
from evoforge.engine.propose.prompts import ParentView, build_messages
from evoforge.engine.run.config import ConfigError, ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.search import resume_search, run_search
from evoforge.islands import IslandConfig, IslandConfigError, IslandModel, softmax

pytestmark = pytest.mark.usefixtures("openai_test_key")


def model(scores: list[float], **config: object) -> IslandModel:
    """One island holding one program per score (ids 1.., distinct signatures), minimising."""
    m = IslandModel(IslandConfig(**{"num_islands": 1, "elite_share": 0.0, **config}), maximize=False)
    for i, s in enumerate(scores, start=1):
        m.register(i, 0, [s], s, 10)
    return m


# ---- parent selection ------------------------------------------------------------------------------------------

def test_power_law_draws_each_cluster_with_weight_rank_to_the_minus_alpha() -> None:
    m = model([3.0, 1.0, 2.0], selection="power_law", power_alpha=2.0, parents_per_prompt=1)
    island = m._islands[0]
    probs = softmax(island.power_law_logits(2.0), 1.0)
    # Minimising: score 1 is rank 1, score 2 rank 2, score 3 rank 3 (clusters in creation order 3, 1, 2).
    expected = np.array([1 / 9, 1.0, 1 / 4]) / (1 / 9 + 1 + 1 / 4)
    assert np.allclose(probs, expected)
    rng = np.random.default_rng(0)
    draws = [m.select_parents(0, rng) for _ in range(4000)]
    counts = np.array([sum(d == [pid] for d in draws) for pid in (1, 2, 3)], dtype=float) / len(draws)
    assert np.allclose(counts, expected, atol=0.03)


def test_power_law_is_scale_free_in_the_scores() -> None:
    near = model([1.0, 1.001, 1.002], selection="power_law")._islands[0].power_law_logits(1.0)
    far = model([1.0, 50.0, 900.0], selection="power_law")._islands[0].power_law_logits(1.0)
    assert np.allclose(near, far)


def test_the_offspring_penalty_gives_way_to_parents_tried_less_often() -> None:
    m = model([1.0, 2.0], selection="power_law", offspring_penalty=1.0)
    island = m._islands[0]
    before = island.power_law_logits(1.0, island.cluster_children(m._children), 1.0)
    m.note_offspring([1, 1, 1])
    after = island.power_law_logits(1.0, island.cluster_children(m._children), 1.0)
    assert m.children(1) == 3 and m.children(2) == 0
    assert after[0] == pytest.approx(before[0] - np.log(4)) and after[1] == before[1]


def test_elite_share_one_always_puts_the_island_best_last() -> None:
    m = model([5.0, 4.0, 3.0, 2.0, 1.0], parents_per_prompt=2, elite_share=1.0, temperature_init=100.0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        parents = m.select_parents(0, rng)
        assert parents[-1] == 5 and len(parents) == 2  # program 5 scores 1.0, the best when minimising


def test_elite_member_any_spreads_the_elite_over_the_best_behaviour() -> None:
    """"any": the elite is drawn uniformly from the best program's cluster (its behavioural twins), reproducibly under
    a seed; "first" always gives the earliest best program (the seed, before anything beats it)."""
    def islands(member: str) -> IslandModel:
        m = IslandModel(IslandConfig(num_islands=1, parents_per_prompt=1, elite_share=1.0, elite_member=member,
                                     temperature_init=100.0), maximize=False)
        m.register(1, 0, [2.0], 2.0, 10)  # the best behaviour: program 1, then its twins 3, 4 and 5
        m.register(2, 0, [9.0], 9.0, 10)
        for pid in (3, 4, 5):
            m.register(pid, 0, [2.0], 2.0, 10)
        return m

    draws = [islands("any").select_parents(0, np.random.default_rng(3)) for _ in range(2)]
    assert draws[0] == draws[1]  # the same seed, the same parents
    rng = np.random.default_rng(4)
    last = [islands("any").select_parents(0, rng)[-1] for _ in range(800)]
    counts = {pid: last.count(pid) for pid in (1, 2, 3, 4, 5)}
    assert counts[2] == 0  # the worse program never replaces the elite
    assert all(counts[pid] > 100 for pid in (1, 3, 4, 5)), counts  # every twin of the best is an elite
    rng = np.random.default_rng(4)
    first = [islands("first").select_parents(0, rng)[-1] for _ in range(800)]
    assert set(first) <= {1, 3, 4, 5} and first.count(1) > counts[1]  # "first" replaces program 2 by program 1


def test_elite_scope_all_takes_the_elite_from_the_best_island() -> None:
    """"all": a prompt on any island gets the best program of all islands as its elite; "island" its own island's."""
    def islands(scope: str) -> IslandModel:
        m = IslandModel(IslandConfig(num_islands=3, parents_per_prompt=2, elite_share=1.0, elite_scope=scope),
                        maximize=False)
        m.register_everywhere(1, [5.0], 5.0, 10)
        m.register(2, 1, [1.0], 1.0, 10)  # a better program, found on island 1 only
        return m

    rng = np.random.default_rng(5)
    assert all(islands("all").select_parents(i % 3, rng)[-1] == 2 for i in range(30))
    rng = np.random.default_rng(5)
    assert [islands("island").select_parents(i, rng)[-1] for i in (0, 2)] == [1, 1]


def test_the_elite_flags_reach_the_stored_config() -> None:
    from evoforge.engine.cli.main import _parser
    from evoforge.engine.run.options import SearchOptions, run_config

    args = _parser()[0].parse_args(["run", BIN_PACKING, "--elite-member", "any", "--elite-scope", "all"])
    assert (args.elite_member, args.elite_scope) == ("any", "all")
    config = run_config(BIN_PACKING, SearchOptions(name="n", elite_member="any", elite_scope="all"), "sqlite://")
    assert (config.islands.elite_member, config.islands.elite_scope) == ("any", "all")
    assert RunConfig.from_dict(config.to_dict()) == config


def test_without_elite_share_the_default_draws_are_unchanged() -> None:
    """The default never spends a random number on the elite, so stored runs replay the same parents."""
    a, b = model([3.0, 2.0, 1.0]), model([3.0, 2.0, 1.0], elite_share=0.0)
    ra, rb = np.random.default_rng(7), np.random.default_rng(7)
    assert [a.select_parents(0, ra) for _ in range(20)] == [b.select_parents(0, rb) for _ in range(20)]


@pytest.mark.parametrize("bad", [
    {"selection": "tournament"}, {"offspring_penalty": 1.0}, {"elite_share": 1.5}, {"elite_share": -0.1},
    {"elite_member": "best"}, {"elite_scope": "run"},
    {"power_alpha": 0.0}, {"selection": "power_law", "offspring_penalty": -1.0},
])
def test_strategy_settings_are_validated(bad: dict) -> None:
    with pytest.raises(IslandConfigError):
        IslandConfig(**bad)


def test_run_config_refuses_unknown_duplicate_handling_and_negative_inspirations() -> None:
    with pytest.raises(ConfigError, match="reject, keep, parent"):
        RunConfig(problem="p.py", name="x", same_behaviour="drop")
    with pytest.raises(ConfigError, match="inspirations"):
        RunConfig(problem="p.py", name="x", inspirations=-1)
    assert RunConfig(problem="p.py", name="x").duplicates == "parent"


# ---- behavioural duplicates ------------------------------------------------------------------------------------

def numbered(make):
    """A responder calling make(i) with i = 0, 1, 2, ... across the server's threads."""
    lock, counter = threading.Lock(), itertools.count()

    def respond(request: dict) -> str:
        with lock:
            i = next(counter)
        return make(i)

    return respond


def dead_variable_answer(i: int) -> str:
    """New code each time (a new dead variable) that packs exactly as best fit: a behavioural duplicate."""
    return (f"```python\ndef priority(item: float, bins: np.ndarray) -> np.ndarray:\n    unused = {i}\n"
            f"    return -(bins - item)\n```")


def config(name: str, budget: int, server: OpenAIServer, **options: object) -> RunConfig:
    entry = ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=5)
    islands = options.pop("islands", IslandConfig(num_islands=1, reset_period=1000))
    return RunConfig(offline_share=0.0, problem=BIN_PACKING, name=name, budget=budget, overrides=dict(SMALL),
                     concurrency=1,
                     islands=islands, models=ModelConfig(models=(entry,), backoff_s=0.05), **options)


def parents_and_programs(db: str, name: str) -> tuple[list[tuple[int, ...]], list]:
    with Store(db) as store:
        run = store.get_run(name)
        assert run is not None
        return [p.parent_ids for p in store.proposals(run.id)], store.program_briefs(run.id)


@pytest.mark.parametrize("mode", ["parent", "reject"])
def test_behavioural_duplicates_become_parents_only_when_kept_as_parents(tmp_path: Path, mode: str) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(numbered(dead_variable_answer)) as server:
        result = run_search(config(mode, 6, server, same_behaviour=mode), db, progress=False)
    parents, programs = parents_and_programs(db, mode)
    seed, rest = programs[0], programs[1:]
    assert result.stats.behaviour_duplicates == 6
    assert all(p.status == "duplicate" and p.duplicate_of == seed.id for p in rest)
    with Store(db) as store:
        assert all(not store.evaluations(p.id) for p in rest)  # no further evaluation cost in either mode
    used = {pid for ids in parents for pid in ids}
    if mode == "parent":
        assert used & {p.id for p in rest}  # later prompts were built from duplicates
    else:
        assert used == {seed.id}


def test_a_duplicate_parent_is_shown_with_its_twins_score_not_as_a_failure(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(numbered(dead_variable_answer)) as server:
        run_search(config("shown", 6, server), db, progress=False)
        prompts = [r.messages[-1]["content"] for r in server.completion_requests]
    parents, programs = parents_and_programs(db, "shown")
    seed = programs[0]
    assert any(set(ids) - {seed.id} for ids in parents)  # some prompts were built from duplicates
    assert not any("failed: duplicate" in text for text in prompts)
    seed_score = f"(score {seed.score:.6g})"
    assert all(text.count(seed_score) >= len(ids) for text, ids in zip(prompts, parents))


def test_duplicates_kept_as_parents_rejoin_their_islands_on_resume(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(numbered(dead_variable_answer)) as server:
        run_search(config("resumed", 3, server), db, progress=False)
        _, before = parents_and_programs(db, "resumed")
        duplicates = {p.id for p in before if p.status == "duplicate"}
        resume_search("resumed", db, budget=12, progress=False)
    parents, _ = parents_and_programs(db, "resumed")
    assert len(duplicates) == 3
    assert duplicates & {pid for ids in parents[3:] for pid in ids}  # chosen after the resume: registered again


# ---- inspirations ----------------------------------------------------------------------------------------------

def test_inspirations_are_shown_apart_from_the_versions_and_the_answer_edits_the_best_version() -> None:
    parents = [ParentView("def f(x):\n    return x\n", 2.0, "ok"),
               ParentView("def f(x):\n    return x + 1\n", 3.0, "ok")]
    other = ParentView("def f(x):\n    return 2 * x\n", 9.0, "ok")
    text = build_messages("Maximise f.", ["f"], parents, inspirations=[other])[1]["content"]
    assert "## Inspirations" in text and "### Inspiration A (score 9)" in text and "return 2 * x" in text
    assert text.index("### Inspiration A") < text.index("## Version 0") and "better than Version 1" in text
    assert "## Inspirations" not in build_messages("Maximise f.", ["f"], parents)[1]["content"]


def test_a_search_shows_other_islands_best_programs_as_inspirations(tmp_path: Path) -> None:
    def improving(i: int) -> str:
        return (f"```python\ndef priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
                f"    return -(bins - item) + {0.001 * (i + 1):.3f} * (bins - item) ** 2\n```")

    db = f"sqlite:///{tmp_path / 'r.db'}"
    islands = IslandConfig(num_islands=2, reset_period=1000)
    with OpenAIServer(numbered(improving)) as server:
        run_search(config("insp", 6, server, islands=islands, inspirations=1), db, progress=False)
        prompts = [r.messages[-1]["content"] for r in server.completion_requests]
    assert "### Inspiration A" not in prompts[0]  # every island holds only the seed, which is a parent
    assert any("### Inspiration A" in p for p in prompts[1:])


# ---- the benchmark's proposal source ---------------------------------------------------------------------------

def test_the_mutation_server_answers_with_applicable_mutations_reproducibly() -> None:
    from mutation_server import MutationResponder, versions

    seed = "def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    return -(bins - item)\n"
    messages = build_messages("Pack bins.", ["priority"], [ParentView(seed, 4.1, "ok")], maximize=False)
    assert versions(messages[1]["content"]) == ([seed.rstrip("\n")], 0)
    first = [MutationResponder(3)({"messages": messages}) for _ in range(1)]
    a, b = MutationResponder(3), MutationResponder(3)
    answers_a = [a({"messages": messages}) for _ in range(20)]
    assert answers_a == [b({"messages": messages}) for _ in range(20)]  # seeded per request
    assert answers_a[0] == first[0] and len(set(answers_a)) > 5  # the same prompt again gets a new mutation
    children = [apply_response(answer, seed, ["priority"]) for answer in answers_a]
    assert all(child != seed for child in children)
    assert any("<<<<<<< SEARCH" in x for x in answers_a) and any("```python" in x for x in answers_a)


# ---- an offline run that can change nothing ----------------------------------------------------------------------

def test_an_offline_run_that_can_change_nothing_stops_at_once_and_show_says_why(tmp_path: Path) -> None:
    import subprocess

    db = f"sqlite:///{tmp_path / 'r.db'}"
    config = RunConfig(problem=str(REPO / "tests" / "fixtures" / "frozen_problem.py"), name="frozen", budget=150)
    result = run_search(config, db, progress=False)
    assert result.status == "failed"
    assert "cannot change the program" in (result.stats.stop_reason or "")
    assert "nothing to change" in (result.stats.stop_reason or "")
    with Store(db) as store:
        assert len(store.proposals(store.get_run("frozen").id)) == 10  # it stopped, it did not spend 150
    shown = subprocess.run([sys.executable, "-m", "evoforge", "show", "frozen", "--db", db], capture_output=True,
                           text=True, check=True, cwd=REPO).stdout
    assert "cannot change the program" in " ".join(shown.split())
