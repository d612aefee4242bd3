"""Tests of the island model: clustering, selection, normalisation, resets, replay, config and softmax."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from evoforge.islands import (
    EmptyIslandError,
    IslandConfig,
    IslandConfigError,
    IslandModel,
    ResetPlan,
    sample_distinct,
    softmax,
)


def make(maximize: bool = True, **config: object) -> IslandModel:
    """A model with FunSearch's sampling alone (no elite exploitation) unless the test sets elite_share."""
    return IslandModel(IslandConfig(**{"elite_share": 0.0, **config}), maximize=maximize)  # type: ignore[arg-type]


def first_pick_freq(model: IslandModel, island: int, n: int, seed: int = 0) -> Counter[int]:
    rng = np.random.default_rng(seed)
    return Counter(model.select_parents(island, rng)[0] for _ in range(n))


# ---- clustering --------------------------------------------------------------------------------------------------


def test_programs_with_equal_signatures_share_a_cluster():
    m = make(num_islands=2)
    m.register(1, 0, (1.0, 2.0), 3.0, 10)
    m.register(2, 0, (1, 2), 3.0, 20)  # ints compare and hash like floats: same behaviour, same cluster
    m.register(3, 0, (2.0, 1.0), 3.0, 30)  # same score, different behaviour: its own cluster
    m.register(4, 1, (1.0, 2.0), 3.0, 40)  # clusters are per island
    clusters = m.snapshot()["islands"][0]["clusters"]
    assert [c["program_ids"] for c in clusters] == [[1, 2], [3]]
    assert [c["signature"] for c in clusters] == [[1.0, 2.0], [2.0, 1.0]]
    assert [c["lengths"] for c in clusters] == [[10, 20], [30]]
    assert m.snapshot()["islands"][1]["clusters"][0]["program_ids"] == [4]
    assert m.island_sizes() == [3, 1]
    assert m.num_registered == 4


def test_register_rejects_bad_input_and_leaves_state_unchanged():
    m = make(num_islands=2)
    m.register(1, 0, (1.0,), 1.0, 10)
    before = m.snapshot()
    with pytest.raises(ValueError, match="already registered"):
        m.register(1, 1, (2.0,), 2.0, 10)
    with pytest.raises(ValueError, match="function of the signature"):
        m.register(2, 0, (1.0,), 5.0, 10)
    with pytest.raises(IndexError, match="islands 0..1"):
        m.register(3, 2, (1.0,), 1.0, 10)
    with pytest.raises(ValueError, match="finite"):
        m.register(4, 0, (1.0,), float("nan"), 10)
    with pytest.raises(ValueError, match="non-finite"):
        m.register(5, 0, (float("inf"),), 1.0, 10)
    with pytest.raises(ValueError, match="empty"):
        m.register(6, 0, (), 1.0, 10)
    with pytest.raises(ValueError, match="code_length"):
        m.register(7, 0, (1.0,), 1.0, -1)
    with pytest.raises(TypeError, match="program_id"):
        m.register(True, 0, (1.0,), 1.0, 1)
    assert m.snapshot() == before


# ---- selection ---------------------------------------------------------------------------------------------------


def five_clusters(maximize: bool = True, scale: float = 1.0, **config: object) -> IslandModel:
    m = make(maximize, num_islands=1, **config)
    for pid in range(5):
        m.register(pid, 0, (float(pid),), pid * scale, 100)
    return m


def test_low_temperature_prefers_the_best_cluster():
    m = five_clusters(parents_per_prompt=1, temperature_init=0.05)
    probs = m.cluster_probabilities(0)
    assert probs[(4.0,)] > 0.98
    assert list(probs.values()) == sorted(probs.values())  # better cluster, higher probability
    freq = first_pick_freq(m, 0, 500)
    assert freq[4] > 480


def test_high_temperature_is_near_uniform():
    m = five_clusters(parents_per_prompt=1, temperature_init=1000.0)
    probs = np.array(list(m.cluster_probabilities(0).values()))
    assert np.allclose(probs, 0.2, atol=0.001)
    freq = first_pick_freq(m, 0, 5000)
    assert set(freq) == {0, 1, 2, 3, 4}
    assert all(abs(c / 5000 - 0.2) < 0.03 for c in freq.values())


