"""Pulsed devices: responses against their formulas, symmetric points, pulse-update kernels."""
import numpy as np
import pytest

from simulator.analog import pulse_update, pulsed
from simulator.errors import UserError
from simulator.hw.loader import load_hw
from simulator.hw.schema import PulsedDeviceConfig

STATES = np.array([-0.9, -0.4, 0.0, 0.3, 0.85])


def _quiet(**kw):
    """No device-to-device or cycle-to-cycle variation."""
    return PulsedDeviceConfig(dw_min_dtod=0.0, up_down_dtod=0.0, w_bound_dtod=0.0, dw_min_std=0.0, **kw)


def _responses(cfg):
    arr = pulsed.nominal_array(cfg, (1, STATES.size))
    w = STATES[None, :]
    return arr.up(w)[0] / arr.scale_up[0, 0], arr.down(w)[0] / arr.scale_down[0, 0]


def test_constant_step_is_one_everywhere():
    up, down = _responses(_quiet(model="constant_step"))
    assert np.allclose(up, 1) and np.allclose(down, 1)


def test_linear_step_formula():
    up, down = _responses(_quiet(model="linear_step", gamma_up=0.4, gamma_down=0.7))
    assert np.allclose(up, 1 - 0.4 * STATES / 1.0, rtol=1e-6)
    assert np.allclose(down, 1 - 0.7 * STATES / -1.0, rtol=1e-6)


def test_soft_bounds_formula_and_bounds_of_zero():
    cfg = _quiet(model="soft_bounds", w_min=-0.8, w_max=1.2)
    arr = pulsed.nominal_array(cfg, (1, 3))
    w = np.array([[-0.5, 0.1, 0.7]])
    assert np.allclose(arr.up(w) / cfg.dw_min, 1 - w / 1.2, rtol=1e-6)
    assert np.allclose(arr.down(w) / cfg.dw_min, 1 - w / -0.8, rtol=1e-6)
    edge = pulsed.nominal_array(cfg, (1, 1))
    assert abs(edge.up(np.array([[1.2]]))[0, 0]) < 1e-8 and abs(edge.down(np.array([[-0.8]]))[0, 0]) < 1e-8


def test_exp_step_formula():
    cfg = _quiet(model="exp_step")
    up, down = _responses(cfg)
    z = 2 * cfg.exp_a * STATES / 2.0 + cfg.exp_b
    assert np.allclose(up, np.maximum(1 - cfg.exp_a_up * np.exp(cfg.exp_gamma_up * z), 0), rtol=1e-5)
    assert np.allclose(down, np.maximum(1 - cfg.exp_a_down * np.exp(-cfg.exp_gamma_down * z), 0), rtol=1e-5)


def test_pow_step_formula():
    cfg = _quiet(model="pow_step", pow_gamma=1.7, pow_up_down=0.2)
    up, down = _responses(cfg)
    assert np.allclose(up, (2 * (1 - STATES) / 2) ** (1.7 * 1.2), rtol=1e-5)
    assert np.allclose(down, (2 * (STATES + 1) / 2) ** (1.7 * 0.8), rtol=1e-5)


def test_up_down_scales_the_steps():
    arr = pulsed.nominal_array(_quiet(model="constant_step", up_down=0.25, dw_min=0.01))
    assert arr.scale_up[0, 0] == pytest.approx(0.0125) and arr.scale_down[0, 0] == pytest.approx(0.0075)


def test_symmetric_points():
    soft = pulsed.nominal_array(_quiet(model="soft_bounds", up_down=0.2))
    s_up, s_down = 1.2, 0.8  # (1 + a)(1 - w) = (1 - a)(1 + w)
    assert soft.symmetric_point()[0, 0] == pytest.approx((s_up - s_down) / (s_up + s_down), abs=1e-6)
    pow_step = pulsed.nominal_array(_quiet(model="pow_step", w_min=0.0, w_max=2.0))
    assert pow_step.symmetric_point()[0, 0] == pytest.approx(1.0, abs=1e-6)
    drifting = pulsed.nominal_array(_quiet(model="constant_step", up_down=0.1))
    assert drifting.symmetric_point()[0, 0] == pytest.approx(1.0)  # up always wins: w_max
    assert np.isnan(pulsed.nominal_array(_quiet(model="constant_step")).symmetric_point()[0, 0])


