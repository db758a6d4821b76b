"""Program-and-verify: writing inference weights into pulsed devices, and what it costs.

Each conductance of a differential pair is one pulsed device (simulator/analog/pulsed.py)
whose state w maps linearly onto G: G = 0 at the device's own w_min, G = g_max at
w_min + usable_range (w_max - w_min) of the nominal device (soft-bound devices approach
w_max only asymptotically, and device-to-device variation moves each w_max, so g_max
sits below it). Devices start RESET (G = 0). A tile is programmed one row at a time, all 2 x cols devices of the row (G+ and
G- bit lines) in parallel, in rounds:

1. verify read of the row: G_read = G + N(0, (read_noise g_max)^2) per device;
2. devices with |G_read - G_target| <= tolerance g_max are done (they get no more pulses);
3. every other device gets a burst of n = clip(round(|error| / step), 1,
   max_pulses_per_iteration) pulses toward its target, where step is the nominal device's
   expected step at the read state (the controller knows the response curve, not each
   device's variation); each pulse is one device step with its cycle-to-cycle noise.

A row stops when all its devices are done or after max_iterations rounds. Time per row =
sum over rounds of (verify_read_ns + longest burst x pulse_ns); a tile's time is the sum
over its rows; energy = pulses x pulse_energy_pj + device reads x verify_energy_pj.
Rows are independent, so the kernel runs them in parallel; random numbers are hashes of
(seed, device, round, pulse), so results do not depend on the thread count.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from simulator.analog import pulsed
from simulator.analog.device import target_conductances_uS
from simulator.analog.pulse_update import approx_normal, base_key
from simulator.errors import UserError
from simulator.hw.schema import AnalogConfig, ProgrammingConfig, PulsedDeviceConfig

_READ_STREAM, _PULSE_STREAM = 3, 4


@dataclass(frozen=True)
class VerifyResult:
    """Programmed conductances ([rows, devices per row], uS) and what programming them cost."""

    g_uS: np.ndarray
    pulses: np.ndarray  # per device
    iterations: np.ndarray  # verify rounds per row
    row_time_ns: np.ndarray  # per row
    converged: np.ndarray  # per device: within tolerance at its last verify read
    energy_pj: float

    @property
    def time_us(self) -> float:
        return float(self.row_time_ns.sum()) / 1e3


@njit(cache=True, nogil=True, inline="always")
def _one_pulse(model, w, up, s_up, s_down, w_min, w_max, params, factor):
    if up:
        w = w + s_up * pulsed.q_up_scalar(model, w, w_min, w_max, params) * factor
    else:
        w = w - s_down * pulsed.q_down_scalar(model, w, w_min, w_max, params) * factor
    return min(max(w, w_min), w_max)


@njit(cache=True, nogil=True, parallel=True)
def _verify_rows(state, target, model, params, s_up, s_down, w_min, w_max, c2c,
                 nominal_up, nominal_down, n_w_min, n_w_max, g_per_w, tol_g, read_sigma_g, max_iterations,
                 max_burst, pulse_ns, verify_ns, key, pulses, converged, iterations, row_time):
    """Program every row of `state` (device units, in place) toward `target` (conductance).
    The burst size uses the nominal device (steps nominal_up/down, range n_w_min..n_w_max)."""
    rows, cols = state.shape
    for i in prange(rows):
        active = np.ones(cols, dtype=np.bool_)
        time_ns = 0.0
        rounds = 0
        for it in range(max_iterations):
            longest = 0
            remaining = 0
            for j in range(cols):
                if not active[j]:
                    continue
                w = state[i, j]
                g = (w - w_min[i, j]) * g_per_w
                index = (i * cols + j) * max_iterations + it
                read = g + read_sigma_g * approx_normal(key, _READ_STREAM, index)
                error = target[i, j] - read
                if abs(error) <= tol_g:
                    active[j] = False
                    converged[i, j] = True
                    continue
                up = error > 0
                w_read = min(max(n_w_min + read / g_per_w, n_w_min), n_w_max)
                if up:
                    step = nominal_up * pulsed.q_up_scalar(model, w_read, n_w_min, n_w_max, params)
                else:
                    step = nominal_down * pulsed.q_down_scalar(model, w_read, n_w_min, n_w_max, params)
                n = max_burst if step * g_per_w * max_burst <= abs(error) else \
                    max(1, min(max_burst, int(round(abs(error) / (step * g_per_w)))))
                for k in range(n):
                    factor = 1.0 + c2c * approx_normal(key, _PULSE_STREAM, index * max_burst + k) if c2c > 0 else 1.0
                    w = _one_pulse(model, w, up, s_up[i, j], s_down[i, j], w_min[i, j], w_max[i, j], params, factor)
                state[i, j] = w
                pulses[i, j] += n
                longest = max(longest, n)
                remaining += 1
            time_ns += verify_ns + longest * pulse_ns
            rounds += 1
            if remaining == 0:
                break
        iterations[i] = rounds
        row_time[i] = time_ns


def program_and_verify(target_uS: np.ndarray, device: PulsedDeviceConfig, prog: ProgrammingConfig,
                       g_max_uS: float, seed: int) -> VerifyResult:
    """Program conductance targets [rows, devices per row] (uS) by program-and-verify."""
    target = np.ascontiguousarray(target_uS, dtype=np.float64)
    rng = np.random.default_rng([seed, 41])
    devices = pulsed.sample_array(device, target.shape, rng)
    state = devices.w_min.astype(np.float64)  # RESET: G = 0
    nominal = pulsed.nominal_array(device)
    if not prog.usable_range > 0:
        raise UserError(f"analog.programming.usable_range: expected a fraction in (0, 1], got {prog.usable_range!r}")
    g_per_w = g_max_uS / (prog.usable_range * (device.w_max - device.w_min))
    rows = target.shape[0]
    pulses = np.zeros(target.shape, dtype=np.int64)
    converged = np.zeros(target.shape, dtype=np.bool_)
    iterations = np.zeros(rows, dtype=np.int64)
    row_time = np.zeros(rows)
    _verify_rows(state, target, devices.model, devices.params, devices.scale_up.astype(np.float64),
                 devices.scale_down.astype(np.float64), devices.w_min.astype(np.float64),
                 devices.w_max.astype(np.float64), devices.dw_min_std, float(nominal.scale_up[0, 0]),
                 float(nominal.scale_down[0, 0]), device.w_min, device.w_max, g_per_w, prog.tolerance * g_max_uS,
                 prog.read_noise * g_max_uS, prog.max_iterations, prog.max_pulses_per_iteration,
                 prog.pulse_ns, prog.verify_read_ns, np.uint64(base_key(seed, 43)), pulses, converged,
                 iterations, row_time)
    g = (state - devices.w_min) * g_per_w
    reads = _device_reads(iterations, target.shape[1])
    energy = float(pulses.sum()) * prog.pulse_energy_pj + reads * prog.verify_energy_pj
    return VerifyResult(g, pulses, iterations, row_time, converged, energy)


def _device_reads(iterations: np.ndarray, devices_per_row: int) -> float:
    """Verify reads are row reads: every device of the row is read in each round."""
    return float(iterations.sum()) * devices_per_row


def pair_targets_uS(normalised: np.ndarray, g_max_uS: float) -> np.ndarray:
    """[rows, cols] normalised weights -> [rows, 2 cols] targets: G+ columns then G- columns."""
    g_pos, g_neg = target_conductances_uS(np.asarray(normalised, dtype=np.float64), g_max_uS)
    return np.concatenate([g_pos, g_neg], axis=1)


@dataclass(frozen=True)
class TileCost:
    time_us: float
    energy_nj: float
    pulses_per_device: float
    iterations_per_row: float
    converged_fraction: float


def tile_cost(result: VerifyResult) -> TileCost:
    return TileCost(result.time_us, result.energy_pj / 1e3, float(result.pulses.mean()),
                    float(result.iterations.mean()), float(result.converged.mean()))


def random_tile_weights(rows: int, cols: int, rng: np.random.Generator,
                        weight_scaling: str = "per_tile") -> np.ndarray:
    """Gaussian weights [rows (inputs), cols (outputs)] normalised as the tile maps them:
    by the tile's max |W| (`per_tile`) or by each column's (`per_column`)."""
    w = rng.standard_normal((rows, cols))
    scale = np.abs(w).max(axis=0, keepdims=True) if weight_scaling == "per_column" else np.abs(w).max()
    return w / scale


@functools.lru_cache(maxsize=64)
def expected_tile_cost(analog: AnalogConfig) -> TileCost:
    """Time and energy to program one full tile of random Gaussian weights, normalised by
    the config's weight scaling (seeded by analog.programming.seed): what the timing model
    charges a program task under `verify`."""
    return tile_cost(sample_tile_programming(analog))


def sample_tile_programming(analog: AnalogConfig) -> VerifyResult:
    """Program-and-verify of the random reference tile of `expected_tile_cost`."""
    targets = sample_tile_targets_uS(analog)
    prog = analog.programming
    return program_and_verify(targets, analog.device.pulsed, prog, analog.device.g_max_uS, prog.seed)


def sample_tile_targets_uS(analog: AnalogConfig) -> np.ndarray:
    rng = np.random.default_rng([analog.programming.seed, 47])
    weights = random_tile_weights(analog.rows, analog.cols, rng, analog.periphery.weight_scaling)
    return pair_targets_uS(weights, analog.device.g_max_uS)


def pcm_sigma_uS(target_uS: np.ndarray, g_max_uS: float) -> np.ndarray:
    """The fitted PCM programming-noise polynomial, for comparison with program-and-verify."""
    from simulator.analog.device import pcm_programming_sigma_uS
    return pcm_programming_sigma_uS(np.asarray(target_uS) / g_max_uS, g_max_uS)



# ---------------------------------------------------------------- whole layers

@dataclass(frozen=True)
class ProgrammedWeight:
    """A Linear weight after program-and-verify, and the cost of each of its tiles."""

    weight: np.ndarray  # [out, in]: (G+ - G-) / g_max x max|W| of each tile/column
    tiles: tuple[TileCost, ...]
    errors_uS: np.ndarray  # programmed - target conductance of every nonzero-target device
    targets_uS: np.ndarray  # the matching targets


def program_weight(weight: np.ndarray, analog: AnalogConfig, seed: int, keep_errors: int = 0) -> ProgrammedWeight:
    """Program W (out x in) tile by tile (rows inputs x cols outputs, the analog layer's
    cut and weight scaling), each tile by program-and-verify with its own seed."""
    from simulator.analog.device import weight_max_abs
    weight = np.ascontiguousarray(weight, dtype=np.float32)
    out_features, in_features = weight.shape
    rows, cols, g_max = analog.rows, analog.cols, analog.device.g_max_uS
    weight_max = weight_max_abs(weight, rows, cols, analog.periphery.weight_scaling)  # [row_blocks, out]
    programmed = np.empty_like(weight)
    tiles, errors, targets_kept = [], [], []
    for block in range(weight_max.shape[0]):
        inputs = slice(block * rows, min((block + 1) * rows, in_features))
        for start in range(0, out_features, cols):
            outputs = slice(start, min(start + cols, out_features))
            scale = weight_max[block, outputs]
            normalised = weight[outputs, inputs].T / scale[None, :]  # [tile rows, tile cols]
            targets = pair_targets_uS(normalised, g_max)
            result = program_and_verify(targets, analog.device.pulsed, analog.programming, g_max,
                                        seed=seed * 1_000_003 + block * 4099 + start)
            width = normalised.shape[1]
            achieved = (result.g_uS[:, :width] - result.g_uS[:, width:]) / g_max
            programmed[outputs, inputs] = (achieved * scale[None, :]).T
            tiles.append(tile_cost(result))
            if keep_errors > sum(e.size for e in errors):
                used = targets > 0
                errors.append((result.g_uS - targets)[used])
                targets_kept.append(targets[used])
    return ProgrammedWeight(programmed, tuple(tiles),
                            np.concatenate(errors) if errors else np.empty(0),
                            np.concatenate(targets_kept) if targets_kept else np.empty(0))


def error_versus_pcm(errors_uS: np.ndarray, targets_uS: np.ndarray, g_max_uS: float, bins: int = 5) -> list[dict]:
    """Spread of programmed - target per target-conductance bin, beside the fitted PCM
    programming-noise polynomial's sigma at the bin centre."""
    edges = np.linspace(0.0, g_max_uS, bins + 1)
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (targets_uS > low) & (targets_uS <= high)
        if not inside.any():
            continue
        e = errors_uS[inside]
        rows.append({"g_low_uS": float(low), "g_high_uS": float(high), "devices": int(inside.sum()),
                     "mean_uS": float(e.mean()), "std_uS": float(e.std()),
                     "p99_abs_uS": float(np.quantile(np.abs(e), 0.99)),
                     "pcm_sigma_uS": float(pcm_sigma_uS(np.array(0.5 * (low + high)), g_max_uS))})
    return rows