def test_minimise_prefers_low_scores_exactly_as_maximise_does_high_ones():
    lo = make(False, num_islands=1, parents_per_prompt=1)
    hi = make(True, num_islands=1, parents_per_prompt=1)
    for pid in range(5):
        lo.register(pid, 0, (float(pid),), float(pid), 100)
        hi.register(pid, 0, (float(pid),), -float(pid), 100)
    p_lo, p_hi = lo.cluster_probabilities(0), hi.cluster_probabilities(0)
    assert max(p_lo, key=p_lo.__getitem__) == (0.0,)
    assert p_lo == p_hi  # negation is exact in floating point, so the probabilities are bit-identical
    assert first_pick_freq(lo, 0, 200, seed=3) == first_pick_freq(hi, 0, 200, seed=3)
    assert first_pick_freq(lo, 0, 200).most_common(1)[0][0] == 0
    assert lo.best() == (0, 0.0)


def test_selection_is_invariant_to_the_scale_of_scores():
    base = five_clusters(scale=1.0)
    big = five_clusters(scale=1000.0)
    tiny = five_clusters(scale=0.001)
    p = np.array(list(base.cluster_probabilities(0).values()))
    assert np.allclose(p, list(big.cluster_probabilities(0).values()), rtol=1e-12)
    assert np.allclose(p, list(tiny.cluster_probabilities(0).values()), rtol=1e-12)
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    assert [base.select_parents(0, r1) for _ in range(100)] == [big.select_parents(0, r2) for _ in range(100)]


def test_equal_scores_select_uniformly():
    m = make(num_islands=1, parents_per_prompt=1)
    for pid in range(4):
        m.register(pid, 0, (float(pid), -float(pid)), 1.0, 100)
    assert list(m.cluster_probabilities(0).values()) == [0.25] * 4


def test_shorter_programs_are_preferred_within_a_cluster():
    m = make(num_islands=1, parents_per_prompt=1, length_temperature=1.0)
    m.register(1, 0, (1.0,), 1.0, 1000)
    m.register(2, 0, (1.0,), 1.0, 10)
    freq = first_pick_freq(m, 0, 4000)
    # FunSearch's rule: logits -(len - min) / (max + 1e-6) -> 0 and -0.99; p(short) = 1 / (1 + e^-0.99) ~ 0.729
    expected = 1 / (1 + np.exp(-(1000 - 10) / (1000 + 1e-6)))
    assert abs(freq[2] / 4000 - expected) < 0.03
    sharp = make(num_islands=1, parents_per_prompt=1, length_temperature=0.05)
    sharp.register(1, 0, (1.0,), 1.0, 1000)
    sharp.register(2, 0, (1.0,), 1.0, 10)
    assert first_pick_freq(sharp, 0, 500)[2] == 500


def test_parents_come_from_distinct_clusters_ordered_worst_to_best():
    m = make(num_islands=1, parents_per_prompt=3, temperature_init=1000.0)
    for pid in range(30):
        m.register(pid, 0, (float(pid % 6),), float(pid % 6), 100)  # 6 clusters of 5 programs
    rng = np.random.default_rng(1)
    for _ in range(200):
        parents = m.select_parents(0, rng)
        scores = [p % 6 for p in parents]
        assert len(parents) == 3
        assert len(set(scores)) == 3  # distinct clusters
        assert scores == sorted(scores)  # worst first


def test_parents_of_a_minimise_problem_are_ordered_worst_first():
    m = make(False, num_islands=1, parents_per_prompt=4, temperature_init=1000.0)
    for pid in range(4):
        m.register(pid, 0, (float(pid),), float(pid), 100)
    assert m.select_parents(0, np.random.default_rng(0)) == [3, 2, 1, 0]


def test_small_islands_give_fewer_parents_or_reuse_clusters():
    m = make(num_islands=2, parents_per_prompt=3)
    rng = np.random.default_rng(0)
    with pytest.raises(EmptyIslandError, match="island 1 has no programs"):
        m.select_parents(1, rng)
    m.register(1, 0, (1.0,), 1.0, 10)
    assert m.select_parents(0, rng) == [1]
    m.register(2, 0, (1.0,), 1.0, 20)
    assert sorted(m.select_parents(0, rng)) == [1, 2]
    m.register(3, 0, (1.0,), 1.0, 30)
    m.register(4, 0, (2.0,), 2.0, 30)
    for _ in range(50):  # 2 clusters, 4 programs, k=3: both clusters, 3 distinct programs, best (4) last
        parents = m.select_parents(0, rng)
        assert len(set(parents)) == 3 and 4 in parents and parents[-1] == 4


