"""The side-by-side with OpenEvolve (benchmarks/peer_openevolve.py): the mutation server answers OpenEvolve's prompts
with the same mutations it gives evoforge, and OpenEvolve's evaluator scores exactly as the bin-packing problem.

The tests marked `needs_openevolve` run OpenEvolve 0.4.0 itself, from the interpreter of a separate install
(/work/oe-venv, or EVOFORGE_OPENEVOLVE_PYTHON); they are skipped where there is none.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evoforge.evaluators import SandboxPool, load_problem

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import mutation_server  # noqa: E402
import openevolve_evaluator  # noqa: E402
import peer_openevolve  # noqa: E402

HEADER = "import numpy as np\n\n\n"
SEED = HEADER + ("def priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
                 '    """Returns priority with which we want to add item to each bin."""\n'
                 "    return -(bins - item)\n")
OE_PYTHON = Path(os.environ.get("EVOFORGE_OPENEVOLVE_PYTHON", str(peer_openevolve.DEFAULT_PYTHON)))
needs_openevolve = pytest.mark.skipif(not OE_PYTHON.exists(), reason=f"no OpenEvolve interpreter at {OE_PYTHON}")
_DIFF = re.compile(r"<<<<<<< SEARCH\n(.*?)\n=======\n(.*?)\n>>>>>>> REPLACE", re.S)


def openevolve_prompt(current: str, shown: list[str]) -> str:
    """A prompt shaped as OpenEvolve 0.4.0's diff prompt: the programs it shows, then the one to improve."""
    programs = "\n\n".join(f"### Program {i + 1} (Score: -4.9{i})\n```python\n{code}\n```\nKey features: none"
                           for i, code in enumerate(shown))
    return (f"# Current Program Information\n- Fitness: -4.9580\n\n# Program Evolution History\n"
            f"## Top Performing Programs\n\n{programs}\n\n# Current Program\n```python\n{current}\n```\n\n"
            "# Task\nSuggest improvements. You MUST use the exact SEARCH/REPLACE diff format:\n\n"
            "<<<<<<< SEARCH\n# Original code\n=======\n# New code\n>>>>>>> REPLACE\n")


def apply_diff(code: str, answer: str) -> str:
    """Apply an answer made of SEARCH/REPLACE blocks alone, each SEARCH found exactly once."""
    blocks = _DIFF.findall(answer)
    assert blocks and _DIFF.sub("", answer).strip() == "", answer
    for search, replace in blocks:
        assert code.count(search) == 1, (search, code)
        code = code.replace(search, replace)
    return code


def ask(responder: mutation_server.MutationResponder, prompt: str) -> str:
    return responder({"messages": [{"role": "system", "content": "You improve code."},
                                   {"role": "user", "content": prompt}]})


def test_the_mutation_server_answers_openevolve_with_a_diff_of_its_current_program_reproducibly() -> None:
    current = SEED.replace("-(bins - item)", "-(bins - item) + 0.5 * item")
    donor = SEED.replace("-(bins - item)", "np.tanh(bins) * 3.0")
    prompt = openevolve_prompt(current, [donor, current])
    a, b = mutation_server.MutationResponder(7), mutation_server.MutationResponder(7)
    answers = [ask(a, prompt) for _ in range(40)]
    assert answers == [ask(b, prompt) for _ in range(40)]  # seeded by (seed, prompt, occurrence)
    assert len(set(answers)) > 10
    children = [apply_diff(current, answer) for answer in answers]  # SEARCH/REPLACE only, on the current program
    assert all(child != current and child.startswith(HEADER) for child in children)
    for child in children:
        namespace: dict[str, object] = {}
        exec(compile(child, "child", "exec"), namespace)
        assert callable(namespace["priority"])
    assert any("def priority" in answer for answer in answers)  # the whole function, as a diff
    assert any("def priority" not in answer for answer in answers)  # one statement
    assert any("np.tanh" in child for child in children)  # pieces of the other programs shown


