"""Pulsed devices: a resistive element written by pulses, defined by its response.

One pulse moves a device's weight by

    up:   w <- clip(w + s_up   * q+(w) * (1 + dw_min_std * xi), w_min, w_max)
    down: w <- clip(w - s_down * q-(w) * (1 + dw_min_std * xi), w_min, w_max)

with xi ~ N(0, 1) fresh per pulse (cycle-to-cycle noise) and per-device constants
(device-to-device variation, drawn once per array):

    s_up   = dw_min * (1 + dw_min_dtod * xi_1) * (1 + u),   u = up_down + up_down_dtod * xi_2
    s_down = dw_min * (1 + dw_min_dtod * xi_1) * (1 - u)
    w_max' = w_max * (1 + w_bound_dtod * xi_3),  w_min' = w_min * (1 + w_bound_dtod * xi_4)

(relative factors clipped at 0.05 so no step or bound changes sign). The responses q+, q-
are dimensionless: 1 everywhere for the constant step, at w = 0 for the linear step and
soft bounds, at the range centre for the power step, so dw_min is the step there (the
exponential step's q approaches 1 far from its saturating side). They follow the device
families of aihwkit's pulsed devices (facts only; our code):

    constant_step  q+ = 1                          q- = 1
    linear_step    q+ = max(1 - gamma_up w / w_max, 0)   q- = max(1 - gamma_down w / w_min, 0)
    soft_bounds    q+ = max(1 - w / w_max, 0)      q- = max(1 - w / w_min, 0)   (linear, gamma = 1)
    exp_step       z = 2 a w / (w_max - w_min) + b
                   q+ = max(1 - A_up exp(gamma_up z), 0)   q- = max(1 - A_down exp(-gamma_down z), 0)
    pow_step       q+ = (2 (w_max - w) / (w_max - w_min))^(g (1 + p))
                   q- = (2 (w - w_min) / (w_max - w_min))^(g (1 - p)),  g = pow_gamma, p = pow_up_down

linear_step and soft_bounds need w_min < 0 < w_max (their formulas divide by the bounds).

Symmetric point: the state where an up and a down pulse cancel on average,
s_up q+(w) = s_down q-(w). Zero-mean pulse trains drive a device there (Wu et al.,
arXiv 2502.06309: Analog SGD is biased toward it). It is found per device by bisection on
the drift D(w) = s_up q+(w) - s_down q-(w); when D has one sign on the whole range the
device drifts to the corresponding bound, which is then its symmetric point; when D = 0
everywhere (a symmetric constant step) every state is symmetric and NaN is returned.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from simulator.errors import UserError
from simulator.hw.schema import PulsedDeviceConfig

PULSED_MODELS = ("constant_step", "linear_step", "soft_bounds", "exp_step", "pow_step")
CONSTANT, LINEAR, SOFT, EXP, POW = range(len(PULSED_MODELS))
_MIN_FACTOR = 0.05  # floor on the relative device-to-device factors
_SHAPE_PARAMS = 6


def model_index(model: str) -> int:
    if model not in PULSED_MODELS:
        raise UserError(f"hw config: analog.device.pulsed.model: expected one of "
                        f"{', '.join(PULSED_MODELS)}, got {model!r}")
    return PULSED_MODELS.index(model)


def shape_params(cfg: PulsedDeviceConfig) -> np.ndarray:
    """The model's shape constants as one float64 vector (what the kernels take)."""
    params = np.zeros(_SHAPE_PARAMS)
    model = model_index(cfg.model)
    if model == LINEAR:
        params[:2] = cfg.gamma_up, cfg.gamma_down
    elif model == EXP:
        params[:] = (cfg.exp_a_up, cfg.exp_a_down, cfg.exp_gamma_up, cfg.exp_gamma_down, cfg.exp_a, cfg.exp_b)
    elif model == POW:
        params[:2] = cfg.pow_gamma, cfg.pow_up_down
    return params


# ---------------------------------------------------------------- responses
# Written with np.fmax / np.exp so the same source works on numpy arrays (the readable
# reference the tests check) and, compiled by numba, on scalars inside the kernels.