def test_selection_is_deterministic_for_a_seeded_generator():
    m = make(num_islands=1, parents_per_prompt=2)
    for pid in range(200):
        m.register(pid, 0, (float(pid % 37), float(pid % 5)), float(pid % 37 + pid % 5), 50 + pid % 11)
    a = [m.select_parents(0, np.random.default_rng(42)) for _ in range(3)]
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    run1 = [m.select_parents(0, g1) for _ in range(100)]
    run2 = [m.select_parents(0, g2) for _ in range(100)]
    assert a[0] == a[1] == a[2]
    assert run1 == run2
    assert len({tuple(p) for p in run1}) > 10  # it is random, not constant


def test_temperature_follows_the_funsearch_sawtooth():
    m = make(num_islands=2, temperature_init=0.2, temperature_period=10)
    assert m.temperature(0) == pytest.approx(0.2)
    for pid in range(5):
        m.register(pid, 0, (float(pid),), float(pid), 10)
    assert m.temperature(0) == pytest.approx(0.1)
    assert m.temperature(1) == pytest.approx(0.2)
    for pid in range(5, 10):
        m.register(pid, 0, (float(pid),), float(pid), 10)
    assert m.temperature(0) == pytest.approx(0.2)  # period over: back to the start


def test_pick_island_covers_all_islands_deterministically():
    m = make(num_islands=4)
    picks = [m.pick_island(np.random.default_rng(5)) for _ in range(3)]
    g = np.random.default_rng(0)
    assert len(set(picks)) == 1
    assert {m.pick_island(g) for _ in range(200)} == {0, 1, 2, 3}


# ---- best and queries --------------------------------------------------------------------------------------------


def test_best_per_island_and_overall():
    m = make(num_islands=3)
    assert m.best() is None and m.best(0) is None
    m.register(1, 0, (1.0,), 1.0, 10)
    m.register(2, 1, (5.0,), 5.0, 10)
    m.register(3, 1, (5.0,), 5.0, 5)  # equal score: the earliest stays best
    m.register(4, 0, (3.0,), 3.0, 10)
    assert m.best(0) == (4, 3.0)
    assert m.best(1) == (2, 5.0)
    assert m.best() == (2, 5.0)
    assert m.island_best_scores() == [3.0, 5.0, None]
    assert m.island_sizes() == [2, 2, 0]


# ---- resets ------------------------------------------------------------------------------------------------------


def four_islands(maximize: bool = True, **config: object) -> IslandModel:
    m = make(maximize, num_islands=4, reset_period=8, **config)
    bests = [3.0, 1.0, 4.0, 2.0]  # islands 1 and 3 are the worst half when maximising
    pid = 0
    for island, b in enumerate(bests):
        for s in (b - 0.5, b):
            m.register(pid, island, (s,), s, 10 + pid)
            pid += 1
    return m


def test_reset_clears_exactly_the_worst_half_and_seeds_from_survivors():
    m = four_islands()
    assert m.needs_reset()
    plan = m.plan_reset(np.random.default_rng(0))
    assert plan.islands == (1, 3)
    assert set(plan.source_islands) <= {0, 2}
    best_of = {0: 1, 2: 5}  # program ids of the best on islands 0 and 2
    assert list(plan.founders) == [best_of[s] for s in plan.source_islands]
    before = m.snapshot()
    m.apply_reset(plan)
    after = m.snapshot()
    assert not m.needs_reset() and m.registrations_since_reset == 0
    assert m.num_registered == 8
    assert after["islands"][0] == before["islands"][0] and after["islands"][2] == before["islands"][2]
    for island, founder in zip(plan.islands, plan.founders):
        src = before["islands"][plan.source_islands[plan.islands.index(island)]]
        founder_cluster = next(c for c in src["clusters"] if founder in c["program_ids"])
        assert after["islands"][island]["size"] == 1
        assert after["islands"][island]["clusters"] == [
            {
                "signature": founder_cluster["signature"],
                "score": founder_cluster["score"],
                "program_ids": [founder],
                "lengths": [founder_cluster["lengths"][founder_cluster["program_ids"].index(founder)]],
            }
        ]
        assert m.best(island) == (founder, founder_cluster["score"])
        assert m.temperature(island) == pytest.approx(0.1 * (1 - 1 / 30_000))


def test_reset_of_a_minimise_problem_clears_the_highest_scores():
    m = four_islands(maximize=False)
    assert m.plan_reset(np.random.default_rng(0)).islands == (0, 2)


def test_reset_sources_are_random_survivors():
    m = four_islands()
    sources = {m.plan_reset(np.random.default_rng(s)).source_islands for s in range(40)}
    assert {s for pair in sources for s in pair} == {0, 2}
    assert len(sources) > 1


