"""Recover the law of the swinging pendulum from noisy measurements.

On several planets we timed pendulums of length L (metres) released from rest at amplitude theta (radians, up to 90
degrees), with about 1% measurement noise on each period. `features(length, theta)` returns an (m, k) array of
terms, 1 <= k <= 6; the period is modelled as a linear combination of these terms whose coefficients are fitted
(least squares on the relative error) to each planet's measurements separately, so gravity need not be known. The
score is the RMS relative error, in %, of the fitted model's periods at fresh points against the true periods; lower
is better. The seed is the small-angle law T = c * sqrt(L). A formula that is the true law also holds at amplitudes
and on planets it was never fitted on; a curve fit does not. The evolved code sees its arguments, numpy as `np` and
the standard modules it imports (math, itertools, functools, collections, heapq, bisect, random, ...); nothing else
of this file.
"""

from __future__ import annotations

import numpy as np

from evoforge import Settings, evolve

PARAMS = {
    "fit_points": 200,  # noisy measurements per planet that the coefficients are fitted to
    "check_points": 200,  # fresh points per planet that the score is taken on
    "noise": 0.01,  # relative standard deviation of the measured periods
    "seed": 0,
}
# bound: half the error of the true law itself (0.04 %, a floor set by the noise): no honest fit gets below it.
SETTINGS = Settings(maximize=False, time_limit_s=30.0, memory_limit_mb=2048, numba=False, bound=0.02)
MAX_TERMS = 6
# Surface gravity (m/s^2). Training planets, then planets only the held-out report uses.
TRAIN_PLANETS = {"earth": 9.81, "mars": 3.71, "moon": 1.62}
HELD_OUT_PLANETS = {"jupiter": 24.79, "titan": 1.35}
MEASURED = (np.radians(5.0), np.radians(90.0))  # amplitudes of the measurements, and of the training checks
WIDE = (np.radians(90.0), np.radians(170.0))  # amplitudes of the held-out checks: an extrapolation
# RMS relative error in % of the true law refitted to the noisy data at the default PARAMS (a floor set by the
# noise): for reference in reports, never used in scoring.
REFERENCES = {"true_law": 0.04}


@evolve
def features(length: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Returns the terms whose fitted linear combination gives the period of the pendulum."""
    amplitude_factor = np.ones_like(theta)  # small swings: the period does not depend on the amplitude
    return np.stack([np.sqrt(length) * amplitude_factor], axis=1)


def _terms(length: list[float], theta: list[float]) -> np.ndarray:
    columns = np.asarray(features(np.asarray(length, dtype=np.float64), np.asarray(theta, dtype=np.float64)),
                         dtype=np.float64)
    if columns.ndim != 2 or columns.shape[0] != len(length) or not 1 <= columns.shape[1] <= MAX_TERMS:
        raise ValueError(f"features() must return an ({len(length)}, k) array with 1 <= k <= {MAX_TERMS}, "
                         f"got shape {columns.shape}")
    if not np.all(np.isfinite(columns)):
        raise ValueError("features() returned a non-finite value")
    return columns


def solve(case: dict) -> list[float]:
    """Fit the coefficients to the noisy periods (relative least squares), then predict at the check points."""
    fit = case["fit"]
    measured = np.asarray(fit["period"], dtype=np.float64)
    terms = _terms(fit["length"], fit["theta"]) / measured[:, None]
    coefficients = np.linalg.lstsq(terms, np.ones_like(measured), rcond=None)[0]
    return (_terms(case["check"]["length"], case["check"]["theta"]) @ coefficients).tolist()


# The law lives here, on the trusted side, and the cases carry no true periods at the check points. The evolved
# code cannot call true_period(): it runs in a process of its own that sees nothing of this file but `np`.
def true_period(length: np.ndarray, theta: np.ndarray, gravity: float) -> np.ndarray:
    """The exact period, 2 pi sqrt(L / g) / AGM(1, cos(theta / 2)): the complete elliptic integral by Gauss's AGM."""
    a, b = np.ones_like(theta), np.cos(theta / 2)
    for _ in range(40):  # the AGM converges quadratically; 40 steps are exact to the last bit for theta < 179.9 deg
        a, b = (a + b) / 2, np.sqrt(a * b)
    return 2 * np.pi * np.sqrt(length / gravity) / a


def score(case: dict, output: object) -> float:
    """RMS relative error, in %, of the predicted periods at the check points against the true periods."""
    check = case["check"]
    predicted = np.asarray(output)
    if predicted.shape != (len(check["length"]),) or predicted.dtype.kind not in "fiu":
        raise ValueError(f"expected {len(check['length'])} predicted periods, got shape {predicted.shape}")
    if not np.all(np.isfinite(predicted)):
        raise ValueError("a predicted period is not finite")
    truth = true_period(np.asarray(check["length"]), np.asarray(check["theta"]), case["gravity"])
    return float(100.0 * np.sqrt(np.mean(((predicted - truth) / truth) ** 2)))


def _sample(rng: np.random.Generator, count: int, amplitudes: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    length = np.exp(rng.uniform(np.log(0.1), np.log(10.0), count))
    return length, rng.uniform(*amplitudes, count)


def _case(params: dict, stream: int, gravity: float, checks: tuple[float, float]) -> dict:
    rng = np.random.default_rng([params["seed"], stream])
    length, theta = _sample(rng, params["fit_points"], MEASURED)
    period = true_period(length, theta, gravity) * (1 + params["noise"] * rng.standard_normal(len(length)))
    check_length, check_theta = _sample(rng, params["check_points"], checks)
    return {"gravity": gravity,
            "fit": {"length": length.tolist(), "theta": theta.tolist(), "period": period.tolist()},
            "check": {"length": check_length.tolist(), "theta": check_theta.tolist()}}


def inputs(params: dict) -> dict[str, dict]:
    """Each training planet: noisy measurements, and fresh checks at the measured amplitudes."""
    return {name: _case(params, i, g, MEASURED) for i, (name, g) in enumerate(TRAIN_PLANETS.items())}


def held_out_inputs(params: dict) -> dict[str, dict]:
    """Every planet, new ones included, fitted on measured amplitudes and checked at wide ones (90-170 degrees)."""
    planets = {**TRAIN_PLANETS, **HELD_OUT_PLANETS}
    return {f"{name}_wide": _case(params, 100 + i, g, WIDE) for i, (name, g) in enumerate(planets.items())}
