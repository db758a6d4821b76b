"""Tile periphery: what happens to an input vector on its way through the crossbar tiles.

Order (DESIGN.md "Analog physics"): noise management (divide each tile's input slice by
its abs-max), DAC quantise (step = 2 inp_bound / (2^dac_bits - 2), round half to even)
then clip to +-inp_bound, MVM on the tile (a batched BLAS GEMM over realisations x row
blocks), output noise N(0, out_noise) per output per MVM, optional per-read read noise
(a second GEMM: y += sqrt(x^2 @ Sigma^2) xi), ADC quantise (step = 2 out_bound /
(2^adc_bits - 2)) then clip to +-out_bound, optional iterative bound management, undo
the input scale, the weight scale and the drift-compensation gain, sum the row blocks,
add the digital bias. Values between DAC and ADC are in normalised units: inputs in
[-inp_bound, inp_bound], weights (G+ - G-) / g_max.

The outputs are computed in (token, column) chunks whose GEMM output stays in L3;
everything after the GEMM is one fused numba pass over a chunk [row_blocks, tokens,
outputs], parallel over tokens, reading the GEMM output once and writing the layer output once;
its Gaussian numbers come from per-call pools (simulator.analog.rng).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange

from simulator.analog.device import check_choice
from simulator.analog.rng import MvmNoise, mvm_noise, pool_offset
from simulator.hw.schema import AnalogConfig

NOISE_MANAGEMENTS = ("abs_max", "none")
BOUND_MANAGEMENTS = ("iterative", "none")
_OUTPUT_NOISE_STREAM = 1
_READ_NOISE_STREAM = 2
_NO_NOISE = MvmNoise(np.empty((0, 1), dtype=np.float32), np.empty(0, dtype=np.uint64))
_NO_READ = np.empty((0, 0, 0, 0), dtype=np.float32)


@dataclass(frozen=True)
class PeripherySettings:
    """The periphery numbers the kernels need, resolved once from AnalogConfig."""

    rows: int
    cols: int
    inp_bound: float
    dac_levels: int  # 2^(dac_bits-1) - 1 positive levels: step = inp_bound / dac_levels
    out_bound: float
    adc_levels: int
    out_noise: float
    noise_management: bool
    bound_iterations: int  # extra MVMs allowed per vector after clipping (0: off)
    read_noise_gemm: bool

    @property
    def dac_step(self) -> float:
        return self.inp_bound / self.dac_levels

    @property
    def adc_step(self) -> float:
        return self.out_bound / self.adc_levels


def periphery_settings(analog: AnalogConfig) -> PeripherySettings:
    p = analog.periphery
    check_choice(p.noise_management, NOISE_MANAGEMENTS, "analog.periphery.noise_management")
    check_choice(p.bound_management, BOUND_MANAGEMENTS, "analog.periphery.bound_management")
    return PeripherySettings(
        rows=analog.rows, cols=analog.cols, inp_bound=p.inp_bound,
        dac_levels=2 ** (analog.dac_bits - 1) - 1, out_bound=p.out_bound,
        adc_levels=2 ** (analog.adc_bits - 1) - 1, out_noise=p.out_noise,
        noise_management=p.noise_management == "abs_max",
        bound_iterations=p.max_bound_iterations if p.bound_management == "iterative" else 0,
        read_noise_gemm=p.read_noise_gemm)


@dataclass(frozen=True)
class TileWeights:
    """One realisation-batched layer as the periphery sees it at a given time t.

    weights: normalised (G+ - G-) / g_max, [realisations * row_blocks, rows, out] (torch);
    read_variance: (sigma+^2 + sigma-^2) / g_max^2 of the per-read noise, same shape, or None;
    out_scale: max|W| times the drift-compensation gain, [realisations, row_blocks, out].
    """

    weights: torch.Tensor
    read_variance: torch.Tensor | None
    out_scale: np.ndarray

    @property
    def realisations(self) -> int:
        return self.out_scale.shape[0]

    @property
    def row_blocks(self) -> int:
        return self.out_scale.shape[1]


_CACHE_LINE_BYTES = 64


def cache_aligned_empty(size: int, dtype) -> np.ndarray:
    """An uninitialised 1-D array of `size` items whose first byte starts a cache line."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size * itemsize + _CACHE_LINE_BYTES, dtype=np.uint8)
    start = -raw.ctypes.data % _CACHE_LINE_BYTES
    return raw[start:start + size * itemsize].view(dtype)


