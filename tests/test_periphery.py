"""Periphery kernels: DAC, noise management, output/read noise, ADC, bound management."""
import copy

import numpy as np
import pytest
import torch

from simulator.analog import periphery
from simulator.analog.periphery import (TileWeights, Workspace, adc_accumulate, analog_matmul,
                                        chunk_shape, dac_inputs, periphery_settings)
from simulator.analog.rng import MVM_POOL_SPREAD, mvm_noise
from simulator.errors import UserError
from simulator.hw.schema import AnalogConfig, PeripheryConfig

NO_READ = np.empty((0, 0, 0, 0), dtype=np.float32)
NO_BIAS = np.empty(0, dtype=np.float32)


def _dac(x, rows, inp_bound=1.0, bits=8, noise_management=True):
    n_real, n_tok, n_in = x.shape
    row_blocks = -(-n_in // rows)
    x_q = np.full((n_real, row_blocks, n_tok, rows), np.nan, dtype=np.float32)
    in_scale = np.empty((n_real, row_blocks, n_tok), dtype=np.float32)
    headroom = np.ones_like(in_scale)
    dac_inputs(x.astype(np.float32), rows, inp_bound, 2 ** (bits - 1) - 1, noise_management,
               headroom, x_q, in_scale)
    return x_q, in_scale


def _adc(y, out_noise=0.0, out_bound=10.0, bits=8, in_scale=None, out_scale=None, bias=NO_BIAS,
         read_variance=NO_READ, seed=0):
    n_real, row_blocks, n_tok, n_out = y.shape
    in_scale = np.ones((n_real, row_blocks, n_tok), np.float32) if in_scale is None else in_scale
    out_scale = np.ones((n_real, row_blocks, n_out), np.float32) if out_scale is None else out_scale
    keys = np.arange(n_real, dtype=np.uint64) + np.uint64(seed)
    noise = mvm_noise(keys, 0, 0, 1, n_out)
    read = mvm_noise(keys, 0, 0, 2, n_out)
    out = np.empty((n_real, n_tok, n_out), np.float32)
    clipped = np.zeros((n_real, row_blocks, n_tok), np.bool_)
    levels = 2 ** (bits - 1) - 1
    adc_accumulate(y.astype(np.float32), read_variance, in_scale, out_scale, bias, out_noise,
                   out_bound / levels, levels, noise.pools, noise.offset_keys, read.pools,
                   read.offset_keys, np.ones((n_real, n_tok), np.bool_), 0, 0, out, clipped)
    return out, clipped


def test_dac_noise_management_steps_and_padding():
    x = np.array([[[0.5, -2.0, 0.3, 0.01, 7.0]]])  # 1 realisation, 1 token, 5 inputs; rows=3
    x_q, in_scale = _dac(x, rows=3)
    step = 2.0 / 254.0
    np.testing.assert_allclose(in_scale[0, :, 0], [2.0, 7.0])
    expected_0 = np.rint(np.array([0.25, -1.0, 0.15]) / step) * step
    np.testing.assert_allclose(x_q[0, 0, 0], expected_0, rtol=1e-6)
    np.testing.assert_allclose(x_q[0, 1, 0], [np.rint(0.01 / 7 / step) * step, 1.0, 0.0], rtol=1e-6)


def test_dac_without_noise_management_clips_to_inp_bound():
    x = np.array([[[0.5, -2.0, 0.26]]])
    x_q, in_scale = _dac(x, rows=3, inp_bound=0.5, bits=4, noise_management=False)
    step = 2 * 0.5 / (2 ** 4 - 2)
    assert in_scale[0, 0, 0] == 1.0
    np.testing.assert_allclose(x_q[0, 0, 0], [0.5, -0.5, round(0.26 / step) * step], rtol=1e-6)


def test_dac_and_adc_round_ties_to_even():
    """Exact ties (steps of 1/8 and 1/64) go to the even level, negatives mirroring positives."""
    halves = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], np.float32)
    x_q, _ = _dac((halves / 8).reshape(1, 1, 6), rows=6, inp_bound=7 / 8, bits=4, noise_management=False)
    np.testing.assert_array_equal(x_q[0, 0, 0] * 8, [0, 2, 2, 0, -2, -2])
    out, _ = _adc((halves / 64).reshape(1, 1, 1, 6), out_bound=127 / 64, bits=8)
    np.testing.assert_array_equal(out.ravel() * 64, [0, 2, 2, 0, -2, -2])


