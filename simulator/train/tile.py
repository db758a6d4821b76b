"""An analog training tile: a [out, in] crossbar of pulsed devices, updated by pulse trains
and read with noise. The weight of a device is its state in device units (aihwkit's
convention: one device per weight, the differential pair folded into the response)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.analog import pulse_update, pulsed
from simulator.errors import UserError
from simulator.hw.schema import PulsedDeviceConfig

UPDATE_MODES = ("stochastic", "expected")


@dataclass
class PulseSettings:
    """How a tile is written: pulse-train bit length, stochastic or expected-value update."""

    bl: int = 31
    mode: str = "stochastic"  # stochastic | expected

    def __post_init__(self):
        if self.mode not in UPDATE_MODES:
            raise UserError(f"--update: expected one of {', '.join(UPDATE_MODES)}, got {self.mode!r}")
        if not 1 <= self.bl <= pulse_update.MAX_BL:
            raise UserError(f"--bl: expected 1..{pulse_update.MAX_BL}, got {self.bl}")


@dataclass
class AnalogTile:
    """Weights W (float32 [out, in]) on pulsed devices; `update` asks for W -= lr d x^T."""

    weights: np.ndarray
    devices: pulsed.PulsedArray
    dw_min: float
    settings: PulseSettings
    stream_key: int
    read_rng: np.random.Generator
    updates: int = 0
    pulses: int = 0
    symmetric: np.ndarray = field(init=False)  # each device's symmetric point (NaN: none)
    reference: np.ndarray = field(init=False)  # where a reference array reads zero

    def __post_init__(self):
        """The reference is the symmetric point where it lies inside the range; a device
        without one (a constant step drifts to a bound) is referenced to its range centre."""
        self.symmetric = pulsed.symmetric_point(self.devices)
        span = self.devices.w_max - self.devices.w_min
        inside = (np.isfinite(self.symmetric) & (self.symmetric > self.devices.w_min + 1e-3 * span)
                  & (self.symmetric < self.devices.w_max - 1e-3 * span))
        centre = 0.5 * (self.devices.w_min + self.devices.w_max)
        self.reference = np.where(inside, self.symmetric, centre).astype(np.float32)

    @classmethod
    def create(cls, cfg: PulsedDeviceConfig, shape: tuple[int, int], settings: PulseSettings, seed: int,
               name: int, init: np.ndarray | str = "symmetric") -> "AnalogTile":
        """A tile with its own device draw and streams (seed, name); starts at `init`:
        given weights (clipped to each device's bounds) or each device's reference point."""
        rng = np.random.default_rng([seed, name, 0])
        devices = pulsed.sample_array(cfg, shape, rng)
        tile = cls(np.zeros(shape, dtype=np.float32), devices, cfg.dw_min, settings,
                   pulse_update.base_key(seed, name, 1), np.random.default_rng([seed, name, 2]))
        start = tile.reference if isinstance(init, str) else np.asarray(init, dtype=np.float32)
        tile.weights[...] = np.clip(start, devices.w_min, devices.w_max)
        return tile

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> None:
        if self.settings.mode == "expected":
            pulse_update.expected_update(self.weights, self.devices, x, d, lr, self.settings.bl, self.dw_min)
        else:
            key = pulse_update.update_key(self.stream_key, self.updates)
            self.pulses += pulse_update.stochastic_update(self.weights, self.devices, x, d, lr,
                                                          self.settings.bl, self.dw_min, key)
        self.updates += 1

    def read_column(self, j: int, noise: float) -> np.ndarray:
        """Column j read with one-hot input e_j, Gaussian read noise of std `noise` per output."""
        column = self.weights[:, j].astype(np.float64)
        return column + noise * self.read_rng.standard_normal(column.size) if noise > 0 else column
