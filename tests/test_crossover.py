"""Crossover prompts (--crossover SHARE): the mate's choice, the share, the prompt, what is recorded and shown, and
the offline proposer's recombination with the mate.

Searches here are real: a real HTTP server speaking the OpenAI chat API, real sandboxes, real SQLite.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from climb_answers import Climbing
from openai_server import OpenAIServer

from evoforge.db import Store
from evoforge.engine.analysis import views
from evoforge.engine.program.patching import apply_response
from evoforge.engine.propose.prompts import ParentView, build_messages
from evoforge.engine.propose.proposers import OfflineProposer
from evoforge.engine.run.config import ConfigError, ModelConfig, ModelEntry, RunConfig
from evoforge.engine.run.controller import draw_mate
from evoforge.engine.run.options import SearchOptions, run_config
from evoforge.engine.run.search import run_search
from evoforge.islands import IslandConfig, IslandModel

REPO = Path(__file__).resolve().parent.parent
CLIMB = str(REPO / "tests" / "fixtures" / "climb_problem.py")
BEST_FIT = "def priority(item, bins):\n    return -(bins - item)\n"
WORST_FIT = "def priority(item, bins):\n    return bins - item + 0.5 * item\n"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


def islands_of(programs: dict[int, tuple[int, float]], num_islands: int = 3) -> IslandModel:
    """Programs by id -> (island, score), each with its own signature (its score), maximising."""
    m = IslandModel(IslandConfig(num_islands=num_islands, elite_share=0.0), maximize=True)
    for pid, (island, score) in programs.items():
        m.register(pid, island, [score], score, 10)
    return m


# ---- the mate ----------------------------------------------------------------------------------------------------

def test_the_mate_is_a_high_scorer_of_another_island_that_behaves_differently() -> None:
    m = islands_of({1: (0, 1.0), 2: (0, 2.0), 3: (1, 5.0), 4: (1, 3.0), 5: (2, 4.0), 6: (3, 9.0), 7: (4, 2.0),
                    8: (5, 1.0)}, num_islands=6)
    rng = np.random.default_rng(0)
    mates = [m.select_mate(0, 2, rng) for _ in range(300)]
    # Other islands' bests are 3, 5, 6, 7, 8; the three best of them: 6 (9.0), 3 (5.0), 5 (4.0), each drawn.
    assert set(mates) == {6, 3, 5}
    again = np.random.default_rng(0)
    assert [m.select_mate(0, 2, again) for _ in range(300)] == mates  # the attempt's generator decides


def test_an_other_island_whose_best_behaves_like_the_parent_gives_no_mate_but_other_clusters_do() -> None:
    m = IslandModel(IslandConfig(num_islands=2, elite_share=0.0), maximize=True)
    m.register_everywhere(1, [1.0], 1.0, 10)  # the seed, on both islands
    assert m.select_mate(0, 1, np.random.default_rng(0)) is None  # everything behaves like the parent
    m.register(2, 0, [0.5], 0.5, 10)
    m.register(3, 0, [0.9], 0.9, 10)
    # its island's other clusters in the upper half of its scores (0.5 .. 1.0): 3, not 2
    assert {m.select_mate(0, 1, np.random.default_rng(s)) for s in range(20)} == {3}
    assert m.select_mate(1, 1, np.random.default_rng(0)) is None  # island 0's best is the seed, like the parent


def test_the_share_of_crossovers_is_honoured_and_zero_draws_nothing() -> None:
    m = islands_of({1: (0, 1.0), 2: (1, 2.0)})
    rng = np.random.default_rng(3)
    mates = [draw_mate(m, 0, 1, 0.2, rng) for _ in range(5000)]
    assert {x for x in mates if x is not None} == {2}
    assert abs(sum(x is not None for x in mates) / 5000 - 0.2) < 0.02
    assert all(draw_mate(m, 0, 1, 1.0, rng) == 2 for _ in range(50))
    untouched, used = np.random.default_rng(9), np.random.default_rng(9)
    assert draw_mate(m, 0, 1, 0.0, used) is None
    assert used.random() == untouched.random()  # off: the run's random stream is what it was without crossover


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True])
def test_the_share_is_validated(bad: float) -> None:
    with pytest.raises(ConfigError, match="--crossover"):
        RunConfig(problem="p.py", name="x", crossover=bad)


# ---- the prompt --------------------------------------------------------------------------------------------------

def test_the_crossover_prompt_shows_both_parents_and_asks_to_combine_them_into_parent_a() -> None:
    a = ParentView(code=BEST_FIT, score=4.0, status="ok")
    b = ParentView(code=WORST_FIT, score=6.5, status="ok")
    other = ParentView(code="def priority(item, bins):\n    return bins\n", score=9.0, status="ok")
    text = build_messages("Pack items.", ["priority"], [other, a], mate=b, maximize=False)[1]["content"]
    assert "## Parent A (score 4)\n```python\n" + BEST_FIT in text
    assert "## Parent B (score 6.5)\n```python\n" + WORST_FIT in text
    assert "return bins\n" not in text  # only the parent and its mate are shown
    assert ("Combine what each parent does well into one version of priority(...) that scores better than both "
            "(lower scores are better): start from Parent A and bring in the ideas of Parent B that help.") in text
    assert "SEARCH/REPLACE blocks that edit Parent A" in text and "Version" not in text
    answer = ("<<<<<<< SEARCH\n    return -(bins - item)\n=======\n    return -(bins - item) + 0.5 * item\n"
              ">>>>>>> REPLACE")
    assert apply_response(answer, BEST_FIT, ["priority"]).endswith("return -(bins - item) + 0.5 * item\n")


def test_a_project_crossover_shows_parent_b_as_blocks_and_parent_a_as_the_files_to_edit() -> None:
    from evoforge.evaluators import load_problem

    problem = load_problem(REPO / "tests" / "fixtures" / "block_problem.py")
    a = ParentView(problem.seed_code, 4.0, "ok")
    b = ParentView(problem.seed_code.replace("2.0", "1.5"), 2.0, "ok")
    text = build_messages(problem.description, (), [a], mate=b, project=problem.project)[1]["content"]
    assert "## Parent B (score 2)\n" in text and "# EVOLVE-BLOCK calc.py:settings\nGAIN = 1.5" in text
    assert "## Parent A (score 4)\n" in text and "### calc.py (Parent A)" in text
    assert "Combine what each parent does well into blocks" in text and "lines of that block of Parent A" in text
    assert text.index("## Parent B") < text.index("## Parent A") and "Version" not in text


# ---- real searches -----------------------------------------------------------------------------------------------

def climb_config(name: str, budget: int, server: OpenAIServer, **options: object) -> RunConfig:
    entry = ModelEntry("openai/cheap", api_base=server.base_url, timeout_s=10)
    return RunConfig(offline_share=0.0, problem=CLIMB, name=name, budget=budget, seed=3, concurrency=1,
                     islands=IslandConfig(num_islands=2, reset_period=1000),
                     models=ModelConfig(models=(entry,), backoff_s=0.05), **options)


def test_a_crossover_search_records_both_parents_and_shows_them(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with OpenAIServer(Climbing()) as server:
        run_search(climb_config("x", 12, server, crossover=1.0), db, progress=False)
        server.responder = Climbing()  # a fresh model for the second run
        run_search(climb_config("y", 12, server, crossover=1.0), db, progress=False)
    with Store(db) as store:
        run = store.get_run("x")
        assert run is not None
        proposals = store.proposals(run.id)
        programs = {p.proposal_id: p for p in store.program_briefs(run.id) if p.proposal_id is not None}
        infos = {p.id: p for p in store.get_programs([p.id for p in store.program_briefs(run.id)])}
        crossed = [q for q in proposals if "crossover" in q.details]
        # Every prompt with a program unlike its parent somewhere is a crossover (share 1.0); the first ones
        # have only the seed to mate with, which behaves like every parent.
        assert len(crossed) >= 6 and all(q.details.get("crossover") is None for q in proposals[:1])
        for q in crossed:
            mate, parent = q.parent_ids
            assert q.details["crossover"] == mate != parent
            assert infos[mate].scores != infos[parent].scores  # from a different cluster
            text = json.loads(q.prompt)[1]["content"]
            assert f"## Parent A (score {infos[parent].score:.6g})\n```python\n{infos[parent].code.strip()}" in text
            assert f"## Parent B (score {infos[mate].score:.6g})\n```python\n{infos[mate].code.strip()}" in text
            assert "Combine what each parent does well" in text
            child = programs.get(q.id)
            if child is not None:
                assert child.parent_ids == (mate, parent) and child.mate_id == mate
        plain = [programs[q.id] for q in proposals if "crossover" not in q.details and q.id in programs]
        assert all(p.mate_id is None for p in plain)
        child = next(programs[q.id] for q in reversed(crossed) if q.id in programs)
        assert "crossover with" in views.lineage(store, child.id, as_json=False)
        shown = views.program(store, child.id, as_json=False)
        assert f"(the change was made to {child.parent_ids[-1]}; a crossover with {child.mate_id})" in \
            " ".join(shown.split())
        assert "crossover=1.0" in views.show(store, "x", as_json=False)
        # Deterministic under the seed: the same crossovers with the same mates (ids counted from each run's seed).
        assert crossovers(store, "y") == crossovers(store, "x")


def crossovers(store: Store, name: str) -> list[tuple[tuple[int, ...], int | None]]:
    run = store.get_run(name)
    assert run is not None
    first = store.program_briefs(run.id, origin="seed")[0].id
    return [(tuple(p - first for p in q.parent_ids), q.details.get("crossover", first - 1) - first)
            for q in store.proposals(run.id)]


def test_crossover_from_the_command_line_and_the_api_is_the_same_stored_setting() -> None:
    from evoforge.engine.cli.main import _parser

    parser, _ = _parser()
    args = parser.parse_args(["run", CLIMB, "--crossover", "0.25", "--meta-summary", "4", "--model", "m"])
    assert (args.crossover, args.meta_summary) == (0.25, 4)
    config = run_config(CLIMB, SearchOptions(name="n", crossover=0.25, meta_summary=4, model="m"), "sqlite://")
    assert (config.crossover, config.meta_summary) == (0.25, 4)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# ---- offline -----------------------------------------------------------------------------------------------------

def test_the_offline_proposer_recombines_the_parent_with_its_mate() -> None:
    parent = ("def priority(item, bins):\n    fit = bins - item\n    score = -fit\n    return score\n")
    mate = ("def priority(item, bins):\n    fit = bins - item\n    score = -fit * fit + 0.25 * item\n"
            "    return score\n")
    proposer = OfflineProposer(["priority"])
    kinds, distinct = set(), 0
    for seed in range(12):
        [proposal] = asyncio.run(proposer.propose([ParentView(code=parent, score=1.0, status="ok")],
                                                np.random.default_rng(seed),
                                                mate=ParentView(code=mate, score=2.0, status="ok")))
        assert proposal.error is None
        kinds.add(proposal.details["kind"])
        code = apply_response(proposal.text, parent, ["priority"])
        assert code != parent
        distinct += "fit * fit" in code or "0.25 * item" in code  # what only the mate has went into the parent
    assert kinds <= {"recombine", "crossover"} and distinct >= 3


# ---- the record --------------------------------------------------------------------------------------------------

def test_a_mate_is_stored_and_read_back_and_must_be_one_of_the_parents_before_the_primary(tmp_path: Path) -> None:
    from evoforge.db import NewProgram

    with pytest.raises(ValueError, match="mate 3 is listed among parent_ids"):
        NewProgram(island=0, origin="llm", code="x", code_hash="h", status="ok", parent_ids=[1, 3], mate_id=3)
    with Store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        run = store.create_run(name="r", problem_name="p", problem_path="p.py", problem_source="", problem_hash="h",
                               config={}, seed=0, evoforge_version="test")
        ids = []
        for parents, mate in (((), None), ((1,), None), ((2, 1), 2)):
            program = NewProgram(island=0, origin="seed" if not parents else "human", code=f"c{len(ids)}",
                                 code_hash=f"h{len(ids)}", status="ok", score=1.0,
                                 parent_ids=[ids[p - 1] for p in parents], mate_id=None if mate is None
                                 else ids[mate - 1])
            ids.append(store.record_candidate(run.id, proposal=None, program=program, evaluations=[]).program_id)
        assert [p.mate_id for p in store.get_programs(ids)] == [None, None, ids[1]]
        assert [p.mate_id for p in store.program_briefs(run.id)] == [None, None, ids[1]]