def test_device_to_device_variation_is_seeded_and_varies():
    cfg = PulsedDeviceConfig()
    a = pulsed.sample_array(cfg, (8, 8), np.random.default_rng(1))
    b = pulsed.sample_array(cfg, (8, 8), np.random.default_rng(1))
    assert np.array_equal(a.scale_up, b.scale_up) and np.array_equal(a.w_max, b.w_max)
    assert a.scale_up.std() > 0 and a.w_min.std() > 0 and np.all(a.w_min < 0) and np.all(a.w_max > 0)


def test_stochastic_update_mean_is_lr_x_d_within_its_standard_error():
    cfg = _quiet(model="constant_step", dw_min=0.001)
    arr = pulsed.nominal_array(cfg, (3, 4))
    x, d, lr = np.array([0.9, -0.3, 0.5, 0.1]), np.array([0.7, -1.0, 0.2]), 0.01
    moves = []
    for k in range(400):
        w = np.zeros((3, 4), dtype=np.float32)
        pulse_update.stochastic_update(w, arr, x, d, lr, 31, cfg.dw_min, pulse_update.update_key(3, k))
        moves.append(w.astype(np.float64))
    moves = np.array(moves)
    expected = -lr * np.outer(d, x)
    standard_error = moves.std(axis=0, ddof=1) / np.sqrt(len(moves))
    assert np.all(np.abs(moves.mean(axis=0) - expected) <= 4 * standard_error + 1e-9)
    assert np.all(standard_error > 0)


def test_stochastic_update_is_reproducible_per_key():
    arr = pulsed.sample_array(PulsedDeviceConfig(), (16, 24), np.random.default_rng(0))
    x, d = np.random.default_rng(1).uniform(-1, 1, 24), np.random.default_rng(2).normal(size=16)
    runs = []
    for key in (5, 5, 6):
        w = np.zeros((16, 24), dtype=np.float32)
        pulse_update.stochastic_update(w, arr, x, d, 0.01, 31, 0.001, key)
        runs.append(w)
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_cycle_noise_is_unit_normal_and_uncorrelated_across_devices_and_updates():
    """Every slot fires (|x| = |d| = 1): each constant-step device takes BL pulses, so
    (w - BL s) / (dw_min_std s sqrt(BL)) is its cycle-noise sample. Mean 0, std 1,
    no correlation between neighbouring devices or between one device's updates."""
    cfg = PulsedDeviceConfig(model="constant_step", dw_min=0.001, dw_min_dtod=0.0, up_down_dtod=0.0,
                             w_bound_dtod=0.0, dw_min_std=0.3)
    rows, cols, bl, updates = 64, 128, 31, 12
    arr = pulsed.nominal_array(cfg, (rows, cols))
    samples = []
    for k in range(updates):
        w = np.zeros((rows, cols), dtype=np.float32)
        pulse_update.stochastic_update(w, arr, -np.ones(cols), np.ones(rows), 2.0 * bl * cfg.dw_min, bl, cfg.dw_min,
                                       pulse_update.update_key(4, k))
        s = arr.scale_up.astype(np.float64)
        samples.append((w - bl * s) / (cfg.dw_min_std * s * np.sqrt(bl)))
    xi = np.array(samples)  # [update, row, column]
    n = xi.size
    assert abs(xi.mean()) < 4 / np.sqrt(n) and abs(xi.std() - 1) < 4 / np.sqrt(2 * n)
    assert np.abs(xi).max() < 3.5  # Irwin-Hall(4): tails cut at 3.45 sigma
    for a, b in ((xi[:, :, 1:], xi[:, :, :-1]), (xi[:, 1:], xi[:, :-1]), (xi[1:], xi[:-1])):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 4 / np.sqrt(a.size)  # columns, rows, updates


