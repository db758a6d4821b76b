"""AnalogLinear end to end: ideal == FP, determinism, batching, drift compensation."""
import pytest
import torch
from torch import nn

from simulator.analog.layer import AnalogLinear, convert_to_analog, set_time
from simulator.errors import UserError
from simulator.hw.schema import AnalogConfig, DeviceConfig, HwConfig, PeripheryConfig

ROWS, COLS = 64, 32
ONE_YEAR_S = 365 * 86400.0


def _hw(device=None, bits=8, tiles=0, **periphery):
    return HwConfig(analog=AnalogConfig(
        tiles=tiles, rows=ROWS, cols=COLS, dac_bits=bits, adc_bits=bits,
        device=device or DeviceConfig(), periphery=PeripheryConfig(**periphery)))


def _linear(in_features=150, out_features=40, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features)


def _inputs(batch, in_features=150, seed=1):
    return torch.randn(batch, in_features, generator=torch.Generator().manual_seed(seed))


def test_ideal_configuration_matches_fp_within_quantisation():
    """Ideal: device `ideal`, out_noise 0, 16-bit DAC/ADC, out_bound = rows (never clips)."""
    linear = _linear()
    hw = _hw(DeviceConfig(model="ideal"), bits=16, out_noise=0.0, out_bound=float(ROWS))
    x = _inputs(6)
    y = AnalogLinear.from_linear(linear, hw, [0])(x)
    with torch.no_grad():
        reference = linear(x)
    # per row block: DAC error <= rows * step/2 * max|x| * max|W|, ADC error <= step/2 * same scales
    dac_half_step, adc_half_step = 1.0 / 32767 / 2, ROWS / 32767 / 2
    x_max = x.abs().max().item()
    w_max = linear.weight.abs().max().item()
    row_blocks = -(-150 // ROWS)
    bound = row_blocks * (ROWS * dac_half_step + adc_half_step) * x_max * w_max
    assert (y - reference).abs().max().item() <= bound
    assert bound < 1e-2 * reference.abs().mean().item()


def test_same_seed_same_output_different_seeds_differ():
    linear, x = _linear(), _inputs(4)
    first = AnalogLinear.from_linear(linear, _hw(), [7], name="a.b")(x)
    again = AnalogLinear.from_linear(linear, _hw(), [7], name="a.b")(x)
    other_seed = AnalogLinear.from_linear(linear, _hw(), [8], name="a.b")(x)
    other_name = AnalogLinear.from_linear(linear, _hw(), [7], name="a.c")(x)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other_seed)
    assert not torch.equal(first, other_name)


def test_output_noise_is_fresh_per_call_and_replayed_after_set_time():
    layer = AnalogLinear.from_linear(_linear(), _hw(), [3])
    x = _inputs(4)
    first, second = layer(x), layer(x)
    assert not torch.equal(first, second)
    layer.set_time(0.0)
    torch.testing.assert_close(layer(x), first, rtol=0, atol=0)


def test_batched_realisations_equal_one_at_a_time():
    linear = _linear()
    x0, x1 = _inputs(5, seed=2), _inputs(5, seed=3)
    hw = _hw(read_noise_gemm=True)
    batched = AnalogLinear.from_linear(linear, hw, [3, 4], name="p")
    batched.set_time(3600.0)
    together = batched(torch.cat([x0, x1]))
    for k, (seed, x) in enumerate(((3, x0), (4, x1))):
        alone = AnalogLinear.from_linear(linear, hw, [seed], name="p")
        alone.set_time(3600.0)
        torch.testing.assert_close(together[5 * k:5 * (k + 1)], alone(x), rtol=1e-5, atol=1e-6)


def test_read_noise_realisation_depends_on_time_only():
    layer = AnalogLinear.from_linear(_linear(), _hw(out_noise=0.0), [3])
    x = _inputs(4)
    layer.set_time(86400.0)
    day = layer(x)
    layer.set_time(3600.0)
    assert not torch.equal(layer(x), day)
    layer.set_time(86400.0)
    torch.testing.assert_close(layer(x), day, rtol=0, atol=0)


@pytest.mark.parametrize("compensation", ["global", "per_column"])
def test_drift_compensation_restores_output_scale_after_a_year(compensation):
    linear = _linear(256, 64)
    x = _inputs(64, 256)
    with torch.no_grad():
        reference_scale = linear(x).abs().mean().item()
    scales = {}
    for mode in (compensation, "none"):
        layer = AnalogLinear.from_linear(linear, _hw(out_noise=0.0, drift_compensation=mode), [0])
        layer.set_time(ONE_YEAR_S)
        scales[mode] = layer(x).abs().mean().item()
    assert scales["none"] < 0.7 * reference_scale  # (1 year / 20 s)^-0.05.. drifts ~40 %
    assert scales[compensation] == pytest.approx(reference_scale, rel=0.05)


def test_per_column_scaling_protects_small_columns():
    linear = _linear(64, 32)
    with torch.no_grad():
        linear.weight[0] *= 0.01  # output 0 has tiny weights
    x = _inputs(200, 64)
    with torch.no_grad():
        reference = linear(x)[:, 0]
    device = DeviceConfig(model="gaussian", gaussian_sigma=0.02)
    errors = {}
    for scaling in ("per_tile", "per_column"):
        y = AnalogLinear.from_linear(linear, _hw(device, out_noise=0.0, weight_scaling=scaling), [0])(x)
        errors[scaling] = (y[:, 0] - reference).pow(2).mean().sqrt().item()
    assert errors["per_column"] < 0.1 * errors["per_tile"]


def test_accuracy_does_not_depend_on_tile_count():
    linear, x = _linear(), _inputs(3)
    few = AnalogLinear.from_linear(linear, _hw(tiles=0), [1])(x)
    many = AnalogLinear.from_linear(linear, _hw(tiles=512), [1])(x)
    torch.testing.assert_close(few, many, rtol=0, atol=0)


def test_forward_keeps_leading_dims_and_rejects_bad_batches():
    layer = AnalogLinear.from_linear(_linear(), _hw(), [1, 2])
    assert layer(torch.randn(4, 3, 150)).shape == (4, 3, 40)
    with pytest.raises(ValueError, match="input"):
        layer(torch.randn(3, 150))


def test_seeds_must_be_non_negative_integers():
    with pytest.raises(UserError, match="seeds"):
        AnalogLinear.from_linear(_linear(), _hw(), [-1])
    with pytest.raises(UserError, match="seeds"):
        AnalogLinear.from_linear(_linear(), _hw(), [])


class _TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(150, 40), nn.ReLU())
        self.head = nn.Linear(40, 10)

    def forward(self, x):
        return self.head(self.encoder(x))


def test_convert_to_analog_copies_and_replaces_named_linears():
    model = _TwoLayers()
    analog = convert_to_analog(model, ["encoder.0", "head"], _hw(), [5])
    assert isinstance(analog.encoder[0], AnalogLinear) and isinstance(analog.head, AnalogLinear)
    assert analog.encoder[0].name == "encoder.0"
    assert isinstance(model.head, nn.Linear)  # the original is untouched
    assert analog(_inputs(2)).shape == (2, 10)
    set_time(analog, 3600.0)
    assert analog.head.t_s == 3600.0 and analog.encoder[0].t_s == 3600.0


def test_convert_to_analog_rejects_bad_names():
    with pytest.raises(UserError, match="no such module"):
        convert_to_analog(_TwoLayers(), ["decoder"], _hw(), [0])
    with pytest.raises(UserError, match="expected an nn.Linear"):
        convert_to_analog(_TwoLayers(), ["encoder.1"], _hw(), [0])