def q_up(model, w, w_min, w_max, p):
    """Up response q+(w) (see the module docstring for each model's formula)."""
    if model == CONSTANT:
        return 1.0 + 0.0 * w
    if model == LINEAR:
        return np.fmax(1.0 - p[0] * w / w_max, 0.0)
    if model == SOFT:
        return np.fmax(1.0 - w / w_max, 0.0)
    if model == EXP:
        z = 2.0 * p[4] * w / (w_max - w_min) + p[5]
        return np.fmax(1.0 - p[0] * np.exp(p[2] * z), 0.0)
    return (2.0 * np.fmax(w_max - w, 0.0) / (w_max - w_min)) ** (p[0] * (1.0 + p[1]))


def q_down(model, w, w_min, w_max, p):
    """Down response q-(w)."""
    if model == CONSTANT:
        return 1.0 + 0.0 * w
    if model == LINEAR:
        return np.fmax(1.0 - p[1] * w / w_min, 0.0)
    if model == SOFT:
        return np.fmax(1.0 - w / w_min, 0.0)
    if model == EXP:
        z = 2.0 * p[4] * w / (w_max - w_min) + p[5]
        return np.fmax(1.0 - p[1] * np.exp(-p[3] * z), 0.0)
    return (2.0 * np.fmax(w - w_min, 0.0) / (w_max - w_min)) ** (p[0] * (1.0 - p[1]))


q_up_scalar = njit(cache=True, inline="always")(q_up)
q_down_scalar = njit(cache=True, inline="always")(q_down)


# ---------------------------------------------------------------- an array of devices

@dataclass(frozen=True)
class PulsedArray:
    """Per-device constants of a crossbar of pulsed devices ([rows, cols] float64 each)."""

    model: int
    params: np.ndarray  # shape constants (shape_params)
    scale_up: np.ndarray  # s_up: step of an up pulse where q+ = 1
    scale_down: np.ndarray
    w_min: np.ndarray
    w_max: np.ndarray
    dw_min_std: float  # cycle-to-cycle relative std per pulse

    @property
    def shape(self) -> tuple[int, int]:
        return self.scale_up.shape

    def up(self, w):
        return self.scale_up * q_up(self.model, w, self.w_min, self.w_max, self.params)

    def down(self, w):
        return self.scale_down * q_down(self.model, w, self.w_min, self.w_max, self.params)

    def symmetric_point(self) -> np.ndarray:
        return symmetric_point(self)


def _factor(rng: np.random.Generator, std: float, shape) -> np.ndarray:
    return np.fmax(1.0 + std * rng.standard_normal(shape), _MIN_FACTOR) if std > 0 else np.ones(shape)


def sample_array(cfg: PulsedDeviceConfig, shape: tuple[int, int], rng: np.random.Generator) -> PulsedArray:
    """Draw the device-to-device constants of a [rows, cols] array (one draw per quantity,
    in a fixed order: step, asymmetry, w_max, w_min)."""
    check_pulsed(cfg)
    step = cfg.dw_min * _factor(rng, cfg.dw_min_dtod, shape)
    asym = cfg.up_down + (cfg.up_down_dtod * rng.standard_normal(shape) if cfg.up_down_dtod > 0 else 0.0)
    asym = np.clip(asym, -1.0 + _MIN_FACTOR, 1.0 - _MIN_FACTOR)
    w_max = cfg.w_max * _factor(rng, cfg.w_bound_dtod, shape)
    w_min = cfg.w_min * _factor(rng, cfg.w_bound_dtod, shape)
    return PulsedArray(model_index(cfg.model), shape_params(cfg), _f32(step * (1.0 + asym)),
                       _f32(step * (1.0 - asym)), _f32(w_min), _f32(w_max), cfg.dw_min_std)


def _f32(values) -> np.ndarray:
    """Device constants are float32, like the weights: the kernels are memory-bound."""
    return np.ascontiguousarray(values, dtype=np.float32)


def nominal_array(cfg: PulsedDeviceConfig, shape=(1, 1)) -> PulsedArray:
    """The nominal device (no device-to-device variation), broadcast to `shape`."""
    ones = np.ones(shape)
    return PulsedArray(model_index(cfg.model), shape_params(cfg), _f32(cfg.dw_min * (1 + cfg.up_down) * ones),
                       _f32(cfg.dw_min * (1 - cfg.up_down) * ones), _f32(cfg.w_min * ones),
                       _f32(cfg.w_max * ones), cfg.dw_min_std)