def test_the_same_draws_make_the_same_mutation_for_evoforge_and_for_openevolve() -> None:
    code = SEED.removeprefix(HEADER)
    for seed in range(30):
        for_evoforge = mutation_server.mutate_answer(code, [], np.random.default_rng(seed))
        for_openevolve = mutation_server.mutate_answer(code, [], np.random.default_rng(seed), diff_only=True)
        child = apply_diff(code, for_openevolve)
        if "<<<<<<< SEARCH" in for_evoforge:
            assert for_evoforge == for_openevolve
        else:
            body = for_evoforge.split("```python\n", 1)[1].rsplit("\n```", 1)[0]
            assert child.rstrip("\n") == body


def test_a_prompt_with_no_program_gets_no_mutation() -> None:
    assert ask(mutation_server.MutationResponder(0), "Hello") == "I see no program to improve."


def mutants(count: int) -> list[str]:
    """Chains of mutations of the seed, as OpenEvolve would receive them from the server."""
    responder = mutation_server.MutationResponder(3)
    programs, current = [], SEED
    for i in range(count):
        current = apply_diff(current, ask(responder, openevolve_prompt(current, [])))
        programs.append(current)
        if i % 3 == 2:
            current = SEED
    return programs


def test_the_openevolve_evaluator_scores_exactly_as_the_problem(tmp_path: Path) -> None:
    problem = load_problem(str(REPO / "problems" / "bin_packing.py"), {"num_items": "200"})
    instances_path = tmp_path / "instances.json"
    instances_path.write_text(json.dumps(problem.inputs))
    instances = list(problem.inputs.values())
    programs = [SEED, HEADER + "def priority(item, bins):\n    return bins - item\n",  # worst fit
                HEADER + "def priority(item, bins):\n    return (bins - item) < 5\n",  # bool priorities: Python
                *mutants(9)]
    failing = HEADER + "def priority(item, bins):\n    raise ValueError('no')\n"
    os.environ["EVOFORGE_PEER_INSTANCES"] = str(instances_path)
    try:
        with SandboxPool(problem, 1) as pool:
            scores = set()
            for program in programs:
                theirs = pool.evaluate(program.removeprefix(HEADER))
                path = tmp_path / "candidate.py"
                path.write_text(program)
                ours = openevolve_evaluator.evaluate(str(path))
                assert theirs.status == "ok" and ours["valid"] == 1.0, program
                excess = int(ours["excess_bins"])
                assert openevolve_evaluator.excess_percent(excess, instances) == theirs.score == -ours["combined_score"]
                scores.add(theirs.score)
            assert len(scores) >= 3  # packings that differ, not one score throughout
            path.write_text(failing)
            assert pool.evaluate(failing.removeprefix(HEADER)).status != "ok"
            assert openevolve_evaluator.evaluate(str(path)) == {"combined_score": openevolve_evaluator.INVALID,
                                                                "valid": 0.0}
    finally:
        del os.environ["EVOFORGE_PEER_INSTANCES"]


