"""Device physics of a crossbar: weights to conductance pairs, programming, drift, read
noise, stuck-at faults, and the drift-compensation calibration read.

A Linear weight W (out x in) is cut into row blocks of `rows` inputs; block b holds
W[:, b*rows:(b+1)*rows] transposed, so device arrays are [row_blocks, rows, out] (inputs
on rows, outputs on columns; the last block is padded with devices programmed to 0). Each weight is a
differential pair G+ - G- scaled so the largest |W| of its tile (`per_tile`: a
rows x cols block) or of its column (`per_column`) maps to g_max. All conductances are
in microsiemens; "normalised" weights are (G+ - G-) / g_max, in [-1, 1] before noise.

Time convention: t_s is the time since programming. The published PCM model is anchored
at t0 (20 s), so t_s is clamped to t0: any t_s <= t0 (including 0) is the state at t0,
with no drift and the 1/f read noise accumulated until t0.
"""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from simulator.errors import UserError
from simulator.hw.schema import DeviceConfig

DEVICE_MODELS = ("pcm", "gaussian", "reram", "ideal")
GAUSSIAN_KINDS = ("additive", "proportional")
WEIGHT_SCALINGS = ("per_tile", "per_column")
DRIFT_COMPENSATIONS = ("global", "per_column", "none")
PCM_REFERENCE_G_MAX_US = 25.0  # the published PCM sigma polynomial is fitted at 25 uS
_TINY_GR = np.float32(1e-7)  # floor for gr inside logarithms and powers (gr = 0 is a reset device)
_Q_AMPLITUDE, _Q_EXPONENT, _Q_MAX = np.float32(0.0088), np.float32(0.65), np.float32(0.2)


def check_choice(value: str, valid: tuple[str, ...], key: str) -> str:
    if value not in valid:
        raise UserError(f"hw config: {key}: expected one of {', '.join(valid)}, got {value!r}")
    return value


# ---------------------------------------------------------------- weights to blocks

