"""Least squares with a known optimum: y = W* x + noise, loss 0.5 |W x - y|^2 per sample.

The optimum W_opt is the data's exact least-squares solution. Analog SGD on an asymmetric
device does not reach it: its expected step is -lr (E[g] F(W) - E|g| H(W)) with
F = (u + v)/2, H = (u - v)/2, u = s_up q+(W)/dw_min, v = s_down q-(W)/dw_min (the
per-sample gradient g = d x^T; arXiv 2502.06309, "implicit penalty"), so it settles where
E[g] F = E|g| H: pulled toward the symmetric point (H = 0 there) by an amount that grows
with the gradient noise E|g|. `predicted_sgd_point` solves that fixed point on the
training set; the run's time-averaged weight is compared with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.analog.pulsed import PulsedArray
from simulator.errors import UserError
from simulator.hw.schema import PulsedDeviceConfig
from simulator.train.algorithms import TrainSettings, make_optimizer
from simulator.train.tile import PulseSettings


@dataclass(frozen=True)
class LsqProblem:
    x: np.ndarray  # [samples, in]
    y: np.ndarray  # [samples, out]
    w_true: np.ndarray  # [out, in]
    w_opt: np.ndarray  # least-squares solution on (x, y)


def make_problem(seed: int, inputs: int = 8, outputs: int = 4, samples: int = 400,
                 w_scale: float = 0.6, noise: float = 0.5) -> LsqProblem:
    rng = np.random.default_rng([seed, 7])
    x = rng.standard_normal((samples, inputs))
    w_true = rng.uniform(-w_scale, w_scale, (outputs, inputs))
    y = x @ w_true.T + noise * rng.standard_normal((samples, outputs))
    w_opt = np.linalg.lstsq(x, y, rcond=None)[0].T
    return LsqProblem(x, y, w_true, w_opt)


def predicted_sgd_point(devices: PulsedArray, dw_min: float, problem: LsqProblem,
                        iterations: int = 4000, rate: float = 0.5) -> np.ndarray:
    """W where the expected Analog SGD step vanishes: E[g] F(W) = E|g| H(W) (mean-field)."""
    w = problem.w_opt.copy()
    x, y, n = problem.x, problem.y, problem.x.shape[0]
    for _ in range(iterations):
        residual = x @ w.T - y  # [samples, out]
        mean_g = residual.T @ x / n
        mean_abs_g = np.abs(residual).T @ np.abs(x) / n
        u, v = devices.up(w) / dw_min, devices.down(w) / dw_min
        move = -mean_g * (u + v) / 2 + mean_abs_g * (u - v) / 2
        w = np.clip(w + rate * move, devices.w_min, devices.w_max)
    return w


@dataclass
class LsqRun:
    algorithm: str
    seed: int
    losses: list  # mean training loss after each epoch (effective weight)
    error_curve: list  # |W - W_opt|_F / |W_opt|_F at the start and after each epoch
    final_error: float  # |W_final - W_opt|_F / |W_opt|_F
    averaged_error: float  # same for W averaged over the last half of the run
    trajectory: np.ndarray  # [epochs + 1, tracked] effective weights of a few devices
    tracked_optimum: np.ndarray
    tracked_symmetric: np.ndarray
    pulses: int
    predicted_error: float | None  # Analog SGD: the mean-field fixed point's error


def loss(problem: LsqProblem, w: np.ndarray) -> float:
    return float(0.5 * np.mean(np.sum((problem.x @ w.T - problem.y) ** 2, axis=1)))


def run_lsq(algorithm: str, device: PulsedDeviceConfig, pulses: PulseSettings, settings: TrainSettings,
            seed: int, epochs: int = 30, tracked: int = 4, progress=None) -> LsqRun:
    if epochs < 1:
        raise UserError(f"--epochs: expected a positive integer, got {epochs!r}")
    problem = make_problem(seed)
    init = np.zeros_like(problem.w_opt)
    opt = make_optimizer(algorithm, init, device, pulses, settings, seed, name=0)
    order_rng = np.random.default_rng([seed, 11])
    flat_opt = problem.w_opt.ravel()
    track = np.argsort(-np.abs(flat_opt))[:tracked]  # the largest weights show the pull best
    trajectory = [np.asarray(opt.weight()).ravel()[track].copy()]
    norm = np.linalg.norm(problem.w_opt)
    errors = [float(np.linalg.norm(np.asarray(opt.weight()) - problem.w_opt) / norm)]
    losses, average, averaged_steps = [loss(problem, np.asarray(opt.weight()))], np.zeros_like(init), 0
    samples = problem.x.shape[0]
    for epoch in range(epochs):
        for n in order_rng.permutation(samples):
            w = np.asarray(opt.weight())
            d = w @ problem.x[n] - problem.y[n]
            opt.step(problem.x[n], d)
            if epoch >= epochs // 2:
                average += opt.weight()
                averaged_steps += 1
        losses.append(loss(problem, np.asarray(opt.weight())))
        errors.append(float(np.linalg.norm(np.asarray(opt.weight()) - problem.w_opt) / norm))
        trajectory.append(np.asarray(opt.weight()).ravel()[track].copy())
        if progress:
            progress()
    final = np.asarray(opt.weight(), dtype=np.float64)
    symmetric = _symmetric_of(opt, init)
    predicted = None
    if algorithm == "sgd":
        predicted = float(np.linalg.norm(predicted_sgd_point(opt.tile.devices, device.dw_min, problem)
                                         - problem.w_opt) / norm)
    return LsqRun(algorithm, seed, losses, errors, float(np.linalg.norm(final - problem.w_opt) / norm),
                  float(np.linalg.norm(average / max(averaged_steps, 1) - problem.w_opt) / norm),
                  np.array(trajectory), flat_opt[track], symmetric.ravel()[track], opt.pulses(), predicted)


def _symmetric_of(opt, init):
    """Symmetric point of the array that holds the weight (C for two-array schemes)."""
    tile = getattr(opt, "tile", None) or getattr(opt, "c", None)
    return tile.symmetric if tile is not None else np.full_like(init, np.nan)