def test_reset_breaks_ties_at_random_and_resets_empty_islands_first():
    m = make(num_islands=4)
    m.register(0, 0, (1.0,), 1.0, 10)
    m.register(1, 1, (1.0,), 1.0, 10)
    m.register(2, 2, (1.0,), 1.0, 10)
    plans = [m.plan_reset(np.random.default_rng(s)) for s in range(40)]
    assert all(3 in p.islands and len(p.islands) == 2 for p in plans)  # the empty island always goes
    assert {p.islands for p in plans} == {(0, 3), (1, 3), (2, 3)}  # a tie is broken differently by different seeds


def test_single_island_never_resets_anything():
    m = make(num_islands=1, reset_period=1)
    m.register(0, 0, (1.0,), 1.0, 10)
    assert m.needs_reset()
    plan = m.plan_reset(np.random.default_rng(0))
    assert plan.islands == ()
    m.apply_reset(plan)
    assert m.island_sizes() == [1] and not m.needs_reset()


def test_reset_plan_round_trips_through_json_and_rejects_bad_data():
    plan = four_islands().plan_reset(np.random.default_rng(3))
    data = json.loads(json.dumps(plan.to_dict()))
    assert ResetPlan.from_dict(data) == plan
    with pytest.raises(ValueError, match="unknown \\['extra'\\]"):
        ResetPlan.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="missing \\['founders'\\]"):
        ResetPlan.from_dict({"islands": [1], "source_islands": [0]})
    with pytest.raises(ValueError, match="equal lengths"):
        ResetPlan.from_dict({"islands": [1], "founders": [], "source_islands": [0]})
    with pytest.raises(ValueError, match="both reset and used as a source"):
        ResetPlan(islands=(1,), founders=(5,), source_islands=(1,))
    with pytest.raises(ValueError, match="must hold ints"):
        ResetPlan.from_dict({"islands": ["1"], "founders": [5], "source_islands": [0]})


def test_apply_reset_rejects_a_plan_from_elsewhere():
    m = four_islands()
    with pytest.raises(ValueError, match="founder 99 was never registered"):
        m.apply_reset(ResetPlan(islands=(1,), founders=(99,), source_islands=(0,)))
    with pytest.raises(IndexError):
        m.apply_reset(ResetPlan(islands=(7,), founders=(1,), source_islands=(0,)))


def drive(model: IslandModel, rng: np.random.Generator, steps: int) -> list[dict]:
    """A little controller: select, 'evaluate', register, reset when due; returns the log a database would keep."""
    log: list[dict] = []
    for pid in range(steps):
        island = pid % model.config.num_islands
        if model.island_sizes()[island]:
            model.select_parents(island, rng)
        sig = tuple(float(x) for x in rng.integers(0, 4, size=3))
        event = {"register": [pid, island, list(sig), sum(sig), int(rng.integers(10, 500))]}
        model.register(pid, island, sig, sum(sig), event["register"][4])
        log.append(event)
        if model.needs_reset():
            plan = model.plan_reset(rng)
            model.apply_reset(plan)
            log.append({"reset": plan.to_dict()})
    return log


def test_replaying_registers_and_resets_rebuilds_identical_state():
    original = make(num_islands=4, reset_period=25, temperature_period=40)
    log = json.loads(json.dumps(drive(original, np.random.default_rng(11), 300)))
    assert sum("reset" in e for e in log) == 12

    replayed = make(num_islands=4, reset_period=25, temperature_period=40)
    for event in log:  # no rng at all: the recorded plans replace the random draws
        if "register" in event:
            pid, island, sig, score, length = event["register"]
            replayed.register(pid, island, tuple(sig), score, length)
        else:
            replayed.apply_reset(ResetPlan.from_dict(event["reset"]))

    assert replayed.snapshot() == original.snapshot()
    assert replayed.best() == original.best()
    assert [replayed.temperature(i) for i in range(4)] == [original.temperature(i) for i in range(4)]
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for i in range(200):
        assert original.select_parents(i % 4, r1) == replayed.select_parents(i % 4, r2)
    assert original.plan_reset(np.random.default_rng(2)) == replayed.plan_reset(np.random.default_rng(2))


# ---- config ------------------------------------------------------------------------------------------------------


