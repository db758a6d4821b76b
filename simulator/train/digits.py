"""An MLP on scikit-learn's bundled 8x8 digits (1797 images, no download), trained on
analog tiles: 64 (+1 bias input) -> 32 tanh (+1) -> 10 softmax, one weight matrix per tile,
per-sample updates (batch 1, as pulse updates are). Pixels are scaled to [0, 1]."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import UserError
from simulator.hw.schema import PulsedDeviceConfig
from simulator.train.algorithms import TrainSettings, make_optimizer
from simulator.train.tile import PulseSettings

HIDDEN = 32
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class DigitsData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(seed: int) -> DigitsData:
    """The digits set split 80/20 by a seeded permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("--task digits needs scikit-learn (pip install scikit-learn)") from None
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    order = np.random.default_rng([seed, 13]).permutation(len(y))
    n_test = int(round(TEST_FRACTION * len(y)))
    test, train = order[:n_test], order[n_test:]
    return DigitsData(x[train], y[train], x[test], y[test])


def _with_bias(v: np.ndarray) -> np.ndarray:
    return np.append(v, 1.0)


def _glorot(rng, outputs, inputs):
    limit = np.sqrt(6.0 / (inputs + outputs))
    return rng.uniform(-limit, limit, (outputs, inputs))


@dataclass
class DigitsRun:
    algorithm: str
    seed: int
    losses: list  # mean training cross-entropy per epoch (running, during the epoch)
    test_accuracy: list  # after each epoch
    pulses: int


def _forward(w1, w2, x):
    h = np.tanh(np.asarray(w1) @ _with_bias(x))
    logits = np.asarray(w2) @ _with_bias(h)
    p = np.exp(logits - logits.max())
    return h, p / p.sum()


def accuracy(w1, w2, x, y) -> float:
    h = np.tanh(np.hstack([x, np.ones((len(x), 1))]) @ np.asarray(w1).T)
    logits = np.hstack([h, np.ones((len(h), 1))]) @ np.asarray(w2).T
    return float(np.mean(np.argmax(logits, axis=1) == y))


def run_digits(algorithm: str, device: PulsedDeviceConfig, pulses: PulseSettings, settings: TrainSettings,
               seed: int, epochs: int = 10, progress=None) -> DigitsRun:
    if epochs < 1:
        raise UserError(f"--epochs: expected a positive integer, got {epochs!r}")
    data = load_data(seed)
    rng = np.random.default_rng([seed, 17])
    inputs = data.x_train.shape[1]
    layer1 = make_optimizer(algorithm, _glorot(rng, HIDDEN, inputs + 1), device, pulses, settings, seed, name=1)
    layer2 = make_optimizer(algorithm, _glorot(rng, 10, HIDDEN + 1), device, pulses, settings, seed, name=2)
    losses, accuracies = [], []
    for _ in range(epochs):
        total = 0.0
        for n in rng.permutation(len(data.y_train)):
            x, label = data.x_train[n], data.y_train[n]
            h, p = _forward(layer1.weight(), layer2.weight(), x)
            total -= np.log(max(p[label], 1e-12))
            d2 = p.copy()
            d2[label] -= 1.0  # dLoss/dlogits of softmax cross-entropy
            d1 = (np.asarray(layer2.weight())[:, :HIDDEN].T @ d2) * (1.0 - h * h)
            layer2.step(_with_bias(h), d2)
            layer1.step(_with_bias(x), d1)
        losses.append(total / len(data.y_train))
        accuracies.append(accuracy(layer1.weight(), layer2.weight(), data.x_test, data.y_test))
        if progress:
            progress()
    return DigitsRun(algorithm, seed, losses, accuracies, layer1.pulses() + layer2.pulses())