def test_adc_levels_and_clipping():
    y = np.array([0.0, 0.04, 0.05, -1.3, 9.99, 10.3, -55.0], np.float32).reshape(1, 1, 1, 7)
    out, clipped = _adc(y, out_bound=10.0, bits=8)
    step = 20.0 / 254.0
    expected = np.clip(np.rint(y.ravel() / step), -127, 127) * step
    np.testing.assert_allclose(out.ravel(), expected, rtol=1e-6)
    assert out.ravel()[5] == pytest.approx(10.0) and out.ravel()[6] == pytest.approx(-10.0)
    assert clipped[0, 0, 0]
    _, clipped_small = _adc(y[..., :5], out_bound=10.0, bits=8)
    assert not clipped_small.any()


def test_rescale_row_block_sum_and_bias():
    y = np.array([[[[1.0, 2.0]], [[3.0, -4.0]]]], np.float32)  # 1 real, 2 blocks, 1 token, 2 out
    in_scale = np.array([[[2.0], [0.5]]], np.float32)
    out_scale = np.array([[[1.0, 10.0], [4.0, 1.0]]], np.float32)
    bias = np.array([0.25, -0.5], np.float32)
    out, _ = _adc(y, bits=16, in_scale=in_scale, out_scale=out_scale, bias=bias)
    expected = [1 * 2 * 1 + 3 * 0.5 * 4 + 0.25, 2 * 2 * 10 + -4 * 0.5 * 1 - 0.5]
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-4)


def test_output_noise_spread():
    y = np.zeros((2, 3, 200, 500), np.float32)  # 600 k values, fine 16-bit ADC
    out, _ = _adc(y, out_noise=0.5, bits=16, out_scale=np.full((2, 3, 500), 1 / 3, np.float32))
    per_block = out * 3.0 / np.sqrt(3.0)  # sum of 3 blocks scaled by 1/3: std 0.5 * sqrt(3) / 3
    assert per_block.std() == pytest.approx(0.5, rel=0.01)
    assert abs(per_block.mean()) < 0.01


def test_read_noise_spread_follows_the_variance():
    y = np.zeros((1, 1, 400, 1000), np.float32)
    variance = np.full(y.shape, 0.09, np.float32)
    variance[..., 500:] = 0.01
    out, _ = _adc(y, bits=16, read_variance=variance)
    assert out[..., :500].std() == pytest.approx(0.3, rel=0.01)
    assert out[..., 500:].std() == pytest.approx(0.1, rel=0.01)


def test_mvm_noise_is_reproducible_and_fresh_per_call():
    keys = np.array([11, 12], np.uint64)
    first, again = mvm_noise(keys, 3, 0, 1, 10), mvm_noise(keys, 3, 0, 1, 10)
    np.testing.assert_array_equal(first.pools, again.pools)
    np.testing.assert_array_equal(first.offset_keys, again.offset_keys)
    assert first.pools.shape == (2, MVM_POOL_SPREAD + 10)
    assert not np.array_equal(first.pools, mvm_noise(keys, 4, 0, 1, 10).pools)
    assert not np.array_equal(first.pools[0], first.pools[1])


def _tiles(weight_blocks, weight_max=1.0):
    n_real, row_blocks, rows, n_out = weight_blocks.shape
    weights = torch.from_numpy(weight_blocks.reshape(n_real * row_blocks, rows, n_out).astype(np.float32))
    return TileWeights(weights, None, np.full((n_real, row_blocks, n_out), weight_max, np.float32))


def test_bound_management_recovers_clipped_outputs():
    rng = np.random.default_rng(5)
    w = rng.uniform(0.5, 1.0, (1, 1, 64, 8)).astype(np.float32)  # all-positive: outputs ~ 48
    x = rng.uniform(0.5, 1.0, (1, 4, 64)).astype(np.float32)
    exact = x[0] @ w[0, 0]
    base = dict(rows=64, cols=8, dac_bits=16, adc_bits=16)
    plain = periphery_settings(AnalogConfig(**base, periphery=PeripheryConfig(out_bound=20.0, out_noise=0.0)))
    managed = periphery_settings(AnalogConfig(**base, periphery=PeripheryConfig(
        out_bound=20.0, out_noise=0.0, bound_management="iterative", max_bound_iterations=3)))
    keys = np.array([1], np.uint64)
    clipped = analog_matmul(x, _tiles(w), NO_BIAS, plain, keys, 0, Workspace())
    recovered = analog_matmul(x, _tiles(w), NO_BIAS, managed, keys, 0, Workspace())
    assert np.all(clipped[0] <= 20.0 * x[0].max(axis=1, keepdims=True) + 1e-3)
    assert np.abs(clipped[0] - exact).max() > 10
    np.testing.assert_allclose(recovered[0], exact, rtol=2e-3)