class Workspace:
    """Scratch buffers reused by every MVM call of the layers that share it.

    Fresh scratch per call costs first-touch page faults on every call, so layers of one
    model share one set of buffers sized for the largest (the GEMM output is one chunk,
    at most CHUNK_BYTES). Buffers start on a cache line: numpy's
    16-byte-aligned allocations made torch.bmm into them 25-45% slower than into
    torch's own (GPT-2 shapes, 2 threads). Not thread-safe: one forward at a time.
    Copies start empty (the contents are scratch).
    """

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = cache_aligned_empty(size, dtype)
            self._buffers[name] = buffer
        return buffer[:size].reshape(shape)

    def __deepcopy__(self, memo) -> "Workspace":
        return Workspace()

    def __getstate__(self) -> dict:
        return {"_buffers": {}}


@njit(fastmath=True, cache=True)
def dac_inputs(x, rows, inp_bound, dac_levels, noise_management, headroom, x_quantised, in_scale):
    """Noise management + DAC for every tile input slice (writes x_quantised, in_scale).

    x: [R, T, in]; x_quantised: [R, row_blocks, T, rows] (padding rows set to 0);
    headroom: [R, row_blocks, T], extra input division from bound management (1 = none);
    in_scale: [R, row_blocks, T], the digital factor that undoes the input scaling.
    Rounding is to the nearest level, ties to even (np.rint on the float32 value, as the
    reference toolkit does: positive and negative ties round alike). Serial on purpose:
    this pass is 1/out of the GEMM's work, and on a busy machine a parallel launch costs more. Loops run
    over 1-D row views, token-major, which the compiler vectorises (2.5-3x faster than
    indexing the 3-D and 4-D arrays element by element, GPT-2 shapes).
    """
    n_real, n_tok, n_in = x.shape
    row_blocks = x_quantised.shape[1]
    step = np.float32(inp_bound / dac_levels)
    levels = np.float32(dac_levels)
    for r in range(n_real):
        for t in range(n_tok):
            for b in range(row_blocks):
                start = b * rows
                width = min(rows, n_in - start)
                source = x[r, t, start:start + width]
                target = x_quantised[r, b, t]
                scale = np.float32(1.0)
                if noise_management:
                    abs_max = np.float32(0.0)
                    for i in range(width):
                        abs_max = max(abs_max, abs(source[i]))
                    if abs_max > 0:
                        scale = abs_max
                scale *= headroom[r, b, t]
                in_scale[r, b, t] = scale
                to_steps = np.float32(1.0) / (scale * step)
                for i in range(width):
                    level = min(max(np.rint(source[i] * to_steps), -levels), levels)
                    target[i] = level * step
                target[width:] = 0.0


