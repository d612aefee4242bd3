"""One island: its clusters, its best program, and parent sampling over normalised cluster scores.

Score normalisation (why): the temperature should mean the same thing for a problem scored in whole bins and one
scored in units of 0.001, and for minimise and maximise. So selection never sees raw scores: each cluster's score is
mapped to [0, 1] on its island by (goodness - worst) / (best - worst), where goodness = score when maximising and
-score when minimising. The best cluster gets 1, the worst 0; if all clusters score the same, all get 0 and the
choice is uniform. Multiplying every score by a constant, or flipping the direction, leaves selection unchanged.
The cost: one far outlier squeezes the others together, which the falling temperature then sharpens again.
"""

from __future__ import annotations

import numpy as np

from evoforge.islands.cluster import Cluster, GrowableArray, Signature
from evoforge.islands.softmax import sample_distinct, softmax


class Island:
    """Programs of one island grouped by signature, with per-cluster arrays kept incrementally for fast sampling."""

    __slots__ = ("_sign", "_clusters", "_index", "_scores", "_best_goodness", "_worst_goodness", "_best", "_size")

    def __init__(self, maximize: bool) -> None:
        self._sign = 1.0 if maximize else -1.0
        self._clusters: list[Cluster] = []
        self._index: dict[Signature, int] = {}
        self._scores = GrowableArray(np.float64)  # goodness (sign * score) per cluster, in creation order
        self._best_goodness = -np.inf
        self._worst_goodness = np.inf
        self._best: tuple[int, float] | None = None
        self._size = 0

    def __len__(self) -> int:
        """Programs on the island (each registration, founder included); also drives the temperature schedule."""
        return self._size

    @property
    def clusters(self) -> list[Cluster]:
        """Clusters in the order their signatures first appeared."""
        return self._clusters

    @property
    def best(self) -> tuple[int, float] | None:
        """(program_id, score) of the best program, the earliest one on a tie; None when empty."""
        return self._best

    def cluster_of(self, signature: Signature) -> Cluster | None:
        """Return the cluster holding this signature, or None."""
        i = self._index.get(signature)
        return None if i is None else self._clusters[i]

    def add(self, program_id: int, signature: Signature, score: float, code_length: int) -> None:
        """Add a program to its signature's cluster (creating it); the caller has validated the arguments."""
        i = self._index.get(signature)
        goodness = self._sign * score
        if i is None:
            i = len(self._clusters)
            self._index[signature] = i
            self._clusters.append(Cluster(signature, score))
            self._scores.append(goodness)
            self._best_goodness = max(self._best_goodness, goodness)
            self._worst_goodness = min(self._worst_goodness, goodness)
        self._clusters[i].add(program_id, code_length)
        self._size += 1
        if self._best is None or goodness > self._sign * self._best[1]:
            self._best = (program_id, score)

    def normalised_scores(self) -> np.ndarray:
        """Return each cluster's score mapped to [0, 1] on this island, 1 = best (see the module docstring)."""
        g = self._scores.view()
        spread = self._best_goodness - self._worst_goodness
        if spread <= 0:
            return np.zeros_like(g)
        return (g - self._worst_goodness) / spread

    def cluster_probabilities(self, temperature: float) -> np.ndarray:
        """Return the probability of each cluster (creation order) being drawn first."""
        return softmax(self.normalised_scores(), temperature)

    def power_law_logits(self, alpha: float, children: np.ndarray | None = None, penalty: float = 0.0) -> np.ndarray:
        """Log-weights of "power_law" selection: -alpha * log(rank), rank 1 = best (ties by creation order), minus
        penalty * log(1 + children) when each cluster's children are given."""
        g = self._scores.view()
        order = np.lexsort((np.arange(g.size), -g))  # best first; equal scores: the older cluster first
        rank = np.empty(g.size)
        rank[order] = np.arange(1, g.size + 1)
        logits = -alpha * np.log(rank)
        if children is not None and penalty > 0:
            logits = logits - penalty * np.log1p(children)
        return logits

    def best_first(self) -> np.ndarray:
        """Cluster indices (creation order) from the best score to the worst; equal scores: the older first."""
        g = self._scores.view()
        return np.lexsort((np.arange(g.size), -g))

    def cluster_children(self, children: dict[int, int]) -> np.ndarray:
        """Children recorded for the programs of each cluster, summed (creation order)."""
        return np.array([sum(children.get(int(p), 0) for p in c.program_ids) for c in self._clusters], dtype=float)

    def select(self, k: int, temperature: float, length_temperature: float, rng: np.random.Generator,
               logits: np.ndarray | None = None) -> list[int]:
        """Return min(k, size) distinct program ids, from distinct clusters while there are enough, worst first.

        `logits`: the clusters' log-weights at temperature 1 ("power_law"); None samples FunSearch's normalised
        scores at `temperature`."""
        want = min(k, self._size)
        if logits is None:
            logits = self.normalised_scores()
        else:
            temperature = 1.0
        chosen = [int(c) for c in sample_distinct(logits, temperature, min(want, len(self._clusters)), rng)]
        counts = dict.fromkeys(chosen, 1)
        # Fewer clusters than parents wanted: every cluster is already chosen, so draw further parents from clusters
        # that still have unchosen programs, again by cluster score. Only happens on tiny islands, so it is cheap.
        for _ in range(want - len(chosen)):
            spare = [c for c in chosen if counts[c] < len(self._clusters[c])]
            c = spare[int(sample_distinct(logits[spare], temperature, 1, rng)[0])]
            counts[c] += 1
        parents: list[tuple[float, int]] = []
        for c in chosen:
            for pid in self._clusters[c].sample(counts[c], length_temperature, rng):
                parents.append((self._scores.view()[c], pid))
        parents.sort()  # ascending goodness: worst first, as the prompt lists them; equal scores by program id
        return [pid for _, pid in parents]
