"""Tune a training script under a fixed budget of steps: evolve the marked blocks of `train_project/train.py`.

`train_project/train.py` is an ordinary numpy script (`python train.py` runs it) that trains a 64-32-10 ReLU network
on 1000 handwritten 8 x 8 digits by minibatch gradient descent. Two blocks may change: `hyperparameters` (learning
rate, batch size, initial scale, momentum, weight decay: any module-level settings the update reads) and `update`
(the optimiser's step: `update(params, grads, state, step)` changes the weights in place from one batch's gradients,
with `state` as its memory across steps and `step` for a schedule). The budget (300 updates), the batches (at most
128 images each), the network's shape and the gradients are fixed outside the blocks: the update sees one batch's
gradients, never the images, and the loop that counts the steps is outside its reach, so no block can train longer
or on more data; what the search finds is a better use of the same budget, as in the autoresearch loop.

Metrics: `loss`, the validation cross-entropy of the returned weights on 397 images the candidate never sees (the
primary, lower is better), and `accuracy` on the same images. The held-out score is the same training measured on
the 400 test images.
"""

from __future__ import annotations

import functools

import numpy as np

from evoforge import Project, Scored, Settings

PROJECT = Project("train_project", calls=["train.train"])
PARAMS = {
    "split_seed": 0,  # which images go to training, validation and test
    "train_seed": 0,  # seed of the initial weights and the batches
}
# bound: a loss of 0 gives every validation image probability 1 on its label (a margin past float64's precision),
# which only a network that knew the labels would; no honest network of this size gets all 397 right.
SETTINGS = Settings(maximize=False, time_limit_s=20.0, memory_limit_mb=2048, primary_metric="loss",
                    metrics_maximize={"accuracy": True}, bound=0.0)
TRAIN, VALIDATION = 1000, 397  # of the 1797 images; the last 400 are the held-out test split
SHAPES = {"w1": (64, 32), "b1": (32,), "w2": (32, 10), "b2": (10,)}  # the network train.py builds (HIDDEN = 32)


def solve(case: dict) -> dict:
    """The project's training on the case's training images: the weights, as numpy arrays."""
    return PROJECT.call("train.train", case["x"], case["y"], case["train_seed"])


def _digits(split_seed: int, part: str) -> tuple[np.ndarray, np.ndarray]:
    """One part (train, validation or test) of scikit-learn's bundled digits, pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits  # imported here: it takes a second, and only loading needs it

    digits = load_digits()
    order = np.random.default_rng(split_seed).permutation(len(digits.target))
    bounds = {"train": (0, TRAIN), "validation": (TRAIN, TRAIN + VALIDATION), "test": (TRAIN + VALIDATION, None)}
    chosen = order[slice(*bounds[part])]
    return digits.data[chosen] / 16.0, digits.target[chosen].astype(np.int64)


@functools.lru_cache(maxsize=4)
def _evaluation_split(split_seed: int, part: str) -> tuple[np.ndarray, np.ndarray]:
    # Cached for the trusted side, which scores many candidates; only score() calls it, so no sandbox holds it.
    return _digits(split_seed, part)


def check_weights(output: object) -> dict[str, np.ndarray]:
    """The weights as float arrays, after checking they are the network train.py builds, finite."""
    if not isinstance(output, dict) or set(output) != set(SHAPES):
        raise ValueError(f"expected a dict of the weights {sorted(SHAPES)}")
    weights = {name: np.asarray(output[name]) for name in SHAPES}
    for name, shape in SHAPES.items():
        w = weights[name]
        if w.shape != shape or w.dtype.kind not in "fiu":
            raise ValueError(f"{name} must be numbers of shape {shape}, not {w.dtype} {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{name} holds a value that is not finite (the training diverged)")
    return {name: w.astype(np.float64) for name, w in weights.items()}


def score(case: dict, output: object) -> Scored:
    """Cross-entropy and accuracy on the case's evaluation split, which the sandbox never holds; run here, trusted."""
    w = check_weights(output)
    x, y = _evaluation_split(case["split_seed"], case["evaluate_on"])
    scores = np.maximum(x @ w["w1"] + w["b1"], 0.0) @ w["w2"] + w["b2"]
    scores = scores - scores.max(axis=1, keepdims=True)
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(y)), y].mean())
    wrong = int(np.sum(scores.argmax(axis=1) != y))
    return Scored({"loss": loss, "accuracy": 1.0 - wrong / len(y)},
                  f"{case['evaluate_on']} loss {loss:.4f}; {wrong} of {len(y)} images misread")


def _case(params: dict, evaluate_on: str) -> dict:
    # Only the training images go into the case: the candidate's process gets them as arguments of train.train,
    # may not import sklearn nor open files, and never holds the validation or test images.
    x, y = _digits(params["split_seed"], "train")
    return {"x": x, "y": y, "train_seed": params["train_seed"], "split_seed": params["split_seed"],
            "evaluate_on": evaluate_on}


def inputs(params: dict) -> dict[str, dict]:
    return {"validation": _case(params, "validation")}


def held_out_inputs(params: dict) -> dict[str, dict]:
    """The same training, scored on 400 test images: a gap to validation shows over-tuning to it."""
    return {"test": _case(params, "test")}
