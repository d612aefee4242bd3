"""The FunSearch island model over program ids: register, select parents, and reset the worst islands.

Pure in-memory state with no database and no clock. Its whole state is a function of the sequence of `register`
and `apply_reset` calls, so a resumed run rebuilds it by replaying them from its database. Randomness comes only
from the `numpy.random.Generator` passed to each call. Not thread-safe: the controller's event loop owns it.

Which island to sample from is the caller's choice: `pick_island(rng)` draws one uniformly (FunSearch), and
round-robin over `range(num_islands)` is equally fine.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evoforge.islands.cluster import Signature
from evoforge.islands.config import IslandConfig
from evoforge.islands.island import Island
from evoforge.islands.reset import ResetPlan, plan_reset

MATE_POOL = 3
"""A crossover's second parent is drawn from this many high scorers, so it is good but not always the same one."""
MATE_FLOOR = 0.5
"""A mate from the parent's own island scores in the upper half of the island's range (normalised score >= this):
mating with a program far worse than the parent wastes the prompt (measured: bin packing's early clusters other than
the seed's are mostly broken heuristics)."""


class EmptyIslandError(LookupError):
    """Parents were requested from an island that has no programs yet."""


class IslandModel:
    """Islands of programs clustered by signature, with FunSearch's parent sampling and periodic resets."""

    def __init__(self, config: IslandConfig, maximize: bool) -> None:
        if not isinstance(config, IslandConfig):
            raise TypeError(f"IslandModel: config must be an IslandConfig, got {type(config).__name__}")
        if not isinstance(maximize, bool):
            raise TypeError(f"IslandModel: maximize must be True or False, got {maximize!r}")
        self.config = config
        self.maximize = maximize
        self._islands = [Island(maximize) for _ in range(config.num_islands)]
        self._programs: dict[int, tuple[Signature, float, int]] = {}  # kept so a reset can copy a founder
        self._num_registered = 0
        self._since_reset = 0
        self._children: dict[int, int] = {}  # program id -> programs recorded with it as a parent

    # ---- updates -------------------------------------------------------------------------------------------------

    def register(
        self, program_id: int, island: int, signature: Sequence[float], score: float, code_length: int
    ) -> None:
        """Add a valid program to an island's cluster for its signature; each program id is registered once."""
        pid = _as_int("program_id", program_id)
        i = self._check_island(island)
        if pid in self._programs:
            raise ValueError(
                f"IslandModel.register: program {pid} is already registered; register each program once "
                "(apply_reset copies founders itself)"
            )
        sig = _as_signature(signature)
        s = _as_score(score)
        length = _as_int("code_length", code_length)
        if length < 0:
            raise ValueError(f"IslandModel.register: code_length must be >= 0, got {length}")
        cluster = self._islands[i].cluster_of(sig)
        if cluster is not None and cluster.score != s:
            raise ValueError(
                f"IslandModel.register: program {pid} has score {s!r} but signature {sig} already scored "
                f"{cluster.score!r} on island {i}; the score must be a function of the signature"
            )
        self._islands[i].add(pid, sig, s, length)
        self._programs[pid] = (sig, s, length)
        self._num_registered += 1
        self._since_reset += 1

    def register_everywhere(self, program_id: int, signature: Sequence[float], score: float,
                            code_length: int) -> None:
        """Put one program (the seed) on every island, FunSearch's start; it counts as one registration."""
        self.register(program_id, 0, signature, score, code_length)
        sig, s, length = self._programs[program_id]
        for island in self._islands[1:]:
            island.add(program_id, sig, s, length)

    def withdraw(self, program_id: int) -> list[int]:
        """Take a program out of selection on every island that holds it (a person rejected it during the run).

        Each such island is rebuilt from its other programs in the order they were recorded (program ids grow
        with it), as if the program had never been registered there. Returns the islands left empty, which the
        caller refounds (`refound`) before sampling them. The program stays known, so a reset plan recorded
        earlier that names it is still understood.
        """
        pid = _as_int("program_id", program_id)
        emptied = []
        for i, island in enumerate(self._islands):
            members = [(int(q), c.signature, c.score, int(length)) for c in island.clusters
                       for q, length in zip(c.program_ids, c.lengths)]
            if all(q != pid for q, *_ in members):
                continue
            rebuilt = Island(self.maximize)
            for q, sig, score, length in sorted(members, key=lambda m: m[0]):
                if q != pid:
                    rebuilt.add(q, sig, score, length)
            self._islands[i] = rebuilt
            if len(rebuilt) == 0:
                emptied.append(i)
        return emptied

    def is_registered(self, program_id: int) -> bool:
        """Whether the program was ever registered (withdrawn ones included)."""
        return program_id in self._programs

    def refound(self, island: int, founder: int) -> None:
        """Start an island afresh from one registered program (an island a withdrawal emptied)."""
        i = self._check_island(island)
        if founder not in self._programs:
            raise ValueError(f"IslandModel.refound: program {founder} was never registered")
        sig, score, length = self._programs[founder]
        self._islands[i] = Island(self.maximize)
        self._islands[i].add(founder, sig, score, length)

    def note_offspring(self, parent_ids: Sequence[int]) -> None:
        """Count one more child of each parent (any outcome), for `offspring_penalty`; replayed on resume."""
        for pid in parent_ids:
            p = _as_int("parent_id", pid)
            self._children[p] = self._children.get(p, 0) + 1

    def entry(self, program_id: int) -> tuple[Signature, float] | None:
        """(signature, score) of a registered program, or None; a behavioural twin registers with these."""
        found = self._programs.get(program_id)
        return None if found is None else (found[0], found[1])

    def children(self, program_id: int) -> int:
        """Programs recorded with this one as a parent."""
        return self._children.get(program_id, 0)

    def needs_reset(self) -> bool:
        """Return True once `reset_period` programs were registered since the last reset (or the start)."""
        return self._since_reset >= self.config.reset_period

    def plan_reset(self, rng: np.random.Generator) -> ResetPlan:
        """Return which islands to reset (the worst half by best score) and each one's founder; changes nothing."""
        bests = [isl.best for isl in self._islands]
        sign = 1.0 if self.maximize else -1.0
        goodness = [-math.inf if b is None else sign * b[1] for b in bests]
        return plan_reset(goodness, [None if b is None else b[0] for b in bests], rng)

    def apply_reset(self, plan: ResetPlan) -> None:
        """Clear the plan's islands, register each one's founder alone in it, and restart the reset counter."""
        if not isinstance(plan, ResetPlan):
            raise TypeError(f"IslandModel.apply_reset: expected a ResetPlan, got {type(plan).__name__}")
        for i in (*plan.islands, *plan.source_islands):
            self._check_island(i)
        for f in plan.founders:
            if f not in self._programs:
                raise ValueError(f"IslandModel.apply_reset: founder {f} was never registered; the plan is not ours")
        for i, founder in zip(plan.islands, plan.founders):
            sig, score, length = self._programs[founder]
            self._islands[i] = Island(self.maximize)
            self._islands[i].add(founder, sig, score, length)
        self._since_reset = 0

    # ---- sampling ------------------------------------------------------------------------------------------------

    def pick_island(self, rng: np.random.Generator) -> int:
        """Return an island drawn uniformly at random (callers may use round-robin instead)."""
        return int(rng.integers(self.config.num_islands))

    def temperature(self, island: int) -> float:
        """Return the island's cluster temperature: init * (1 - (n % period) / period), n = programs on it."""
        n = len(self._islands[self._check_island(island)])
        period = self.config.temperature_period
        return self.config.temperature_init * (1 - (n % period) / period)

    def select_parents(self, island: int, rng: np.random.Generator) -> list[int]:
        """Return up to k parent ids from distinct clusters where possible, ordered worst to best score; with
        `elite_share`, sometimes the island's best program replaces the worst of them (and comes last)."""
        i = self._check_island(island)
        if len(self._islands[i]) == 0:
            raise EmptyIslandError(
                f"IslandModel.select_parents: island {i} has no programs; register the seed program on every "
                "island before sampling"
            )
        isl, config = self._islands[i], self.config
        logits = None
        if config.selection == "power_law":
            children = isl.cluster_children(self._children) if config.offspring_penalty > 0 else None
            logits = isl.power_law_logits(config.power_alpha, children, config.offspring_penalty)
        parents = isl.select(config.parents_per_prompt, self.temperature(i), config.length_temperature, rng, logits)
        best = isl.best if config.elite_scope == "island" else self.best()
        # Only draws when the share is on, so the default's random stream (and every stored run) is unchanged.
        if config.elite_share > 0 and best is not None and best[0] not in parents \
                and rng.random() < config.elite_share:
            elite = best[0] if config.elite_member == "first" else self._any_elite(i, best[0], rng)
            if elite not in parents:
                parents = [*parents[1:], elite] if len(parents) >= config.parents_per_prompt else [*parents, elite]
        return parents

    def _any_elite(self, island: int, best: int, rng: np.random.Generator) -> int:
        """A program drawn uniformly from the best program's cluster (elite_member="any"): on `island` when it holds
        the program, else on the lowest island that does (elite_scope="all")."""
        sig = self._programs[best][0]
        order = [self._islands[island], *self._islands]
        cluster = next(c for isl in order if (c := isl.cluster_of(sig)) is not None and best in c.program_ids)
        ids = cluster.program_ids
        return int(ids[int(rng.integers(len(ids)))]) if len(ids) > 1 else best

    def select_mate(self, island: int, parent: int, rng: np.random.Generator, pool: int = MATE_POOL) -> int | None:
        """Return a second parent for a crossover with `parent`: a high scorer that behaves differently, drawn
        uniformly from the `pool` best of the other islands' best programs, or, with none of those, of the best
        programs of this island's other clusters in the upper half of its scores (MATE_FLOOR); None when there is
        no such program."""
        i = self._check_island(island)
        own = self._programs[_as_int("parent", parent)][0]
        ranked = self.bests_elsewhere(i, lambda pid: self._programs[pid][0] != own)[:pool]
        if not ranked:  # one island, or the others' bests all behave like the parent: its island's other clusters
            isl = self._islands[i]
            normalised = isl.normalised_scores()
            ranked = []
            for c in isl.best_first():  # stops after pool + 1 clusters at most: only one holds the parent
                if len(ranked) == pool or normalised[c] < MATE_FLOOR:
                    break
                if isl.clusters[c].signature != own:
                    ranked.append(int(isl.clusters[c].program_ids[0]))
        if not ranked:
            return None
        return ranked[int(rng.integers(len(ranked)))]

    def bests_elsewhere(self, island: int, keep: Callable[[int], bool] = lambda pid: True) -> list[int]:
        """The best program of every island but `island` that `keep` accepts, best first (the lower id on a tie):
        high scorers from elsewhere, for inspirations and crossover mates."""
        i = self._check_island(island)
        sign = 1.0 if self.maximize else -1.0
        bests = {b[0]: b[1] for j, isl in enumerate(self._islands) if j != i and (b := isl.best) is not None
                 and keep(b[0])}
        return sorted(bests, key=lambda pid: (-sign * bests[pid], pid))

    def cluster_probabilities(self, island: int) -> dict[Signature, float]:
        """Return each cluster's probability of being drawn first on the island at its current temperature."""
        isl = self._islands[self._check_island(island)]
        if len(isl) == 0:
            return {}
        probs = isl.cluster_probabilities(self.temperature(island))
        return {c.signature: float(p) for c, p in zip(isl.clusters, probs)}

    # ---- queries -------------------------------------------------------------------------------------------------

    @property
    def num_registered(self) -> int:
        """Return how many `register` calls succeeded (founders copied by resets are not counted)."""
        return self._num_registered

    @property
    def registrations_since_reset(self) -> int:
        """Return the counter that `needs_reset` compares with `reset_period`."""
        return self._since_reset

    def best(self, island: int | None = None) -> tuple[int, float] | None:
        """Return (program_id, score) of the best program on an island, or on all (lowest island on a tie)."""
        if island is not None:
            return self._islands[self._check_island(island)].best
        sign = 1.0 if self.maximize else -1.0
        result: tuple[int, float] | None = None
        for isl in self._islands:
            b = isl.best
            if b is not None and (result is None or sign * b[1] > sign * result[1]):
                result = b
        return result

    def island_sizes(self) -> list[int]:
        """Return the number of programs on each island."""
        return [len(isl) for isl in self._islands]

    def island_best_scores(self) -> list[float | None]:
        """Return each island's best score (None for an empty island)."""
        return [None if isl.best is None else isl.best[1] for isl in self._islands]

    def snapshot(self) -> dict[str, Any]:
        """Return the full state as plain JSON-able data, for checks (replay gives an equal snapshot) and debugging."""
        return {
            "maximize": self.maximize,
            "num_registered": self._num_registered,
            "registrations_since_reset": self._since_reset,
            "islands": [
                {
                    "size": len(isl),
                    "best": None if isl.best is None else list(isl.best),
                    "clusters": [
                        {
                            "signature": list(c.signature),
                            "score": c.score,
                            "program_ids": c.program_ids.tolist(),
                            "lengths": [int(x) for x in c.lengths],
                        }
                        for c in isl.clusters
                    ],
                }
                for isl in self._islands
            ],
        }

    def _check_island(self, island: int) -> int:
        i = _as_int("island", island)
        if not 0 <= i < self.config.num_islands:
            last = self.config.num_islands - 1
            raise IndexError(f"IslandModel: island {i} is out of range; this model has islands 0..{last}")
        return i


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"IslandModel: {name} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"IslandModel: {name} must be an int, got {type(value).__name__} {value!r}") from None


def _as_score(score: Any) -> float:
    try:
        s = float(score)
    except (TypeError, ValueError):
        raise TypeError(f"IslandModel.register: score must be a number, got {type(score).__name__}") from None
    if not math.isfinite(s):
        raise ValueError(f"IslandModel.register: score must be finite, got {s}; register only status-ok programs")
    return s


def _as_signature(signature: Sequence[float]) -> Signature:
    try:
        sig = tuple(float(x) for x in signature)
    except (TypeError, ValueError):
        raise TypeError(f"IslandModel.register: signature must be a sequence of numbers, got {signature!r}") from None
    if not sig:
        raise ValueError("IslandModel.register: signature is empty; it needs one score per input")
    if not all(math.isfinite(x) for x in sig):
        raise ValueError(f"IslandModel.register: signature {sig} has a non-finite entry; register only ok programs")
    return sig