def test_config_defaults():
    c = IslandConfig()
    assert (c.num_islands, c.parents_per_prompt, c.temperature_init) == (4, 2, 0.1)
    assert (c.temperature_period, c.reset_period, c.length_temperature) == (30_000, 400, 1.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_islands", 0, ">= 1"),
        ("num_islands", 2.0, "must be an int"),
        ("num_islands", True, "must be an int"),
        ("parents_per_prompt", -1, ">= 1"),
        ("temperature_init", 0.0, "finite and > 0"),
        ("temperature_init", float("nan"), "finite and > 0"),
        ("temperature_init", "0.1", "must be a number"),
        ("temperature_period", 0, ">= 1"),
        ("reset_period", 0, ">= 1"),
        ("length_temperature", float("inf"), "finite and > 0"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value, message):
    with pytest.raises(IslandConfigError, match=f"IslandConfig.{field} .*{message}"):
        IslandConfig(**{field: value})


def test_config_is_frozen_and_model_requires_one():
    c = IslandConfig()
    with pytest.raises(AttributeError):
        c.num_islands = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="IslandConfig"):
        IslandModel({"num_islands": 4}, maximize=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="maximize"):
        IslandModel(c, maximize="yes")  # type: ignore[arg-type]


# ---- softmax -----------------------------------------------------------------------------------------------------


def test_softmax_all_zeros_is_uniform():
    assert np.array_equal(softmax(np.zeros(4), 1.0), np.full(4, 0.25))


def test_softmax_handles_huge_values():
    p = softmax([1e308, -1e308, 1e308, 0.0], 0.001)
    assert np.isfinite(p).all()
    assert np.allclose(p, [0.5, 0.0, 0.5, 0.0])


def test_softmax_one_element_and_int_dtype():
    assert np.array_equal(softmax([7.0], 0.5), [1.0])
    ints = softmax(np.array([1, 2, 3], dtype=np.int64), 1.0)
    assert ints.dtype == np.float64
    assert np.allclose(ints, softmax([1.0, 2.0, 3.0], 1.0))
    assert np.allclose(ints, np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    assert softmax(np.arange(1000), 0.01).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [[1.0, float("nan")], [float("inf"), 0.0], [float("-inf")]])
def test_softmax_refuses_non_finite_logits(bad):
    with pytest.raises(ValueError, match="logits must be finite"):
        softmax(bad, 1.0)


def test_softmax_refuses_bad_shapes_and_temperatures():
    with pytest.raises(ValueError, match="empty"):
        softmax([], 1.0)
    with pytest.raises(ValueError, match="one-dimensional"):
        softmax([[1.0]], 1.0)
    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            softmax([1.0], t)


@pytest.mark.parametrize("k", [1, 2])
def test_sample_distinct_draws_follow_the_softmax(k):
    logits = np.array([0.0, 1.0, 2.0, 0.5])
    rng = np.random.default_rng(0)
    draws = [sample_distinct(logits, 1.0, k, rng) for _ in range(6000)]
    assert all(len(set(d.tolist())) == k for d in draws)
    first = np.bincount([int(d[0]) for d in draws], minlength=4) / len(draws)
    assert np.allclose(first, softmax(logits, 1.0), atol=0.02)
    assert sorted(sample_distinct(logits, 1.0, 10, rng).tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="k must be"):
        sample_distinct(logits, 1.0, 0, rng)


def test_register_everywhere_founds_every_island_as_one_registration() -> None:
    model = IslandModel(IslandConfig(num_islands=3, reset_period=10), maximize=True)
    model.register_everywhere(7, (1.0, 2.0), 1.5, 40)
    assert model.island_sizes() == [1, 1, 1]
    assert model.num_registered == 1
    rng = np.random.default_rng(0)
    assert all(model.select_parents(i, rng) == [7] for i in range(3))


def test_withdrawing_a_program_takes_it_out_of_selection_on_every_island_it_is_on() -> None:
    from evoforge.islands import IslandConfig, IslandModel

    model = IslandModel(IslandConfig(num_islands=2, parents_per_prompt=2), maximize=True)
    model.register_everywhere(1, (0.0,), 0.0, 10)
    model.register(2, 0, (5.0,), 5.0, 10)
    model.register(3, 1, (3.0,), 3.0, 10)
    rng = np.random.default_rng(0)
    assert any(2 in model.select_parents(0, rng) for _ in range(20))
    assert model.withdraw(2) == []
    assert all(2 not in model.select_parents(0, rng) for _ in range(50))
    assert model.best(0) == (1, 0.0) and model.best(1) == (3, 3.0) and model.is_registered(2)
    assert model.withdraw(2) == []  # again: nothing changes
    assert model.withdraw(1) == [0]  # island 0 held only the seed now: the caller refounds it
    model.refound(0, 3)
    assert model.select_parents(0, rng) == [3]