def _pulse_by_pulse(arr, w, up, n):
    """The readable reference: n pulses, one after another, in float64."""
    w = w.astype(np.float64)
    for _ in range(n):
        step = np.where(up, arr.up(w), -arr.down(w))
        w = np.clip(w + step, arr.w_min, arr.w_max)
    return w


@pytest.mark.parametrize("model, extra", [
    ("constant_step", {}), ("linear_step", {"gamma_up": 0.5, "gamma_down": 0.8}), ("soft_bounds", {}),
    ("exp_step", {}), ("pow_step", {}),
    ("soft_bounds", {"dw_min": 0.9, "up_down": 0.3}),  # up steps so large that they overshoot 1/c = w_max
])
@pytest.mark.parametrize("bl", [1, 7, 31, 64])
def test_stochastic_update_applies_each_devices_pulses_in_order(model, extra, bl):
    """With every slot firing (|x| = |d| = 1, lr large), each device takes exactly BL pulses:
    the kernels (closed form for the affine responses) must match pulse-by-pulse updates,
    also where a train reaches a bound."""
    cfg = PulsedDeviceConfig(model=model, dw_min_std=0.0, **({"dw_min": 0.02} | extra))
    arr = pulsed.sample_array(cfg, (4, 6), np.random.default_rng(3))
    start = np.clip(np.linspace(-0.97, 0.97, 24).reshape(4, 6), arr.w_min, arr.w_max).astype(np.float32)
    x, d = np.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0]), np.array([1.0, -1.0, -1.0, 1.0])
    w = start.copy()
    pulses = pulse_update.stochastic_update(w, arr, x, d, 2.0 * bl * cfg.dw_min, bl, cfg.dw_min, 11)
    assert pulses == bl * w.size
    expected = _pulse_by_pulse(arr, start, np.outer(d, x) < 0, bl)
    assert np.allclose(w, expected, rtol=0, atol=2e-6 * bl), np.abs(w - expected).max()
    assert np.abs(w - start).max() > min(0.5 * bl * cfg.dw_min, 0.5)  # the trains did move the devices


@pytest.mark.parametrize("s, c", [(0.002, 1.0), (-0.003, -1.25), (0.001, 0.0), (0.05, -0.4), (0.7, 0.9)])
def test_closed_form_sums_the_steps_and_their_squares(s, c):
    """n pulses of step s (1 - c w) in closed form: the total move and the sum of squared
    steps (the cycle-to-cycle noise's variance) equal the pulse-by-pulse sums."""
    for a in (-0.8, 0.0, 0.35):
        for n in (0, 1, 2, 5, 17, 31, 64):
            w, steps = a, []
            for _ in range(n):
                steps.append(s * max(1.0 - c * w, 0.0))
                w += steps[-1]
            move, squares = pulse_update._affine_pulses(np.float32(a), np.uint32(n), np.float32(s), np.float32(c))
            assert move == pytest.approx(sum(steps), rel=2e-5, abs=1e-9)
            assert squares == pytest.approx(sum(t * t for t in steps), rel=2e-5, abs=1e-12)


def test_float32_exp2_and_log2_of_the_chained_kernels():
    """The exp and power steps' vectorisable exp2 and log2 are accurate to float32."""
    for x in np.linspace(-40.0, 20.0, 2001, dtype=np.float32):
        assert pulse_update._exp2(x) == pytest.approx(2.0 ** float(x), rel=2e-7)
    for y in np.exp(np.linspace(-60.0, 5.0, 2001)).astype(np.float32):
        assert pulse_update._log2(y) == pytest.approx(np.log2(float(y)), rel=1e-7, abs=2e-7)


