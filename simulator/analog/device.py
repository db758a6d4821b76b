"""Device physics of a crossbar: weights to conductance pairs, programming, drift, read
noise, stuck-at faults, and the drift-compensation calibration read.

A Linear weight W (out x in) is cut into row blocks of `rows` inputs; block b holds
W[:, b*rows:(b+1)*rows] transposed, so arrays here are [row_blocks, rows, out] (inputs
on rows, outputs on columns; the last block is zero-padded). Each weight is a
differential pair G+ - G- scaled so the largest |W| of its tile (`per_tile`: a
rows x cols block) or of its column (`per_column`) maps to g_max. All conductances are
in microsiemens; "normalised" weights are (G+ - G-) / g_max, in [-1, 1] before noise.

Time convention: t_s is the time since programming. The published PCM model is anchored
at t0 (20 s), so t_s is clamped to t0: any t_s <= t0 (including 0) is the state at t0,
with no drift and the 1/f read noise accumulated until t0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import UserError
from simulator.hw.schema import DeviceConfig

DEVICE_MODELS = ("pcm", "gaussian", "reram", "ideal")
GAUSSIAN_KINDS = ("additive", "proportional")
WEIGHT_SCALINGS = ("per_tile", "per_column")
DRIFT_COMPENSATIONS = ("global", "per_column", "none")
PCM_REFERENCE_G_MAX_US = 25.0  # the published PCM sigma polynomial is fitted at 25 uS
_TINY_GR = 1e-7  # floor for gr inside logarithms and powers (gr = 0 is a reset device)


def check_choice(value: str, valid: tuple[str, ...], key: str) -> str:
    if value not in valid:
        raise UserError(f"hw config: {key}: expected one of {', '.join(valid)}, got {value!r}")
    return value


# ---------------------------------------------------------------- weights to blocks

def split_row_blocks(weight: np.ndarray, rows: int) -> np.ndarray:
    """W (out x in) as zero-padded tiles' worth of inputs: [row_blocks, rows, out] float32."""
    out_features, in_features = weight.shape
    row_blocks = -(-in_features // rows)
    blocks = np.zeros((row_blocks * rows, out_features), dtype=np.float32)
    blocks[:in_features] = weight.T
    return blocks.reshape(row_blocks, rows, out_features)


def weight_max_abs(blocks: np.ndarray, cols: int, weight_scaling: str) -> np.ndarray:
    """max|W| that maps to g_max, per (row block, output): per tile or per column.

    All-zero tiles/columns get 1 so the mapping stays finite (their conductances are 0).
    """
    check_choice(weight_scaling, WEIGHT_SCALINGS, "analog.periphery.weight_scaling")
    column_max = np.abs(blocks).max(axis=1)  # [row_blocks, out]
    if weight_scaling == "per_tile":
        row_blocks, out_features = column_max.shape
        col_blocks = -(-out_features // cols)
        padded = np.zeros((row_blocks, col_blocks * cols), dtype=column_max.dtype)
        padded[:, :out_features] = column_max
        tile_max = padded.reshape(row_blocks, col_blocks, cols).max(axis=2)
        column_max = np.repeat(tile_max, cols, axis=1)[:, :out_features]
    return np.where(column_max > 0, column_max, 1.0).astype(np.float32)


def target_conductances_uS(normalised: np.ndarray, g_max_uS: float) -> tuple[np.ndarray, np.ndarray]:
    """Differential pair targets: G+ = clip(w g_max, 0, g_max), G- = clip(-w g_max, 0, g_max)."""
    scaled = normalised * np.float32(g_max_uS)
    return np.clip(scaled, 0.0, g_max_uS), np.clip(-scaled, 0.0, g_max_uS)


# ---------------------------------------------------------------- published PCM statistics

def pcm_programming_sigma_uS(gr: np.ndarray, g_max_uS: float) -> np.ndarray:
    """Programming noise std: (0.26348 + 1.9650 gr - 1.1731 gr^2) * g_max / 25 uS."""
    return (0.26348 + 1.9650 * gr - 1.1731 * gr ** 2) * (g_max_uS / PCM_REFERENCE_G_MAX_US)


def pcm_drift_nu_mean(gr: np.ndarray) -> np.ndarray:
    return np.clip(-0.0155 * np.log(np.maximum(gr, _TINY_GR)) + 0.0244, 0.049, 0.1)


def pcm_drift_nu_std(gr: np.ndarray) -> np.ndarray:
    return np.clip(-0.0125 * np.log(np.maximum(gr, _TINY_GR)) - 0.0059, 0.008, 0.045)


def pcm_read_noise_q(gr: np.ndarray) -> np.ndarray:
    """Q_s = min(0.0088 / gr^0.65, 0.2): relative 1/f noise amplitude per device."""
    return np.minimum(0.0088 / np.maximum(gr, _TINY_GR) ** 0.65, 0.2)


def read_noise_time_factor(t_s: float, device: DeviceConfig) -> float:
    """sqrt(ln((t + t_read) / (2 t_read))) at the clamped time: 1/f noise accumulated to t."""
    t_eff_s = effective_time_s(t_s, device)
    return float(np.sqrt(max(np.log((t_eff_s + device.t_read_s) / (2.0 * device.t_read_s)), 0.0)))


def effective_time_s(t_s: float, device: DeviceConfig) -> float:
    if t_s < 0:
        raise UserError(f"drift time: expected t >= 0 seconds, got {t_s!r}")
    return max(float(t_s), device.t0_s)


# ---------------------------------------------------------------- one chip realisation

@dataclass(frozen=True)
class ProgrammedPair:
    """The programmed state of one realisation of a layer: [row_blocks, rows, out] arrays.

    `nu_*` are the per-device drift exponents (None when the model does not drift). PCM's
    random exponents are kept as float16: 3 digits move (t/t0)^-nu by < 1e-3 even at 10
    years, far below their own spread, and save 4 bytes per weight of resident state.
    Stuck-at faults are already folded in: stuck devices hold 0 or g_max and do not drift.
    """

    g_pos_uS: np.ndarray
    g_neg_uS: np.ndarray
    nu_pos: np.ndarray | None
    nu_neg: np.ndarray | None


def program_pair(normalised: np.ndarray, device: DeviceConfig, rng: np.random.Generator) -> ProgrammedPair:
    """Program W / max|W| (in [-1, 1]) onto differential pairs, drawing all static noise."""
    check_choice(device.model, DEVICE_MODELS, "analog.device.model")
    g_pos_target, g_neg_target = target_conductances_uS(normalised, device.g_max_uS)
    g_pos, nu_pos = _program_devices(g_pos_target, device, rng)
    g_neg, nu_neg = _program_devices(g_neg_target, device, rng)
    return ProgrammedPair(g_pos, g_neg, nu_pos, nu_neg)


def _program_devices(g_target_uS: np.ndarray, device: DeviceConfig,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Programmed conductance and drift exponent of each device of one polarity."""
    gr = g_target_uS / device.g_max_uS
    nu = None
    if device.model == "pcm":
        sigma_uS = pcm_programming_sigma_uS(gr, device.g_max_uS) * device.prog_noise_scale
        g_prog = g_target_uS + sigma_uS * rng.standard_normal(gr.shape, dtype=np.float32)
        nu_noise = rng.standard_normal(gr.shape, dtype=np.float32)
        nu = device.drift_scale * (pcm_drift_nu_mean(gr) + pcm_drift_nu_std(gr) * nu_noise)
        nu = np.maximum(nu, 0.0).astype(np.float16)
    elif device.model == "gaussian":
        check_choice(device.gaussian_kind, GAUSSIAN_KINDS, "analog.device.gaussian_kind")
        spread_uS = (device.gaussian_sigma * device.g_max_uS if device.gaussian_kind == "additive"
                     else device.gaussian_sigma * g_target_uS)
        g_prog = g_target_uS + spread_uS * rng.standard_normal(gr.shape, dtype=np.float32)
    elif device.model == "reram":
        g_prog = g_target_uS * np.exp(device.reram_sigma * rng.standard_normal(gr.shape, dtype=np.float32))
        nu = np.full(gr.shape, device.reram_relax_nu, dtype=np.float32)
    else:  # ideal
        g_prog = g_target_uS.copy()
    g_prog = np.maximum(g_prog, 0.0).astype(np.float32)
    _apply_stuck_faults(g_prog, nu, device, rng)
    return g_prog, nu


def _apply_stuck_faults(g_prog_uS: np.ndarray, nu: np.ndarray | None, device: DeviceConfig,
                        rng: np.random.Generator) -> None:
    """Force the stuck-at-0 and stuck-at-g_max fractions (in place); stuck devices do not drift."""
    if device.stuck_at_zero_frac <= 0 and device.stuck_at_gmax_frac <= 0:
        return
    draw = rng.random(g_prog_uS.shape, dtype=np.float32)
    stuck_zero = draw < device.stuck_at_zero_frac
    stuck_gmax = (draw >= device.stuck_at_zero_frac) & (
        draw < device.stuck_at_zero_frac + device.stuck_at_gmax_frac)
    g_prog_uS[stuck_zero] = 0.0
    g_prog_uS[stuck_gmax] = device.g_max_uS
    if nu is not None:
        nu[stuck_zero | stuck_gmax] = 0.0


def drifted_uS(g_prog_uS: np.ndarray, nu: np.ndarray | None, t_s: float, device: DeviceConfig) -> np.ndarray:
    """G(t) = G_prog (t / t0)^-nu at the clamped time (no drift at or before t0)."""
    ratio = effective_time_s(t_s, device) / device.t0_s
    if nu is None or ratio == 1.0:
        return g_prog_uS.copy()
    return (g_prog_uS * np.power(np.float32(ratio), -nu.astype(np.float32))).astype(np.float32)


def read_noise_sigma_uS(g_prog_uS: np.ndarray, g_t_uS: np.ndarray, t_s: float,
                        device: DeviceConfig) -> np.ndarray | None:
    """Std of the accumulated 1/f read noise at t: |G(t)| Q_s(gr_prog) sqrt(ln(...)).

    Only PCM has this noise (None otherwise); Q_s uses the programmed state's gr.
    """
    if device.model != "pcm" or device.read_noise_scale == 0:
        return None
    q_s = pcm_read_noise_q(g_prog_uS / device.g_max_uS)
    scale = device.read_noise_scale * read_noise_time_factor(t_s, device)
    return (np.abs(g_t_uS) * q_s * scale).astype(np.float32)


def conductances_at(pair: ProgrammedPair, t_s: float, device: DeviceConfig,
                    read_rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """(G+, G-) at time t: drift, plus one static read-noise realisation if `read_rng` is given.

    Pass no generator when read noise is applied per MVM instead (periphery read-noise GEMM).
    """
    result = []
    for g_prog, nu in ((pair.g_pos_uS, pair.nu_pos), (pair.g_neg_uS, pair.nu_neg)):
        g_t = drifted_uS(g_prog, nu, t_s, device)
        sigma = read_noise_sigma_uS(g_prog, g_t, t_s, device) if read_rng is not None else None
        if sigma is not None:
            g_t = np.maximum(g_t + sigma * read_rng.standard_normal(g_t.shape, dtype=np.float32), 0.0)
        result.append(g_t)
    return result[0], result[1]


# ---------------------------------------------------------------- drift compensation

def compensation_factors(reference: tuple[np.ndarray, np.ndarray], now: tuple[np.ndarray, np.ndarray],
                         valid_rows: np.ndarray, cols: int, mode: str) -> np.ndarray:
    """Digital output gain per (row block, output) that undoes the drift of each tile.

    Both are calibration reads with all-ones on the tile's used rows, `reference` of the
    programmed state, `now` of the state at t:
    * global: per tile, alpha = sum over its columns of |I+ - I-| at t0 / the same at t;
    * per_column: alpha = (I+ + I-) at t0 / (I+ + I-) at t per column (the two line
      currents read separately; their sum cannot cancel to ~0 as the difference can);
    * none: 1. A read of 0 (empty tile or column) gives 1.
    `valid_rows` is [row_blocks, rows, 1], 1 on rows that carry an input, 0 on padding.
    """
    check_choice(mode, DRIFT_COMPENSATIONS, "analog.periphery.drift_compensation")
    (ref_pos, ref_neg), (now_pos, now_neg) = reference, now
    row_blocks, _, out_features = ref_pos.shape
    if mode == "none":
        return np.ones((row_blocks, out_features), dtype=np.float32)
    if mode == "per_column":
        ref_read = ((ref_pos + ref_neg) * valid_rows).sum(axis=1, dtype=np.float64)
        now_read = ((now_pos + now_neg) * valid_rows).sum(axis=1, dtype=np.float64)
    else:
        ref_read = _sum_per_tile(np.abs(((ref_pos - ref_neg) * valid_rows).sum(axis=1, dtype=np.float64)), cols)
        now_read = _sum_per_tile(np.abs(((now_pos - now_neg) * valid_rows).sum(axis=1, dtype=np.float64)), cols)
    alpha = np.divide(ref_read, now_read, out=np.ones_like(ref_read), where=(now_read > 0) & (ref_read > 0))
    return alpha.astype(np.float32)


def _sum_per_tile(per_column: np.ndarray, cols: int) -> np.ndarray:
    """Sum [row_blocks, out] over each tile's `cols` columns, broadcast back to its columns."""
    row_blocks, out_features = per_column.shape
    col_blocks = -(-out_features // cols)
    padded = np.zeros((row_blocks, col_blocks * cols))
    padded[:, :out_features] = per_column
    per_tile = padded.reshape(row_blocks, col_blocks, cols).sum(axis=2)
    return np.repeat(per_tile, cols, axis=1)[:, :out_features]
