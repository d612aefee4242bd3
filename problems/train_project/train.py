"""A small digit classifier trained by minibatch gradient descent: 64 pixels, one hidden layer of ReLUs, 10 scores.

`train(x, y, seed)` takes training images (`x`: floats (n, 64) in [0, 1]) and their labels (`y`: ints 0-9) and
returns the weights {"w1": (64, HIDDEN), "b1": (HIDDEN,), "w2": (HIDDEN, 10), "b2": (10,)} after exactly `STEPS`
updates. The evolve blocks hold the hyperparameters and the optimiser's update; the budget of steps, the network's
shape, the batches and the gradients are fixed outside them. `python train.py` trains on scikit-learn's digits and
prints the validation loss and accuracy.
"""

import importlib

import numpy as np

STEPS = 300  # the budget: this many updates, whatever the blocks say (a block may not rebind this name)
HIDDEN = 32  # hidden units
MAX_BATCH = 128  # images per update, at most

# EVOLVE-BLOCK-START hyperparameters
LEARNING_RATE = 0.05
BATCH_SIZE = 16
INIT_SCALE = 0.1  # standard deviation of the initial weights
MOMENTUM = 0.0
WEIGHT_DECAY = 0.0
# EVOLVE-BLOCK-END


def update(params, grads, state, step):
    """One step of the optimiser: changes `params` in place from this batch's `grads`; `state` is its memory."""
    # EVOLVE-BLOCK-START update
    for name in params:
        velocity = state.setdefault(name, np.zeros_like(params[name]))
        velocity *= MOMENTUM
        velocity -= LEARNING_RATE * (grads[name] + WEIGHT_DECAY * params[name])
        params[name] += velocity
    # EVOLVE-BLOCK-END


def logits(params, x):
    """The network's 10 scores per image."""
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    return hidden @ params["w2"] + params["b2"]


def loss_and_accuracy(params, x, y):
    """Mean cross-entropy of the softmax of the scores, and the share of images whose top score is the label."""
    scores = logits(params, x)
    scores = scores - scores.max(axis=1, keepdims=True)
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean()), float(np.mean(scores.argmax(axis=1) == y))


def gradients(params, x, y):
    """The gradient of the batch's mean cross-entropy with respect to each weight."""
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    scores = hidden @ params["w2"] + params["b2"]
    scores = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(len(y)), y] -= 1.0
    d_scores = probs / len(y)
    d_hidden = (d_scores @ params["w2"].T) * (hidden > 0)
    return {"w1": x.T @ d_hidden, "b1": d_hidden.sum(axis=0), "w2": hidden.T @ d_scores, "b2": d_scores.sum(axis=0)}


def train(x, y, seed):
    """The weights after STEPS updates, each on a batch of min(BATCH_SIZE, MAX_BATCH) images drawn at random."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    scale = float(INIT_SCALE)
    params = {"w1": rng.normal(0.0, scale, (x.shape[1], HIDDEN)), "b1": np.zeros(HIDDEN),
              "w2": rng.normal(0.0, scale, (HIDDEN, 10)), "b2": np.zeros(10)}
    batch = min(max(int(BATCH_SIZE), 1), MAX_BATCH, len(x))
    state = {}
    for step in range(STEPS):
        rows = rng.choice(len(x), size=batch, replace=False)
        update(params, gradients(params, x[rows], y[rows]), state, step)
    return params


if __name__ == "__main__":
    # By name: an `import sklearn` here would be imported in every candidate's process, which never needs it.
    digits = importlib.import_module("sklearn.datasets").load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    images, labels = digits.data[order] / 16.0, digits.target[order]
    weights = train(images[:1000], labels[:1000], 0)
    loss, accuracy = loss_and_accuracy(weights, images[1000:1397], labels[1000:1397])
    print(f"validation loss {loss:.4f}, accuracy {accuracy:.4f}")
