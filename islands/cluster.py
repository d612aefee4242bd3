"""A cluster: the programs of one island that share a signature (the same score on every input).

Programs with the same signature behave the same on every input, so sampling picks a cluster first (by score) and
then a program inside it (shorter preferred), which keeps one behaviour that many programs reach from crowding out
the rest of the island.
"""

from __future__ import annotations

import numpy as np

from evoforge.islands.softmax import sample_distinct, softmax

Signature = tuple[float, ...]


class GrowableArray:
    """A 1-D numpy array with amortised O(1) append, so per-call views never rebuild a Python list."""

    __slots__ = ("_data", "_size")

    def __init__(self, dtype: type, capacity: int = 4) -> None:
        self._data: np.ndarray = np.empty(capacity, dtype=dtype)
        self._size = 0

    def append(self, value: float | int) -> None:
        """Add one value at the end, doubling the buffer when it is full."""
        if self._size == self._data.shape[0]:
            grown = np.empty(2 * self._data.shape[0], dtype=self._data.dtype)
            grown[: self._size] = self._data
            self._data = grown
        self._data[self._size] = value
        self._size += 1

    def view(self) -> np.ndarray:
        """Return the filled part (a view: do not keep it across appends)."""
        return self._data[: self._size]

    def __len__(self) -> int:
        return self._size


class Cluster:
    """The programs of one signature on one island, with their code lengths for the shorter-is-better choice."""

    __slots__ = ("signature", "score", "_ids", "_lengths", "_min_length", "_max_length")

    def __init__(self, signature: Signature, score: float) -> None:
        self.signature = signature
        self.score = score
        self._ids = GrowableArray(np.int64)
        self._lengths = GrowableArray(np.float64)
        self._min_length = np.inf
        self._max_length = -np.inf

    def add(self, program_id: int, code_length: int) -> None:
        """Add a program to the cluster."""
        self._ids.append(program_id)
        self._lengths.append(code_length)
        self._min_length = min(self._min_length, code_length)
        self._max_length = max(self._max_length, code_length)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def program_ids(self) -> np.ndarray:
        """Program ids in registration order (a view)."""
        return self._ids.view()

    @property
    def lengths(self) -> np.ndarray:
        """Code lengths aligned with `program_ids` (a view)."""
        return self._lengths.view()

    def length_probabilities(self, length_temperature: float) -> np.ndarray:
        """Return each program's selection probability: softmax of -normalised length over the temperature."""
        return softmax(self._length_logits(), length_temperature)

    def sample(self, m: int, length_temperature: float, rng: np.random.Generator) -> list[int]:
        """Return min(m, len) distinct program ids, shorter programs more likely (FunSearch's within-cluster rule)."""
        if len(self) == 1:
            return [int(self._ids.view()[0])]  # no draw: nothing to choose, and no rng state spent
        picks = sample_distinct(self._length_logits(), length_temperature, m, rng)
        ids = self._ids.view()
        return [int(ids[i]) for i in picks]

    def _length_logits(self) -> np.ndarray:
        # FunSearch divides by the longest length, not the range, so a difference is judged relative to program
        # size: 10 characters matter in a 50-character program and hardly at all in a 5,000-character one.
        return -(self._lengths.view() - self._min_length) / (self._max_length + 1e-6)