@njit(parallel=True, fastmath=True, cache=True)
def adc_accumulate(y, read_variance, in_scale, out_scale, bias, out_noise, adc_step, adc_levels,
                   noise_pools, noise_offset_keys, read_pools, read_offset_keys, active, tok_start,
                   col_start, out, clipped):
    """Output noise, read noise, ADC, rescale and row-block sum for the active tokens of one
    chunk: tokens tok_start + [0, y.shape[2]), output columns col_start + [0, y.shape[3]).

    y: GEMM output of the chunk [R, row_blocks, chunk tokens, chunk columns]; read_variance:
    same shape, or size 0 for none; in_scale: [R, row_blocks, T]; out_scale: [R, row_blocks, out];
    bias: [out] or size 0; *_pools / *_offset_keys: this call's N(0, 1) pools per
    realisation (see rng.py), indexed by the layer's token and output column so the noise
    does not depend on the chunking; active: [R, T] tokens to compute; out: [R, T, out] (only active
    rows of the chunk's columns are written); clipped: [R, row_blocks, T], set (never
    cleared) where an output of that tile input exceeded out_bound.
    Rounding is to the nearest level, ties to even (np.rint on float32). Clipping is
    detected by summing what the clip removed: a reduction the compiler vectorises, unlike a running max (~10x).
    """
    n_real, row_blocks, chunk_tokens, n_cols = y.shape
    n_tok = in_scale.shape[2]
    spread = noise_pools.shape[1] - out.shape[2]
    with_read_noise = read_variance.size > 0
    with_bias = bias.size > 0
    levels = np.float32(adc_levels)
    to_steps = np.float32(1.0 / adc_step)
    noise_sigma = np.float32(out_noise)
    for item in prange(n_real * chunk_tokens):
        r = item // chunk_tokens
        t_chunk = item % chunk_tokens
        t = tok_start + t_chunk
        if not active[r, t]:
            continue
        row = out[r, t, col_start:col_start + n_cols]
        for o in range(n_cols):
            row[o] = bias[col_start + o] if with_bias else np.float32(0.0)
        for b in range(row_blocks):
            value_per_step = np.float32(adc_step) * in_scale[r, b, t]
            y_bt = y[r, b, t_chunk]
            scale_b = out_scale[r, b, col_start:]
            noise_start = pool_offset(noise_offset_keys[r], b * n_tok + t, spread) + col_start
            noise = noise_pools[r, noise_start:noise_start + n_cols]
            excess = np.float32(0.0)
            if with_read_noise:
                read_start = pool_offset(read_offset_keys[r], b * n_tok + t, spread) + col_start
                read = read_pools[r, read_start:read_start + n_cols]
                variance_bt = read_variance[r, b, t_chunk]
                for o in range(n_cols):
                    v = y_bt[o] + noise_sigma * noise[o] + np.sqrt(variance_bt[o]) * read[o]
                    level = np.rint(v * to_steps)
                    kept = min(max(level, -levels), levels)
                    excess += abs(level - kept)
                    row[o] += kept * value_per_step * scale_b[o]
            else:
                for o in range(n_cols):
                    level = np.rint((y_bt[o] + noise_sigma * noise[o]) * to_steps)
                    kept = min(max(level, -levels), levels)
                    excess += abs(level - kept)
                    row[o] += kept * value_per_step * scale_b[o]
            if excess > 0:
                clipped[r, b, t] = True


def tile_matmuls(x_tiles: torch.Tensor, weights: torch.Tensor, out: torch.Tensor) -> None:
    """out[k] = x_tiles[k] @ weights[k] for every tile. One torch.mm per tile rather than a
    torch.bmm: measured ~10% faster for the GPT-2 lm_head tiles (256 x 50257), equal for
    the smaller projections (2 threads). `weights` may be a column slice: rows with a
    stride and unit column step are a BLAS layout, so torch.mm reads them in place."""
    for tile in range(x_tiles.shape[0]):
        torch.mm(x_tiles[tile], weights[tile], out=out[tile])


CHUNK_BYTES = 24 << 20
MAX_CHUNK_COLUMNS = 1024
_FLOATS_PER_CACHE_LINE = 16