def weight_max_abs(weight: np.ndarray, rows: int, cols: int, weight_scaling: str) -> np.ndarray:
    """max|W| that maps to g_max, per (row block, output): per tile or per column.

    All-zero tiles/columns get 1 so the mapping stays finite (their conductances are 0).
    """
    check_choice(weight_scaling, WEIGHT_SCALINGS, "analog.periphery.weight_scaling")
    column_max = _row_block_abs_max(np.ascontiguousarray(weight, dtype=np.float32), rows)
    if weight_scaling == "per_tile":
        row_blocks, out_features = column_max.shape
        col_blocks = -(-out_features // cols)
        padded = np.zeros((row_blocks, col_blocks * cols), dtype=column_max.dtype)
        padded[:, :out_features] = column_max
        tile_max = padded.reshape(row_blocks, col_blocks, cols).max(axis=2)
        column_max = np.repeat(tile_max, cols, axis=1)[:, :out_features]
    return np.where(column_max > 0, column_max, 1.0).astype(np.float32)


@njit(cache=True, nogil=True, parallel=True)
def _row_block_abs_max(weight, rows):
    """max|W[o, block inputs]| as [row_blocks, out], read straight from W (no |W| copy)."""
    out_features, in_features = weight.shape
    row_blocks = -(-in_features // rows)
    result = np.zeros((row_blocks, out_features), dtype=np.float32)
    for o in prange(out_features):
        for block in range(row_blocks):
            largest = np.float32(0.0)
            for i in range(block * rows, min((block + 1) * rows, in_features)):
                largest = max(largest, abs(weight[o, i]))
            result[block, o] = largest
    return result


def target_conductances_uS(normalised: np.ndarray, g_max_uS: float) -> tuple[np.ndarray, np.ndarray]:
    """Differential pair targets: G+ = clip(w g_max, 0, g_max), G- = clip(-w g_max, 0, g_max)."""
    scaled = normalised * np.float32(g_max_uS)
    return (np.fmin(np.fmax(scaled, 0.0), g_max_uS),
            np.fmin(np.fmax(-scaled, 0.0), g_max_uS))


# ---------------------------------------------------------------- published PCM statistics
# Plain numpy expressions on purpose: they are the readable reference for arrays, and
# numba compiles the very same source into the fused per-device kernels below. The
# float32 constants inside logarithms and powers keep float32 inputs in float32 (logf,
# powf: 2-4x cheaper per device than the float64 functions), and fmin/fmax (equal to
# minimum/maximum without NaNs) compile to single instructions where numba's NaN-aware
# minimum/maximum branch: neither changes numpy's results.

def pcm_programming_sigma_uS(gr, g_max_uS: float):
    """Programming noise std: (0.26348 + 1.9650 gr - 1.1731 gr^2) * g_max / 25 uS."""
    return (0.26348 + 1.9650 * gr - 1.1731 * gr ** 2) * (g_max_uS / PCM_REFERENCE_G_MAX_US)


def pcm_drift_nu_mean(gr):
    return np.fmin(np.fmax(-0.0155 * np.log(np.fmax(gr, _TINY_GR)) + 0.0244, 0.049), 0.1)


def pcm_drift_nu_std(gr):
    return np.fmin(np.fmax(-0.0125 * np.log(np.fmax(gr, _TINY_GR)) - 0.0059, 0.008), 0.045)


def pcm_read_noise_q(gr):
    """Q_s = min(0.0088 / gr^0.65, 0.2): relative 1/f noise amplitude per device."""
    return np.fmin(_Q_AMPLITUDE / np.fmax(gr, _TINY_GR) ** _Q_EXPONENT, _Q_MAX)


def read_noise_time_factor(t_s: float, device: DeviceConfig) -> float:
    """sqrt(ln((t + t_read) / (2 t_read))) at the clamped time: 1/f noise accumulated to t."""
    t_eff_s = effective_time_s(t_s, device)
    return float(np.sqrt(max(np.log((t_eff_s + device.t_read_s) / (2.0 * device.t_read_s)), 0.0)))


def effective_time_s(t_s: float, device: DeviceConfig) -> float:
    if t_s < 0:
        raise UserError(f"drift time: expected t >= 0 seconds, got {t_s!r}")
    return max(float(t_s), device.t0_s)


def has_read_noise(device: DeviceConfig) -> bool:
    """Only PCM has accumulated 1/f read noise."""
    return device.model == "pcm" and device.read_noise_scale != 0


_target_conductances_uS = njit(cache=True)(target_conductances_uS)
_pcm_programming_sigma_uS = njit(cache=True)(pcm_programming_sigma_uS)
_pcm_drift_nu_mean = njit(cache=True)(pcm_drift_nu_mean)
_pcm_drift_nu_std = njit(cache=True)(pcm_drift_nu_std)
_pcm_read_noise_q = njit(cache=True)(pcm_read_noise_q)


# ---------------------------------------------------------------- chunked parallel passes
# Programming and reading at t are one fused numba pass each, over chunks of one row
# block x a range of columns. Chunk i draws its noise from child generator i of the
# stream's generator and owns its outputs (and its columns' calibration sums), so
# results depend only on the seed and the shape, never on the thread count or schedule.
# The chunks run on numba.get_num_threads() Python threads: numpy's draws and the nogil
# kernels release the GIL.

_CHUNK_DEVICES = 1 << 17  # devices per chunk: its noise draws stay cache-resident


def _chunks(shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """(row block, first column, stop column) of every chunk of a [row_blocks, rows, out]
    array: equal widths (to +-1 column), at most _CHUNK_DEVICES devices each."""
    row_blocks, rows, out_features = shape
    per_block = max(1, -(-out_features * rows // _CHUNK_DEVICES))
    edges = [out_features * k // per_block for k in range(per_block + 1)]
    return [(block, start, stop) for block in range(row_blocks)
            for start, stop in itertools.pairwise(edges)]


def chunk_generators(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """The generators of `count` chunks: children of rng's seed sequence on SFC64, whose
    float32 normals are ~30% cheaper than PCG64's (the draws dominate both passes)."""
    return [np.random.Generator(np.random.SFC64(child)) for child in rng.bit_generator.seed_seq.spawn(count)]


def _run_chunks(task, chunks: list, rng: np.random.Generator | None) -> None:
    """task(chunk, chunk_rng) for every chunk, chunk i with chunk generator i of rng."""
    children = chunk_generators(rng, len(chunks)) if rng is not None else [None] * len(chunks)
    workers = max(1, min(numba.get_num_threads(), len(chunks)))
    pending, pending_lock = iter(range(len(chunks))), threading.Lock()

    def run_share() -> None:  # takes the next chunk until none is left: no idle worker
        while True:
            with pending_lock:
                i = next(pending, None)
            if i is None:
                return
            task(chunks[i], children[i])

    if workers == 1:
        run_share()
        return
    with ThreadPoolExecutor(workers) as pool:
        for share in [pool.submit(run_share) for _ in range(workers)]:
            share.result()


# ---------------------------------------------------------------- one chip realisation

@dataclass(frozen=True)
class ProgrammedPair:
    """The programmed state of one realisation of a layer: [row_blocks, rows, out] arrays.

    `nu_*` are the per-device drift exponents (None when the model does not drift), kept
    as float16: 3 digits move (t/t0)^-nu by < 1e-3 even at 10 years, far below PCM's own
    spread, and save 4 bytes per weight of resident state; reading at t then needs one
    65536-entry table of drift factors instead of a power per device.
    Stuck-at faults are already folded in: stuck devices hold 0 or g_max and do not drift.
    """

    g_pos_uS: np.ndarray
    g_neg_uS: np.ndarray
    nu_pos: np.ndarray | None
    nu_neg: np.ndarray | None


class _ProgrammingLaw(NamedTuple):
    """DeviceConfig resolved to the numbers the programming kernel needs."""

    model: int  # index into DEVICE_MODELS
    g_max_uS: float
    prog_noise_scale: float
    drift_scale: float
    gaussian_sigma_uS: float  # additive Gaussian std
    gaussian_relative_sigma: float  # proportional Gaussian std / |G|
    reram_sigma: float
    reram_nu: float
    stuck_at_zero_frac: float
    stuck_at_gmax_frac: float


_PCM, _GAUSSIAN, _RERAM, _IDEAL = (DEVICE_MODELS.index(m) for m in ("pcm", "gaussian", "reram", "ideal"))
_NORMALS_PER_DEVICE = {"pcm": 2, "gaussian": 1, "reram": 1, "ideal": 0}  # programming, drift
_NO_CODES = np.empty((0, 0, 0), dtype=np.uint16)


def _programming_law(device: DeviceConfig) -> _ProgrammingLaw:
    check_choice(device.model, DEVICE_MODELS, "analog.device.model")
    additive = proportional = 0.0
    if device.model == "gaussian":
        check_choice(device.gaussian_kind, GAUSSIAN_KINDS, "analog.device.gaussian_kind")
        if device.gaussian_kind == "additive":
            additive = device.gaussian_sigma * device.g_max_uS
        else:
            proportional = device.gaussian_sigma
    return _ProgrammingLaw(
        DEVICE_MODELS.index(device.model), device.g_max_uS, device.prog_noise_scale,
        device.drift_scale, additive, proportional, device.reram_sigma, device.reram_relax_nu,
        device.stuck_at_zero_frac, device.stuck_at_gmax_frac)


def program_pair(weight: np.ndarray, weight_max: np.ndarray, rows: int, device: DeviceConfig,
                 rng: np.random.Generator) -> ProgrammedPair:
    """Program W (out x in) onto differential pairs in row blocks of `rows` inputs,
    drawing all static noise. Device (b, r, o) targets the normalised weight
    W[o, b*rows + r] / weight_max[b, o] in [-1, 1] (0 on padding rows), read straight
    from W: no transposed or normalised copy of the layer is made.

    Per chunk: the normals of both polarities ([2, per device, rows, columns]: programming,
    then drift), then the fault uniforms if any fault fraction is set.
    """
    law = _programming_law(device)
    weight = np.ascontiguousarray(weight, dtype=np.float32)
    weight_max = np.ascontiguousarray(weight_max, dtype=np.float32)
    shape = (weight_max.shape[0], rows, weight.shape[0])
    g_pos = np.empty(shape, dtype=np.float32)
    g_neg = np.empty(shape, dtype=np.float32)
    drifts = device.model in ("pcm", "reram")
    nu_pos = np.empty(shape, dtype=np.float16) if drifts else None
    nu_neg = np.empty(shape, dtype=np.float16) if drifts else None
    codes_pos = nu_pos.view(np.uint16) if drifts else _NO_CODES
    codes_neg = nu_neg.view(np.uint16) if drifts else _NO_CODES
    normals_per_device = _NORMALS_PER_DEVICE[device.model]
    faults = device.stuck_at_zero_frac > 0 or device.stuck_at_gmax_frac > 0

    def program_chunk(chunk, chunk_rng):
        block, start, stop = chunk
        normals = chunk_rng.standard_normal((2, normals_per_device, rows, stop - start), dtype=np.float32)
        uniforms = chunk_rng.random((2, rows, stop - start) if faults else (2, 0, 0), dtype=np.float32)
        _program_chunk(weight, weight_max, block, start, normals, uniforms, law, g_pos, g_neg, codes_pos, codes_neg)

    _run_chunks(program_chunk, _chunks(shape), rng)
    return ProgrammedPair(g_pos, g_neg, nu_pos, nu_neg)


@njit(cache=True, nogil=True)
def _program_chunk(weight, weight_max, block, start, normals, uniforms, law, g_pos, g_neg, codes_pos, codes_neg):
    """Program one chunk's devices a row (contiguous columns) and polarity at a time;
    writes G and the float16 bits of nu."""
    rows, width = normals.shape[2], normals.shape[3]
    stop = start + width
    normalised_row = np.empty(width, dtype=np.float32)
    g_row = np.empty(width, dtype=np.float32)
    nu_row = np.zeros(width, dtype=np.float32)
    nu_row_bits = nu_row.view(np.uint32)
    for r in range(rows):
        row = block * rows + r
        for j in range(width):
            normalised_row[j] = (weight[start + j, row] / weight_max[block, start + j]
                                 if row < weight.shape[1] else np.float32(0.0))
        for side in range(2):
            _program_row(normalised_row, side, normals[side], r, law, g_row, nu_row)
            if uniforms.shape[1] > 0:
                _apply_stuck_faults(uniforms[side, r], law, g_row, nu_row)
            g_out, codes = (g_pos, codes_pos) if side == 0 else (g_neg, codes_neg)
            g_out[block, r, start:stop] = g_row
            if codes.size > 0:
                for j in range(width):
                    codes[block, r, start + j] = _float16_bits(nu_row_bits[j])


@njit(cache=True, nogil=True, inline="always")
def _program_row(normalised, side, normals, r, law, g_out, nu_out):
    """Programmed G and drift exponent of one polarity's devices on row r of a chunk;
    normals[k, r] holds the k-th draw of each (programming, then drift). One loop per
    model keeps the model test out of the per-device work."""
    g_max = np.float32(law.g_max_uS)
    if law.model == _PCM:
        for j in range(g_out.size):
            target_uS = np.float32(_target_conductances_uS(normalised[j], law.g_max_uS)[side])
            gr = target_uS / g_max
            sigma_uS = _pcm_programming_sigma_uS(gr, law.g_max_uS) * law.prog_noise_scale
            g_out[j] = max(target_uS + sigma_uS * normals[0, r, j], 0.0)
            nu_out[j] = law.drift_scale * abs(_pcm_drift_nu_mean(gr) + _pcm_drift_nu_std(gr) * normals[1, r, j])
    elif law.model == _GAUSSIAN:
        for j in range(g_out.size):
            target_uS = np.float32(_target_conductances_uS(normalised[j], law.g_max_uS)[side])
            sigma_uS = law.gaussian_sigma_uS + law.gaussian_relative_sigma * target_uS
            g_out[j] = max(target_uS + sigma_uS * normals[0, r, j], 0.0)
    elif law.model == _RERAM:
        for j in range(g_out.size):
            target_uS = np.float32(_target_conductances_uS(normalised[j], law.g_max_uS)[side])
            g_out[j] = target_uS * np.exp(law.reram_sigma * normals[0, r, j])
            nu_out[j] = law.reram_nu
    else:  # ideal
        for j in range(g_out.size):
            g_out[j] = _target_conductances_uS(normalised[j], law.g_max_uS)[side]


@njit(cache=True, nogil=True, inline="always")
def _apply_stuck_faults(uniforms, law, g_out, nu_out):
    """Force the stuck-at-0 and stuck-at-g_max fractions of a row; stuck devices do not drift."""
    for j in range(g_out.size):
        if uniforms[j] < law.stuck_at_zero_frac:
            g_out[j], nu_out[j] = 0.0, 0.0
        elif uniforms[j] < law.stuck_at_zero_frac + law.stuck_at_gmax_frac:
            g_out[j], nu_out[j] = law.g_max_uS, 0.0


@njit(cache=True, nogil=True)
def _float16_bits(bits):
    """IEEE half-precision bits of the finite float32 with these bits, rounded to nearest
    even as numpy's cast does (integer-only: cheap next to numpy's scalar cast)."""
    sign = (bits >> 16) & 0x8000
    exponent = (bits >> 23) & 0xFF  # biased by 127; half precision is biased by 15
    mantissa = bits & 0x7FFFFF
    if exponent > 127 + 15:
        return np.uint16(sign | 0x7C00)  # overflow: infinity
    if exponent >= 127 - 14:  # normal half: keep 10 of 23 mantissa bits
        half = ((exponent - 112) << 10) | (mantissa >> 13)
        dropped, tie = mantissa & 0x1FFF, 0x1000
    elif exponent >= 127 - 25:  # subnormal half: units of 2^-24, implicit bit made explicit
        shift = 126 - exponent
        half = (mantissa | 0x800000) >> shift
        dropped, tie = (mantissa | 0x800000) & ((1 << shift) - 1), 1 << (shift - 1)
    else:
        return np.uint16(sign)  # below half of the smallest subnormal: 0
    if dropped > tie or (dropped == tie and half & 1):
        half += 1  # a carry out of the mantissa correctly bumps the exponent (up to infinity)
    return np.uint16(sign | half)


def drift_factor_table(t_s: float, device: DeviceConfig) -> np.ndarray:
    """(t / t0)^-nu for every float16 nu, indexed by its bits: the drift factor of a device."""
    nu = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    ratio = np.float32(effective_time_s(t_s, device) / device.t0_s)
    with np.errstate(over="ignore", invalid="ignore"):  # inf/nan codes: never stored
        return np.power(ratio, -nu)


# ---------------------------------------------------------------- reading at time t

@dataclass(frozen=True)
class CalibrationRead:
    """An all-ones read of each column's two lines over the used rows, uS: [row_blocks, out]."""

    pos_uS: np.ndarray
    neg_uS: np.ndarray


def weights_at(pair: ProgrammedPair, t_s: float, device: DeviceConfig, used_rows: int,
               read_rng: np.random.Generator | None, weights_out: np.ndarray,
               read_variance_out: np.ndarray | None = None) -> tuple[CalibrationRead, CalibrationRead]:
    """Write the normalised weights (G+(t) - G-(t)) / g_max into `weights_out` in one pass.

    G(t) = G_prog (t / t0)^-nu at the clamped time, plus, if `read_rng` is given, one
    static realisation of the accumulated 1/f read noise N(0, |G(t)| Q_s(gr_prog)
    sqrt(ln(...))) clamped at 0 (per chunk: the normals of both polarities). Pass no
    generator when read noise is applied per MVM; `read_variance_out` then receives
    (sigma+^2 + sigma-^2) / g_max^2. Rows at or beyond `used_rows` (global row index) are
    padding. Returns the calibration reads of the programmed state and of the state at t.
    """
    ratio = effective_time_s(t_s, device) / device.t0_s
    drifts = pair.nu_pos is not None and ratio != 1.0
    noise_scale = (device.read_noise_scale * read_noise_time_factor(t_s, device)
                   if has_read_noise(device) else 0.0)
    static_noise = read_rng is not None and noise_scale > 0
    variance = read_variance_out is not None and noise_scale > 0
    if read_variance_out is not None and not variance:
        read_variance_out[...] = 0.0
    table = drift_factor_table(t_s, device) if drifts else np.ones(1, dtype=np.float32)
    codes_pos, codes_neg = ((pair.nu_pos.view(np.uint16), pair.nu_neg.view(np.uint16)) if drifts
                            else (_NO_CODES, _NO_CODES))
    row_blocks, rows, out_features = pair.g_pos_uS.shape
    reads = np.zeros((4, row_blocks, out_features))  # programmed +/-, now +/-
    variance_out = read_variance_out if variance else np.empty((0, 0, 0), dtype=np.float32)

    def read_chunk(chunk, chunk_rng):
        block, start, stop = chunk
        normals = (chunk_rng.standard_normal((2, rows, stop - start), dtype=np.float32) if static_noise
                   else np.empty((2, 0, 0), dtype=np.float32))
        _read_chunk(pair.g_pos_uS, pair.g_neg_uS, codes_pos, codes_neg, table, block, start, stop,
                    used_rows, normals, noise_scale, device.g_max_uS, weights_out, variance_out, reads)

    _run_chunks(read_chunk, _chunks(pair.g_pos_uS.shape), read_rng if static_noise else None)
    return CalibrationRead(reads[0], reads[1]), CalibrationRead(reads[2], reads[3])


@njit(cache=True, nogil=True)
def _read_chunk(g_pos, g_neg, codes_pos, codes_neg, drift_table, block, start, stop, used_rows,
                normals, noise_scale, g_max_uS, weights, variance, reads):
    """Drift, read noise, W(t), per-read variance and calibration sums of one chunk."""
    rows = g_pos.shape[1]
    g_max = np.float32(g_max_uS)
    for r in range(rows):
        used = block * rows + r < used_rows
        for c in range(start, stop):
            g_prog_pos, g_prog_neg = g_pos[block, r, c], g_neg[block, r, c]
            g_t_pos, g_t_neg = g_prog_pos, g_prog_neg
            if codes_pos.size > 0:
                g_t_pos = g_prog_pos * drift_table[codes_pos[block, r, c]]
                g_t_neg = g_prog_neg * drift_table[codes_neg[block, r, c]]
            if normals.size > 0 or variance.size > 0:
                sigma_pos = abs(g_t_pos) * _pcm_read_noise_q(g_prog_pos / g_max) * noise_scale
                sigma_neg = abs(g_t_neg) * _pcm_read_noise_q(g_prog_neg / g_max) * noise_scale
                if normals.size > 0:
                    g_t_pos = np.float32(max(g_t_pos + sigma_pos * normals[0, r, c - start], 0.0))
                    g_t_neg = np.float32(max(g_t_neg + sigma_neg * normals[1, r, c - start], 0.0))
                if variance.size > 0:
                    variance[block, r, c] = (sigma_pos ** 2 + sigma_neg ** 2) / g_max_uS ** 2
            weights[block, r, c] = (g_t_pos - g_t_neg) / g_max
            if used:
                reads[0, block, c] += g_prog_pos
                reads[1, block, c] += g_prog_neg
                reads[2, block, c] += g_t_pos
                reads[3, block, c] += g_t_neg


# ---------------------------------------------------------------- drift compensation

def compensation_factors(reference: CalibrationRead, now: CalibrationRead, cols: int, mode: str) -> np.ndarray:
    """Digital output gain per (row block, output) that undoes the drift of each tile.

    From the calibration reads (all-ones on the tile's used rows) of the programmed
    state (`reference`) and of the state at t (`now`):
    * global: per tile, alpha = sum over its columns of |I+ - I-| at t0 / the same at t;
    * per_column: alpha = (I+ + I-) at t0 / (I+ + I-) at t per column (the two line
      currents read separately; their sum cannot cancel to ~0 as the difference can);
    * none: 1. A read of 0 (empty tile or column) gives 1.
    """
    check_choice(mode, DRIFT_COMPENSATIONS, "analog.periphery.drift_compensation")
    if mode == "none":
        return np.ones(reference.pos_uS.shape, dtype=np.float32)
    if mode == "per_column":
        ref_read, now_read = reference.pos_uS + reference.neg_uS, now.pos_uS + now.neg_uS
    else:
        ref_read = _sum_per_tile(np.abs(reference.pos_uS - reference.neg_uS), cols)
        now_read = _sum_per_tile(np.abs(now.pos_uS - now.neg_uS), cols)
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