def symmetric_point(devices: PulsedArray, iterations: int = 60) -> np.ndarray:
    """Per device, the stable zero of D(w) = s_up q+(w) - s_down q-(w) (bisection; D falls
    through it for every model here); a bound when D has one sign; NaN when D == 0."""
    w_min, w_max = devices.w_min.astype(np.float64), devices.w_max.astype(np.float64)
    s_up, s_down = devices.scale_up.astype(np.float64), devices.scale_down.astype(np.float64)

    def drift(w):
        return (s_up * q_up(devices.model, w, w_min, w_max, devices.params)
                - s_down * q_down(devices.model, w, w_min, w_max, devices.params))

    low, high = w_min.copy(), w_max.copy()
    d_low, d_high = drift(low), drift(high)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        above = drift(mid) > 0
        low, high = np.where(above, mid, low), np.where(above, high, mid)
    point = 0.5 * (low + high)
    point = np.where(d_high > 0, w_max, point)
    point = np.where(d_low < 0, w_min, point)
    scale = np.fmax(s_up, s_down)
    flat = (np.abs(d_low) < 1e-12 * scale) & (np.abs(d_high) < 1e-12 * scale)
    return np.where(flat, np.nan, point)


# ---------------------------------------------------------------- validation

def check_pulsed(cfg: PulsedDeviceConfig, key: str = "analog.device.pulsed") -> None:
    """Cross-field checks of a pulsed device; one-line UserErrors naming the key."""
    model = model_index(cfg.model)
    if not cfg.dw_min > 0:
        raise UserError(f"{key}.dw_min: expected a positive step, got {cfg.dw_min!r}")
    if not cfg.w_min < cfg.w_max:
        raise UserError(f"{key}: expected w_min < w_max, got w_min {cfg.w_min!r}, w_max {cfg.w_max!r}")
    if cfg.dw_min >= cfg.w_max - cfg.w_min:
        raise UserError(f"{key}.dw_min: {cfg.dw_min!r} is not below the range w_max - w_min "
                        f"= {cfg.w_max - cfg.w_min!r}")
    if not -1 < cfg.up_down < 1:
        raise UserError(f"{key}.up_down: expected a value in (-1, 1), got {cfg.up_down!r}")
    if model in (LINEAR, SOFT) and not cfg.w_min < 0 < cfg.w_max:
        raise UserError(f"{key}: {cfg.model} needs w_min < 0 < w_max, got {cfg.w_min!r}, {cfg.w_max!r}")
    if model == POW and not 0 < cfg.pow_gamma or model == POW and not -1 < cfg.pow_up_down < 1:
        raise UserError(f"{key}: pow_step needs pow_gamma > 0 and -1 < pow_up_down < 1, "
                        f"got {cfg.pow_gamma!r}, {cfg.pow_up_down!r}")
    nominal = nominal_array(cfg)
    span = cfg.w_max - cfg.w_min
    grid = np.linspace(cfg.w_min, cfg.w_max, 2001)[:, None]
    up, down = nominal.up(grid)[:, 0] / nominal.scale_up[0, 0], nominal.down(grid)[:, 0] / nominal.scale_down[0, 0]
    if not (np.all(np.isfinite(up)) and np.all(np.isfinite(down))):
        raise UserError(f"{key}: {cfg.model} response is not finite on [w_min, w_max]; check its parameters")
    inner = grid[:, 0] < cfg.w_max - 1e-9 * span
    stalled = np.flatnonzero(inner & (up <= 0))
    if stalled.size:
        raise UserError(f"{key}: {cfg.model} up response q+ is 0 from w = {grid[stalled[0], 0]:.4g} on: "
                        f"up pulses never reach w_max = {cfg.w_max:g}; lower the up slope/amplitude")
    inner = grid[:, 0] > cfg.w_min + 1e-9 * span
    stalled = np.flatnonzero(inner & (down <= 0))
    if stalled.size:
        raise UserError(f"{key}: {cfg.model} down response q- is 0 up to w = {grid[stalled[-1], 0]:.4g}: "
                        f"down pulses never reach w_min = {cfg.w_min:g}; lower the down slope/amplitude")