def test_chunk_shape_caps_columns_then_fills_the_byte_budget():
    # lm_head: 3 tiles x 1024 tokens x 50257 outputs; 50 column chunks of 1006 -> 1008 (cache lines)
    assert chunk_shape(3, 1024, 50257, 8 << 20) == (512, 1008)  # 8 MiB / (4 B * 3 * 1008) = 693 -> 2 x 512
    assert chunk_shape(12, 1024, 768, 8 << 20) == (205, 768)  # 227 tokens fit -> 5 chunks of 205
    assert chunk_shape(3, 1024, 100, 1 << 40) == (1024, 100)
    assert chunk_shape(3, 1024, 100, 1) == (1, 100)


@pytest.mark.parametrize("read_noise, bound_management", [(False, False), (True, False), (False, True)])
def test_noise_does_not_depend_on_chunking(read_noise, bound_management, monkeypatch):
    rng = np.random.default_rng(3)
    n_real, row_blocks, rows, n_tok, n_out = 2, 3, 32, 40, 2100  # 3 column chunks of <= 704
    w = rng.normal(0, 0.3, (n_real, row_blocks, rows, n_out)).astype(np.float32)
    variance = rng.uniform(0, 1e-3, w.shape).astype(np.float32) if read_noise else None
    tiles = TileWeights(torch.from_numpy(w.reshape(-1, rows, n_out)),
                        None if variance is None else torch.from_numpy(variance.reshape(-1, rows, n_out)),
                        rng.uniform(0.5, 2.0, (n_real, row_blocks, n_out)).astype(np.float32))
    x = rng.normal(0, 1, (n_real, n_tok, row_blocks * rows - 5)).astype(np.float32)
    bias = rng.normal(0, 1, n_out).astype(np.float32)
    settings = periphery_settings(AnalogConfig(rows=rows, cols=rows, periphery=PeripheryConfig(
        out_bound=1.0 if bound_management else 10.0, read_noise_gemm=read_noise,
        bound_management="iterative" if bound_management else "none")))
    keys = np.array([5, 6], np.uint64)
    whole = analog_matmul(x, tiles, bias, settings, keys, 2, Workspace(), chunk_bytes=1 << 40)
    # (column cap, bytes): 1 token x 704 columns; 7 tokens x 704; 40 tokens x 48 columns
    for max_columns, chunk_bytes in ((1024, 1), (1024, 4 * 6 * 704 * 7), (48, 1 << 40)):
        monkeypatch.setattr(periphery, "MAX_CHUNK_COLUMNS", max_columns)
        chunked = analog_matmul(x, tiles, bias, settings, keys, 2, Workspace(), chunk_bytes=chunk_bytes)
        # the noise is indexed by token and column; only BLAS rounding (GEMM kernels differ
        # with the chunk's shape) may move a rare value across an ADC level
        assert np.mean(chunked != whole) < 1e-3
        one_level = settings.adc_step * np.abs(x).max() * tiles.out_scale.max()
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1.01 * one_level)
    assert np.abs(whole).max() > 1.0  # a real signal, not all zeros


def test_periphery_settings_validate_choices():
    with pytest.raises(UserError, match="noise_management"):
        periphery_settings(AnalogConfig(periphery=PeripheryConfig(noise_management="l2")))
    settings = periphery_settings(AnalogConfig(dac_bits=8, adc_bits=6, periphery=PeripheryConfig(out_bound=12.0)))
    assert settings.dac_step == pytest.approx(2.0 / 254.0)
    assert settings.adc_step == pytest.approx(24.0 / 62.0)


def test_workspace_reuses_memory_and_copies_empty():
    workspace = Workspace()
    big = workspace.array("y", (4, 100))
    small = workspace.array("y", (3, 10))
    assert np.shares_memory(big, small)
    assert not np.shares_memory(big, workspace.array("x", (4, 100)))
    assert copy.deepcopy(workspace)._buffers == {}
