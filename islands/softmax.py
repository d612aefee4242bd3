"""Softmax and softmax sampling that fail loudly instead of returning NaN probabilities.

A NaN score that slipped into a softmax would silently turn every probability into NaN (or make numpy's sampler
raise far from the cause), so non-finite input is refused here with a message that says where it came from.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def softmax(logits: ArrayLike, temperature: float) -> np.ndarray:
    """Return exp(logits / temperature) normalised to sum to 1, as float64; stable for huge logits and int input."""
    x = _checked_logits(logits)
    _check_temperature(temperature)
    # Subtracting the max keeps exp() in range for any finite logits; the max element becomes exp(0) = 1.
    with np.errstate(over="ignore"):  # x - max overflowing to -inf is fine: exp(-inf) = 0
        z = (x - x.max()) / float(temperature)
    e = np.exp(z)
    return e / e.sum()


def sample_distinct(logits: ArrayLike, temperature: float, k: int, rng: np.random.Generator) -> np.ndarray:
    """Return min(k, n) distinct indices drawn one after another by softmax(logits, temperature), best draw first.

    Uses the Gumbel-top-k trick: adding Gumbel noise to logits / T and taking the k largest is exactly the same
    distribution as drawing k times from the softmax without replacement, in one O(n) pass with no renormalising.
    """
    x = _checked_logits(logits)
    _check_temperature(temperature)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"sample_distinct: k must be an int >= 1, got {k!r}")
    n = x.shape[0]
    if k == 1 or n == 1:
        # One draw (the common within-cluster case): inverse CDF needs one uniform instead of n Gumbel draws.
        with np.errstate(over="ignore"):
            weights = np.exp((x - x.max()) / float(temperature))
        cdf = np.cumsum(weights)
        i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        if i == n:  # u * total rounded up to total: give it to the last element that has any weight
            i = int(np.flatnonzero(weights)[-1])
        return np.array([i])
    with np.errstate(over="ignore"):  # shifted by the max: huge logits give -inf keys at worst, never NaN
        keys = (x - x.max()) / float(temperature) + rng.gumbel(size=n)
    if k >= n:
        return np.argsort(-keys, kind="stable")
    top = np.argpartition(-keys, k - 1)[:k]
    return top[np.argsort(-keys[top], kind="stable")]


def _checked_logits(logits: ArrayLike) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)  # int input would otherwise truncate or overflow in exp()
    if x.ndim != 1:
        raise ValueError(f"softmax: logits must be one-dimensional, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("softmax: logits are empty; there is nothing to choose from")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x))
        raise ValueError(
            f"softmax: logits must be finite, got {x[bad[0]]} at index {bad[0]} ({bad.size} non-finite in all); "
            "a NaN or infinite score reached selection, so register only finite scores"
        )
    return x


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating, np.integer)):
        raise ValueError(f"softmax: temperature must be a number, got {type(temperature).__name__}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"softmax: temperature must be finite and > 0, got {temperature!r}")