def test_expected_update_of_a_constant_step_is_exact():
    cfg = _quiet(model="constant_step", dw_min=0.001)
    arr = pulsed.nominal_array(cfg, (2, 3))
    w = np.zeros((2, 3), dtype=np.float32)
    x, d = np.array([0.5, -0.2, 0.1]), np.array([0.3, -0.6])
    pulse_update.expected_update(w, arr, x, d, 0.01, 31, cfg.dw_min)
    assert np.allclose(w, -0.01 * np.outer(d, x), rtol=1e-5)


@pytest.mark.parametrize("model", pulsed.PULSED_MODELS)
def test_expected_update_is_the_expected_pulse_count_times_the_step(model):
    """Mean-field mode: each device moves n q(w) s in one step, n = BL p_j q_i (truncated at 1)."""
    cfg = PulsedDeviceConfig(model=model, dw_min=0.002)
    arr = pulsed.sample_array(cfg, (5, 7), np.random.default_rng(8))
    rng = np.random.default_rng(9)
    start = np.clip(rng.uniform(-0.8, 0.8, (5, 7)), arr.w_min, arr.w_max).astype(np.float32)
    x, d, lr, bl = rng.uniform(-1, 1, 7), rng.normal(size=5), 0.05, 31
    w = start.copy()
    pulse_update.expected_update(w, arr, x, d, lr, bl, cfg.dw_min)
    k = lr / (bl * cfg.dw_min)
    a, b = np.sqrt(k * np.abs(d).max() / np.abs(x).max()), np.sqrt(k * np.abs(x).max() / np.abs(d).max())
    n = bl * np.outer(np.minimum(b * np.abs(d), 1), np.minimum(a * np.abs(x), 1))
    up = np.outer(d, x) < 0
    w0 = start.astype(np.float64)
    expected = np.clip(w0 + n * np.where(up, arr.up(w0), -arr.down(w0)), arr.w_min, arr.w_max)
    assert np.allclose(w, expected, rtol=0, atol=1e-6) and np.abs(w - start).max() > 0.01


def test_zero_mean_updates_drive_soft_bounds_to_the_symmetric_point():
    cfg = PulsedDeviceConfig(model="soft_bounds", up_down=0.3, dw_min=0.005, dw_min_std=0.1)
    arr = pulsed.sample_array(cfg, (6, 6), np.random.default_rng(4))
    w = np.full((6, 6), -0.7, dtype=np.float32)
    rng = np.random.default_rng(5)
    average = np.zeros((6, 6))
    for k in range(4000):
        pulse_update.stochastic_update(w, arr, rng.choice([-1.0, 1.0], 6), rng.choice([-1.0, 1.0], 6),
                                       0.01, 31, cfg.dw_min, pulse_update.update_key(9, k))
        if k >= 2000:
            average += w / 2000
    symmetric = arr.symmetric_point()
    assert np.abs(average - symmetric).max() < 0.12 < 0.8 < np.abs(-0.7 - symmetric).min()
    assert np.abs(average - symmetric).mean() < 0.04


@pytest.mark.parametrize("setting, message", [
    ("analog.device.pulsed.w_min=1.5", "expected w_min < w_max"),
    ("analog.device.pulsed.dw_min=-0.01", "expected a positive number"),
    ("analog.device.pulsed.model=bogus", "expected one of constant_step"),
    ("analog.device.pulsed.gamma_up=1.5", "never reach w_max"),
])
def test_bad_pulsed_parameters_are_one_line_errors(setting, message):
    key, value = setting.split("=")
    with pytest.raises(UserError, match=message) as err:
        load_hw("tiny", {key: value if key.endswith("model") else float(value),
                         "analog.device.pulsed.model": "linear_step"} if "gamma" in key
                else {key: value if key.endswith("model") else float(value)})
    assert "\n" not in str(err.value)
