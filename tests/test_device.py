"""Device physics against the published formulas (DESIGN.md "Analog physics")."""
import numba
import numpy as np
import pytest
from scipy import integrate, stats

from simulator.analog import device as dev
from simulator.errors import UserError
from simulator.hw.schema import DeviceConfig

N = 200_000  # devices per statistic: relative std error of a std ~ 1 / sqrt(2N) = 0.16 %


def _program_uniform(gr: float, config: DeviceConfig, seed: int = 0, devices: int = N):
    """`devices` devices of one polarity all targeted at gr (the negative side stays at 0)."""
    weight = np.full((1, devices), gr, dtype=np.float32)  # one output, one row block of all inputs
    return dev.program_pair(weight, np.ones((1, 1), np.float32), devices, config, np.random.default_rng(seed))


def _row_blocks(weight, rows):
    """W^T zero-padded to whole row blocks: the [row_blocks, rows, out] device layout."""
    out_features, in_features = weight.shape
    padded = np.zeros((-(-in_features // rows) * rows, out_features), dtype=np.float32)
    padded[:in_features] = weight.T
    return padded.reshape(-1, rows, out_features)


def _random_layer(seed, out_features=5, in_features=13, rows=8):
    """A small W, its per-tile max|W| (4-column tiles) and its normalised device blocks."""
    weight = np.random.default_rng(seed).standard_normal((out_features, in_features)).astype(np.float32)
    weight_max = dev.weight_max_abs(weight, rows, 4, "per_tile")
    return weight, weight_max, _row_blocks(weight, rows) / weight_max[:, None, :]


def _weights_at(pair, t_s, config, read_rng, used_rows=None):
    """W(t) = (G+(t) - G-(t)) / g_max of a pair, every row used unless told otherwise."""
    weights = np.empty_like(pair.g_pos_uS)
    used_rows = pair.g_pos_uS.shape[0] * pair.g_pos_uS.shape[1] if used_rows is None else used_rows
    dev.weights_at(pair, t_s, config, used_rows, read_rng, weights)
    return weights


def _positive_side_uS(pair, t_s, config, read_rng):
    """G+(t) alone: the pair read with its G- side emptied (0 neither drifts nor gets read noise)."""
    empty = dev.ProgrammedPair(pair.g_pos_uS, np.zeros_like(pair.g_neg_uS), pair.nu_pos,
                               None if pair.nu_neg is None else np.zeros_like(pair.nu_neg))
    return _weights_at(empty, t_s, config, read_rng) * np.float32(config.g_max_uS)


def test_devices_hold_the_transposed_weight_and_padding_rows_hold_zero():
    weight = np.arange(1, 11, dtype=np.float32).reshape(2, 5)  # out=2, in=5
    pair = dev.program_pair(weight, np.full((3, 2), 10.0, np.float32), 2, DeviceConfig(model="ideal"),
                            np.random.default_rng(0))
    assert pair.g_pos_uS.shape == (3, 2, 2)
    np.testing.assert_allclose(pair.g_pos_uS[0], weight[:, 0:2].T / 10.0 * 25.0, rtol=1e-6)
    np.testing.assert_allclose(pair.g_pos_uS[2], [[5 / 10.0 * 25.0, 10 / 10.0 * 25.0], [0, 0]], rtol=1e-6)
    np.testing.assert_array_equal(pair.g_neg_uS, 0.0)


def test_weight_max_abs_per_tile_and_per_column():
    weight = np.array([[1.0, 0.2], [-3.0, 0.1], [0.5, -2.0]], dtype=np.float32)  # 3 out, 2 in: 1 block
    np.testing.assert_array_equal(dev.weight_max_abs(weight, rows=2, cols=2, weight_scaling="per_column"),
                                  [[1.0, 3.0, 2.0]])
    np.testing.assert_array_equal(dev.weight_max_abs(weight, rows=2, cols=2, weight_scaling="per_tile"),
                                  [[3.0, 3.0, 2.0]])
    np.testing.assert_array_equal(dev.weight_max_abs(weight, rows=1, cols=2, weight_scaling="per_column"),
                                  np.float32([[1.0, 3.0, 0.5], [0.2, 0.1, 2.0]]))  # two row blocks of 1 input
    assert dev.weight_max_abs(np.zeros((1, 2), np.float32), 2, 2, "per_tile")[0, 0] == 1.0
    with pytest.raises(UserError, match="weight_scaling"):
        dev.weight_max_abs(weight, 2, 2, "per_row")


def test_target_conductances_are_a_clipped_differential_pair():
    g_pos, g_neg = dev.target_conductances_uS(np.array([0.5, -0.25, 0.0], np.float32), 25.0)
    np.testing.assert_allclose(g_pos, [12.5, 0.0, 0.0])
    np.testing.assert_allclose(g_neg, [0.0, 6.25, 0.0])


@pytest.mark.parametrize("gr", [0.0, 0.25, 0.5, 1.0])
def test_pcm_programming_noise_spread(gr):
    config = DeviceConfig(model="pcm", g_max_uS=40.0, prog_noise_scale=1.5)
    pair = _program_uniform(gr, config)
    expected_sigma = 1.5 * (0.26348 + 1.9650 * gr - 1.1731 * gr ** 2) * 40.0 / 25.0
    g = pair.g_pos_uS.ravel()
    if gr == 0.0:  # max(N(0, sigma), 0): mean sigma / sqrt(2 pi)
        assert g.mean() == pytest.approx(expected_sigma / np.sqrt(2 * np.pi), rel=0.01)
    else:
        assert g.std() == pytest.approx(expected_sigma, rel=0.01)
        assert g.mean() == pytest.approx(gr * 40.0, abs=3 * expected_sigma / np.sqrt(N))


@pytest.mark.parametrize("gr", [0.2, 0.5, 1.0])
def test_pcm_drift_exponent_statistics(gr):
    pair = _program_uniform(gr, DeviceConfig(model="pcm", drift_scale=2.0))
    mu = np.clip(-0.0155 * np.log(gr) + 0.0244, 0.049, 0.1)
    sd = np.clip(-0.0125 * np.log(gr) - 0.0059, 0.008, 0.045)
    # folding at 0 is > 5 sd away here, so the moments are the unfolded ones
    assert pair.nu_pos.mean() == pytest.approx(2 * mu, rel=0.005)
    assert pair.nu_pos.std() == pytest.approx(2 * sd, rel=0.01)


def _folded_normal_cdf(x, mu, sd):
    """P(|mu + sd Z| <= x) for x >= 0."""
    return stats.norm.cdf((x - mu) / sd) - stats.norm.cdf((-x - mu) / sd)


def _check_folded_drift_at_low_gr(devices: int, mean_rel: float):
    """At gr = 0.02, mu + sd N < 0 for 2.4 % of devices: the reference folds those exponents
    (nu = |mu + sd N|) rather than clipping them to 0. Checks the exponents' distribution (KS
    against the folded normal) and the 1-year conductance's mean and spread against the
    folded-normal expectations; clipping moves them by +1.4 % and +3.3 %."""
    gr, year_s = 0.02, 365.25 * 86400.0
    config = DeviceConfig(model="pcm", prog_noise_scale=0.0, read_noise_scale=0.0)
    pair = _program_uniform(gr, config, seed=11, devices=devices)
    mu, sd = float(dev.pcm_drift_nu_mean(np.float32(gr))), float(dev.pcm_drift_nu_std(np.float32(gr)))
    assert stats.norm.cdf(-mu / sd) > 0.02  # the regime where folding and clipping differ
    nu = pair.nu_pos.ravel().astype(np.float64)
    assert nu.min() >= 0.0 and np.mean(nu == 0.0) < 1e-3  # clipping would put 2.4 % at exactly 0
    assert stats.kstest(nu, lambda x: _folded_normal_cdf(x, mu, sd)).pvalue > 1e-3
    log_ratio = np.log(year_s / 20.0)
    density = lambda x: stats.norm.pdf(x, mu, sd)  # noqa: E731
    moments = [integrate.quad(lambda x: np.exp(-k * log_ratio * abs(x)) * density(x), mu - 12 * sd, mu + 12 * sd,
                              points=[0.0])[0] for k in (1, 2)]
    g_t = _positive_side_uS(pair, year_s, config, read_rng=None) / np.float32(gr * 25.0)
    assert g_t.mean() == pytest.approx(moments[0], rel=mean_rel)
    assert g_t.std() == pytest.approx(np.sqrt(moments[1] - moments[0] ** 2), rel=2 * mean_rel)


def test_pcm_drift_exponents_fold_at_low_gr():
    _check_folded_drift_at_low_gr(N, mean_rel=0.005)  # 1 sd of the mean: 0.14 %


@pytest.mark.slow
def test_pcm_drift_exponents_fold_at_low_gr_a_million_devices():
    _check_folded_drift_at_low_gr(1_000_000, mean_rel=0.0025)  # 1 sd of the mean: 0.06 %


def test_pcm_mean_drift_factor_after_a_day():
    config = DeviceConfig(model="pcm", prog_noise_scale=0.0, read_noise_scale=0.0)
    pair = _program_uniform(0.5, config)
    t_s = 86400.0
    g_t = _positive_side_uS(pair, t_s, config, read_rng=None)
    mu, sd = -0.0155 * np.log(0.5) + 0.0244, 0.008  # sd formula gives < 0.008 -> clipped
    mu = max(mu, 0.049)
    log_ratio = np.log(t_s / 20.0)
    # E[(t/t0)^-nu] for nu ~ N(mu, sd): lognormal mean
    expected = 0.5 * 25.0 * np.exp(-mu * log_ratio + 0.5 * (sd * log_ratio) ** 2)
    assert g_t.mean() == pytest.approx(expected, rel=0.002)


def test_no_drift_at_or_before_t0():
    config = DeviceConfig(model="pcm", read_noise_scale=0.0)
    pair = _program_uniform(0.7, config)
    for t_s in (0.0, 5.0, 20.0):
        np.testing.assert_array_equal(_weights_at(pair, t_s, config, read_rng=None),
                                      (pair.g_pos_uS - pair.g_neg_uS) / np.float32(25.0))
    with pytest.raises(UserError, match="t >= 0"):
        _weights_at(pair, -1.0, config, read_rng=None)


@pytest.mark.parametrize("gr", [0.1, 0.8])
def test_pcm_read_noise_spread_at_t(gr):
    config = DeviceConfig(model="pcm", prog_noise_scale=0.0, drift_scale=0.0, read_noise_scale=1.5)
    pair = _program_uniform(gr, config)
    t_s = 3600.0
    g_t = _positive_side_uS(pair, t_s, config, np.random.default_rng(7))
    q_s = min(0.0088 / gr ** 0.65, 0.2)
    expected = 1.5 * gr * 25.0 * q_s * np.sqrt(np.log((t_s + 250e-9) / (2 * 250e-9)))
    assert g_t.std() == pytest.approx(expected, rel=0.01)
    assert g_t.mean() == pytest.approx(gr * 25.0, abs=4 * expected / np.sqrt(N))


@pytest.mark.parametrize("kind, expected_sigma_uS", [("additive", 0.1 * 25.0), ("proportional", 0.1 * 15.0)])
def test_gaussian_device(kind, expected_sigma_uS):
    config = DeviceConfig(model="gaussian", gaussian_sigma=0.1, gaussian_kind=kind)
    pair = _program_uniform(0.6, config)
    assert pair.g_pos_uS.std() == pytest.approx(expected_sigma_uS, rel=0.01)
    assert pair.nu_pos is None


def test_reram_lognormal_programming_and_relaxation():
    config = DeviceConfig(model="reram", reram_sigma=0.2, reram_relax_nu=0.02)
    pair = _program_uniform(0.5, config)
    log_g = np.log(pair.g_pos_uS / 12.5)
    assert log_g.std() == pytest.approx(0.2, rel=0.01)
    assert abs(log_g.mean()) < 4 * 0.2 / np.sqrt(N)
    g_t = _positive_side_uS(pair, 2000.0, config, np.random.default_rng(1))
    stored_nu = float(np.float16(0.02))  # drift exponents are stored as float16
    np.testing.assert_allclose(g_t, pair.g_pos_uS * 100.0 ** -stored_nu, rtol=1e-5)


def test_ideal_device_is_exact():
    weight, weight_max, normalised = _random_layer(3)
    config = DeviceConfig(model="ideal")
    pair = dev.program_pair(weight, weight_max, 8, config, np.random.default_rng(0))
    weights = _weights_at(pair, 1e8, config, np.random.default_rng(0))
    np.testing.assert_allclose(weights, normalised, atol=1e-6)
    np.testing.assert_array_equal(weights[1, 5:], 0.0)  # padding rows


def test_stuck_at_fractions():
    config = DeviceConfig(model="ideal", stuck_at_zero_frac=0.1, stuck_at_gmax_frac=0.05)
    pair = _program_uniform(0.5, config)
    g = pair.g_pos_uS.ravel()
    assert np.mean(g == 0.0) == pytest.approx(0.1, abs=0.003)
    assert np.mean(g == 25.0) == pytest.approx(0.05, abs=0.003)
    assert np.mean(g == 12.5) == pytest.approx(0.85, abs=0.003)


def test_stuck_devices_do_not_drift():
    config = DeviceConfig(model="pcm", stuck_at_gmax_frac=0.2, read_noise_scale=0.0)
    pair = _program_uniform(0.3, config)
    stuck = pair.g_pos_uS == 25.0
    g_t = _positive_side_uS(pair, 1e6, config, read_rng=None)
    assert stuck.mean() == pytest.approx(0.2, abs=0.01)
    np.testing.assert_array_equal(g_t[stuck], 25.0)


def test_unknown_device_model_is_a_user_error():
    with pytest.raises(UserError, match="analog.device.model"):
        _program_uniform(0.5, DeviceConfig(model="mram"))


def test_global_compensation_is_per_tile_ratio_of_summed_outputs():
    ref_pos = np.array([[3.0, 1.0, 4.0]])  # 1 block, 3 columns: calibration reads of the used rows
    ref_neg = np.zeros_like(ref_pos)
    reference = dev.CalibrationRead(ref_pos, ref_neg)
    alpha = dev.compensation_factors(reference, dev.CalibrationRead(ref_pos / 2.0, ref_neg), cols=2, mode="global")
    np.testing.assert_allclose(alpha, [[2.0, 2.0, 2.0]])
    now = dev.CalibrationRead(ref_pos * np.array([0.5, 0.25, 1.0]), ref_neg)  # columns drift differently
    alpha = dev.compensation_factors(reference, now, cols=2, mode="global")
    np.testing.assert_allclose(alpha, [[4.0 / 1.75, 4.0 / 1.75, 1.0]])  # tile 0: (3 + 1) / (1.5 + 0.25)
    alpha = dev.compensation_factors(reference, now, cols=2, mode="per_column")
    np.testing.assert_allclose(alpha, [[2.0, 4.0, 1.0]])
    alpha = dev.compensation_factors(reference, now, cols=2, mode="none")
    np.testing.assert_array_equal(alpha, [[1.0, 1.0, 1.0]])


def test_calibration_reads_sum_the_used_rows_of_each_line():
    weight, weight_max, normalised = _random_layer(4)
    config = DeviceConfig(model="pcm", read_noise_scale=0.0)
    pair = dev.program_pair(weight, weight_max, 8, config, np.random.default_rng(0))
    weights = np.empty_like(normalised)
    reference, now = dev.weights_at(pair, 3600.0, config, 13, None, weights)  # rows 13..15: padding
    used = (np.arange(16) < 13).reshape(2, 8, 1)
    np.testing.assert_allclose(reference.pos_uS, (pair.g_pos_uS * used).sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(reference.neg_uS, (pair.g_neg_uS * used).sum(axis=1), rtol=1e-6)
    ratio = np.float32(3600.0 / 20.0)
    g_t_neg = pair.g_neg_uS * np.power(ratio, -pair.nu_neg.astype(np.float32))
    np.testing.assert_allclose(now.neg_uS, (g_t_neg * used).sum(axis=1), rtol=1e-6)


# ---------------------------------------------------------------- fused kernels == formulas

# _random_layer has two row blocks of 8 rows x 5 outputs: two chunks, generators 0 and 1


def test_fused_programming_equals_the_formulas():
    weight, weight_max, normalised = _random_layer(5)
    config = DeviceConfig(model="pcm", g_max_uS=30.0, prog_noise_scale=1.3, drift_scale=1.2)
    pair = dev.program_pair(weight, weight_max, 8, config, np.random.default_rng(9))
    for block, chunk_rng in enumerate(dev.chunk_generators(np.random.default_rng(9), 2)):
        normals = chunk_rng.standard_normal((2, 2, 8, 5), dtype=np.float32)  # [side, (prog, drift)]
        targets = dev.target_conductances_uS(normalised[block], 30.0)
        for side, (g, nu) in enumerate(((pair.g_pos_uS, pair.nu_pos), (pair.g_neg_uS, pair.nu_neg))):
            gr = targets[side] / 30.0
            sigma = dev.pcm_programming_sigma_uS(gr, 30.0) * 1.3
            expected_g = np.maximum(targets[side] + sigma * normals[side, 0], 0.0)
            expected_nu = 1.2 * np.abs(dev.pcm_drift_nu_mean(gr) + dev.pcm_drift_nu_std(gr) * normals[side, 1])
            np.testing.assert_allclose(g[block], expected_g, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(nu[block].astype(np.float32), expected_nu, rtol=1e-3)  # float16


def test_fused_read_equals_the_formulas():
    weight, weight_max, normalised = _random_layer(6)
    config = DeviceConfig(model="pcm", read_noise_scale=1.7)
    pair = dev.program_pair(weight, weight_max, 8, config, np.random.default_rng(0))
    t_s = 86400.0
    weights, variance = np.empty_like(normalised), np.empty_like(normalised)
    dev.weights_at(pair, t_s, config, 13, np.random.default_rng(3), weights)
    dev.weights_at(pair, t_s, config, 13, None, np.empty_like(normalised), variance)
    noise_scale = 1.7 * dev.read_noise_time_factor(t_s, config)
    ratio = np.float32(t_s / 20.0)
    for block, chunk_rng in enumerate(dev.chunk_generators(np.random.default_rng(3), 2)):
        normals = chunk_rng.standard_normal((2, 8, 5), dtype=np.float32)
        sides, sigmas = [], []
        for side, (g, nu) in enumerate(((pair.g_pos_uS, pair.nu_pos), (pair.g_neg_uS, pair.nu_neg))):
            g_t = g[block] * np.power(ratio, -nu[block].astype(np.float32))
            sigmas.append(np.abs(g_t) * dev.pcm_read_noise_q(g[block] / np.float32(25.0)) * noise_scale)
            sides.append(np.maximum(g_t + sigmas[-1] * normals[side], 0.0))
        np.testing.assert_allclose(weights[block], (sides[0] - sides[1]) / 25.0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(variance[block], (sigmas[0] ** 2 + sigmas[1] ** 2) / 625.0, rtol=1e-5)


def test_fused_passes_do_not_depend_on_thread_count():
    weight = np.random.default_rng(7).uniform(-1, 1, (5000, 100)).astype(np.float32)  # 2 x 3 chunks
    weight_max = dev.weight_max_abs(weight, 64, 64, "per_tile")
    config = DeviceConfig(model="pcm", stuck_at_zero_frac=0.01)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 numba threads")
    results = []
    threads = numba.get_num_threads()
    try:
        for count in (1, 2):
            numba.set_num_threads(count)
            pair = dev.program_pair(weight, weight_max, 64, config, np.random.default_rng(1))
            results.append((pair, _weights_at(pair, 3600.0, config, np.random.default_rng(2), used_rows=100)))
    finally:
        numba.set_num_threads(threads)
    (one, w_one), (many, w_many) = results
    np.testing.assert_array_equal(one.g_pos_uS, many.g_pos_uS)
    np.testing.assert_array_equal(one.nu_neg, many.nu_neg)
    np.testing.assert_array_equal(w_one, w_many)


def test_float16_bits_match_numpy_rounding():
    codes = np.arange(0x7C00, dtype=np.uint16)  # every finite float16 >= 0
    values = codes.view(np.float16).astype(np.float64)
    midpoints = ((values[:-1] + values[1:]) / 2).astype(np.float32)  # ties: round to even
    samples = np.concatenate([values.astype(np.float32), midpoints, np.float32([1e-9, 3e-8, 65519.0, 1e6]),
                              np.random.default_rng(0).uniform(0, 0.3, 10_000).astype(np.float32)])
    samples = np.concatenate([samples, -samples])
    bits = np.array([dev._float16_bits(b) for b in samples.view(np.uint32)], dtype=np.uint16)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(bits, samples.astype(np.float16).view(np.uint16))