def test_the_running_best_is_read_from_openevolves_log() -> None:
    log = "\n".join([
        "t - openevolve.controller - INFO - Adding initial program to database",
        "t - openevolve.evaluator - INFO - Evaluated program s0 in 0.20s: combined_score=-4.9579, "
        "excess_bins=100.0000, valid=1.0000",
        "t - openevolve.process_parallel - INFO - Iteration 1: Program c1 (parent: s0) completed in 0.3s",
        "t - openevolve.evaluator - INFO - Evaluated program c2 in 0.20s: combined_score=-4.8, excess_bins=97.0000, "
        "valid=1.0000",  # a worker's line between the main process's two
        "t - openevolve.process_parallel - INFO - Metrics: combined_score=-4.9083, excess_bins=99.0000, valid=1.0000",
        "t - openevolve.process_parallel - WARNING - Iteration 2 error: No valid diffs found in response",
        "t - openevolve.process_parallel - INFO - Iteration 3: Program c2 (parent: c1) completed in 0.3s",
        "t - openevolve.process_parallel - INFO - Metrics: combined_score=-4.8100, excess_bins=97.0000, valid=1.0000",
        "t - openevolve.process_parallel - INFO - Iteration 4: Program c3 (parent: c2) completed in 0.3s",
        "t - openevolve.process_parallel - INFO - Metrics: combined_score=-1000.0000, valid=0.0000",
    ])
    seed, steps = peer_openevolve.read_log(log)
    assert seed == 100
    assert steps == [peer_openevolve.Step(1, True, 99), peer_openevolve.Step(2, False, None),
                     peer_openevolve.Step(3, True, 97), peer_openevolve.Step(4, True, None)]
    instances = [{"capacity": 100, "items": [50] * 4034}]  # one L1 bound of 2017 bins
    best = peer_openevolve.running_best(seed, steps, (1, 2, 4), instances)
    assert best == (100 * 99 / 2017, 100 * 99 / 2017, 100 * 97 / 2017)


@needs_openevolve
def test_openevolve_applies_the_servers_answer_to_its_own_prompt(tmp_path: Path) -> None:
    """OpenEvolve's own prompt builder and diff applier, in its own interpreter, around the server's answer."""
    build = ("import json, sys\nfrom openevolve.config import Config\n"
             "from openevolve.prompt.sampler import PromptSampler\n"
             "code, other = json.load(sys.stdin)\nm = {'combined_score': -4.95, 'valid': 1.0}\n"
             "p = PromptSampler(Config().prompt).build_prompt(current_program=code, parent_program=code,"
             " program_metrics=m, previous_programs=[], top_programs=[{'id': 'o', 'code': other, 'metrics': m}],"
             " inspirations=[], language='python', diff_based_evolution=True)\nprint(json.dumps(p))\n")
    other = SEED.replace("-(bins - item)", "np.log1p(np.abs(bins)) * 2.0")
    prompt = json.loads(subprocess.run([str(OE_PYTHON), "-c", build], input=json.dumps([SEED, other]), text=True,
                                       capture_output=True, check=True).stdout)
    responder = mutation_server.MutationResponder(1)
    answers = [responder({"messages": [{"role": "system", "content": prompt["system"]},
                                       {"role": "user", "content": prompt["user"]}]}) for _ in range(20)]
    apply = ("import json, sys\nfrom openevolve.utils.code_utils import apply_diff_blocks, extract_diffs\n"
             "code, answers = json.load(sys.stdin)\n"
             "print(json.dumps([apply_diff_blocks(code, extract_diffs(a)) for a in answers]))\n")
    applied = json.loads(subprocess.run([str(OE_PYTHON), "-c", apply], input=json.dumps([SEED, answers]), text=True,
                                        capture_output=True, check=True).stdout)
    assert [child for child, _ in applied] == [apply_diff(SEED, answer) for answer in answers]
    assert all(count == 1 for _, count in applied)


@needs_openevolve
def test_openevolve_runs_against_the_mutation_server_and_its_running_best_is_read(tmp_path: Path) -> None:
    outcome = peer_openevolve.run_seed(0, {"num_items": "100"}, (3, 8), OE_PYTHON, tmp_path)
    instances = json.loads((tmp_path / "seed0" / "instances.json").read_text())
    seed_score = openevolve_evaluator.excess_percent(
        openevolve_evaluator.total_excess_bins(SEED, list(instances.values())), list(instances.values()))
    assert outcome.variant == "openevolve" and outcome.seed == 0
    assert outcome.best[1] <= outcome.best[0] <= seed_score
    assert 0.0 <= outcome.valid_rate <= 1.0
    console = (tmp_path / "seed0" / "console.log").read_text()
    assert "Evolution complete" in console