def even_split(total: int, at_most: int) -> int:
    """The size of the fewest equal parts of `total` that are each at most `at_most`."""
    parts = -(-total // max(1, at_most))
    return -(-total // parts)


def chunk_shape(n_tiles: int, n_tok: int, n_out: int, chunk_bytes: int = CHUNK_BYTES) -> tuple[int, int]:
    """(tokens, output columns) per chunk, so that a chunk's GEMM output (n_tiles x tokens x
    columns float32) fits in `chunk_bytes`: written by the tile GEMMs and re-read by the ADC
    pass while still in the shared L3 (32 MiB) instead of a round trip through DRAM (the
    GPT-2 lm_head's full output is 617 MB for 1024 tokens). Columns are capped first, in
    whole cache lines (narrow GEMMs run slower than short ones), then tokens fill the budget."""
    columns = min(n_out, MAX_CHUNK_COLUMNS)
    if columns < n_out:
        columns = -(-even_split(n_out, columns) // _FLOATS_PER_CACHE_LINE) * _FLOATS_PER_CACHE_LINE
    tokens = even_split(n_tok, chunk_bytes // (4 * n_tiles * columns))
    return tokens, columns


def analog_matmul(x: np.ndarray, tiles: TileWeights, bias: np.ndarray, settings: PeripherySettings,
                  stream_keys: np.ndarray, call: int, workspace: Workspace,
                  chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """The layer output [R, T, out] for inputs x [R, T, in] (float32), realisation r on x[r].

    The outputs are computed in (token, column) chunks (`chunk_shape`): tile GEMMs of the
    chunk, then the ADC pass over it. The noise is indexed by token and output column, so
    the result does not depend on `chunk_bytes`.
    Bound management re-runs the tile inputs that clipped with half the input (twice the
    digital scale), up to `bound_iterations` times; each re-run costs one more GEMM, so a
    configuration that never clips pays nothing for it.
    """
    n_real, n_tok, _ = x.shape
    row_blocks, rows = tiles.row_blocks, settings.rows
    n_out = tiles.out_scale.shape[2]
    n_tiles = n_real * row_blocks
    tile_shape = (n_real, row_blocks, n_tok)
    headroom = workspace.array("headroom", tile_shape)
    headroom[:] = 1.0
    x_quantised = workspace.array("x_quantised", tile_shape + (rows,))
    in_scale = workspace.array("in_scale", tile_shape)
    clipped = workspace.array("clipped", tile_shape, np.bool_)
    x_tiles = torch.from_numpy(x_quantised).view(n_tiles, n_tok, rows)
    with_read_noise = tiles.read_variance is not None
    tokens, columns = chunk_shape(n_tiles, n_tok, n_out, chunk_bytes)
    out = cache_aligned_empty(n_real * n_tok * n_out, np.float32).reshape(n_real, n_tok, n_out)
    active = np.ones((n_real, n_tok), dtype=np.bool_)
    for iteration in range(settings.bound_iterations + 1):
        dac_inputs(x, rows, settings.inp_bound, settings.dac_levels, settings.noise_management,
                   headroom, x_quantised, in_scale)
        x_tiles_squared = x_tiles.square() if with_read_noise else None
        noise = mvm_noise(stream_keys, call, iteration, _OUTPUT_NOISE_STREAM, n_out)
        read = (mvm_noise(stream_keys, call, iteration, _READ_NOISE_STREAM, n_out)
                if with_read_noise else _NO_NOISE)
        clipped[:] = False
        for tok_start in range(0, n_tok, tokens):
            tok_slice = slice(tok_start, min(tok_start + tokens, n_tok))
            for col_start in range(0, n_out, columns):
                col_slice = slice(col_start, min(col_start + columns, n_out))
                shape = (n_real, row_blocks, tok_slice.stop - tok_start, col_slice.stop - col_start)
                y = workspace.array("y", shape)
                tile_matmuls(x_tiles[:, tok_slice], tiles.weights[:, :, col_slice],
                             torch.from_numpy(y).view(n_tiles, *shape[2:]))
                read_variance = workspace.array("read_variance", shape) if with_read_noise else _NO_READ
                if with_read_noise:
                    tile_matmuls(x_tiles_squared[:, tok_slice], tiles.read_variance[:, :, col_slice],
                                 torch.from_numpy(read_variance).view(n_tiles, *shape[2:]))
                adc_accumulate(y, read_variance, in_scale, tiles.out_scale, bias, settings.out_noise,
                               settings.adc_step, settings.adc_levels, noise.pools, noise.offset_keys,
                               read.pools, read.offset_keys, active, tok_start, col_start, out, clipped)
        if not clipped.any():
            break
        headroom[clipped] *= 2.0
        active = clipped.any(axis=1)
    return out
