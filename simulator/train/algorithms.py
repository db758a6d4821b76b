"""Training algorithms for one analog weight matrix, written as optimisers of W [out, in].

Each optimiser keeps its arrays and exposes `weight()` (the effective weight the forward
pass uses) and `step(x, d)` (d = dLoss/dy for input x: the gradient is d x^T).

* `fp`: plain floating-point SGD, W -= lr d x^T (the reference).
* `sgd`: Analog SGD: the same update asked of one pulsed tile. With asymmetric responses
  its expected step is -lr (g F(W) - |g| G(W)) with F = (q+ + q-)/2, G = (q+ - q-)/2 in
  step units, so it settles where g F = |g| G: biased toward the symmetric point (Wu et al.,
  arXiv 2502.06309).
* `tiki-taka`: array A takes the gradient pulses; every `transfer_every` steps one column
  of A is read (one-hot input, read noise) relative to A's symmetric point (a reference
  array programmed to it, as in Tiki-Taka practice; the range centre for a device with no
  interior symmetric point) and added to C by a pulse update of rate `transfer_lr`. The
  forward pass uses W = C.
* `residual`: residual learning: the same two arrays, but the forward pass and the
  gradient use W = C + gamma (A - A_ref), gamma > 0, so A learns the residual that C
  still misses (the bilevel scheme of arXiv 2502.06309).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import UserError
from simulator.hw.schema import PulsedDeviceConfig
from simulator.train.tile import AnalogTile, PulseSettings

ALGORITHMS = ("fp", "sgd", "tiki-taka", "residual")


@dataclass(frozen=True)
class TrainSettings:
    lr: float = 0.05
    transfer_every: int = 1  # steps between two column transfers (tiki-taka, residual)
    transfer_lr: float = 0.05
    gamma: float = 0.5  # residual: W = C + gamma A
    read_noise: float = 0.01  # std of a transfer read, device units

    def __post_init__(self):
        for name in ("lr", "transfer_lr", "gamma"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(self, name)!r}")
        if self.transfer_every < 1:
            raise UserError(f"--transfer-every: expected a positive integer, got {self.transfer_every!r}")
        if self.read_noise < 0:
            raise UserError(f"--read-noise: expected a non-negative number, got {self.read_noise!r}")


class FPSGD:
    def __init__(self, init: np.ndarray, settings: TrainSettings):
        self.w = np.array(init, dtype=np.float64)
        self.settings = settings

    def weight(self) -> np.ndarray:
        return self.w

    def step(self, x: np.ndarray, d: np.ndarray) -> None:
        self.w -= self.settings.lr * np.outer(d, x)

    def pulses(self) -> int:
        return 0


class AnalogSGD:
    def __init__(self, tile: AnalogTile, settings: TrainSettings):
        self.tile = tile
        self.settings = settings

    def weight(self) -> np.ndarray:
        return self.tile.weights

    def step(self, x: np.ndarray, d: np.ndarray) -> None:
        self.tile.update(x, d, self.settings.lr)

    def pulses(self) -> int:
        return self.tile.pulses


class TikiTaka:
    """Two arrays: A accumulates, C holds the weight; `gamma` = 0 is Tiki-Taka, > 0 residual."""

    def __init__(self, a: AnalogTile, c: AnalogTile, settings: TrainSettings, gamma: float):
        self.a, self.c = a, c
        self.settings = settings
        self.gamma = gamma
        self.steps = 0
        self.next_column = 0
        self._one_hot = np.zeros(a.weights.shape[1])

    def weight(self) -> np.ndarray:
        if self.gamma == 0:
            return self.c.weights
        return self.c.weights + self.gamma * (self.a.weights - self.a.reference)

    def step(self, x: np.ndarray, d: np.ndarray) -> None:
        self.a.update(x, d, self.settings.lr)
        self.steps += 1
        if self.steps % self.settings.transfer_every == 0:
            self._transfer()

    def _transfer(self) -> None:
        j = self.next_column
        value = self.a.read_column(j, self.settings.read_noise) - self.a.reference[:, j]
        self._one_hot[j] = 1.0
        self.c.update(self._one_hot, -value, self.settings.transfer_lr)  # C += transfer_lr A e_j^T
        self._one_hot[j] = 0.0
        self.next_column = (j + 1) % self._one_hot.size

    def pulses(self) -> int:
        return self.a.pulses + self.c.pulses


def make_optimizer(algorithm: str, init: np.ndarray, device: PulsedDeviceConfig, pulses: PulseSettings,
                   settings: TrainSettings, seed: int, name: int):
    """The optimiser of one weight matrix; `name` separates the device draws of layers."""
    if algorithm not in ALGORITHMS:
        raise UserError(f"--algorithm: expected one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if algorithm == "fp":
        return FPSGD(init, settings)
    shape = np.shape(init)
    if algorithm == "sgd":
        return AnalogSGD(AnalogTile.create(device, shape, pulses, seed, 2 * name, init), settings)
    c = AnalogTile.create(device, shape, pulses, seed, 2 * name, init)
    a = AnalogTile.create(device, shape, pulses, seed, 2 * name + 1, "symmetric")
    return TikiTaka(a, c, settings, 0.0 if algorithm == "tiki-taka" else settings.gamma)
