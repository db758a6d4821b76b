"""The differentiable periphery twin: equal to the numba inference kernels with noise off,
straight-through gradients, noise injection."""
import pytest
import torch
from torch import nn

from simulator.adapt.periphery import NoiseInjection, TwinLinear, ste_round_clip
from simulator.adapt.twin import convert_to_twin, tile_state
from simulator.analog.layer import convert_to_analog, set_time
from simulator.hw.schema import AnalogConfig, DeviceConfig, HwConfig, PeripheryConfig

ROWS, COLS = 64, 32


def _hw(device=None, **periphery):
    periphery.setdefault("out_noise", 0.0)
    return HwConfig(analog=AnalogConfig(rows=ROWS, cols=COLS, device=device or DeviceConfig(),
                                        periphery=PeripheryConfig(**periphery)))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(150, 70), nn.GELU(), nn.Linear(70, 40, bias=False))


@pytest.mark.parametrize("scaling", ["per_tile", "per_column"])
@pytest.mark.parametrize("bound", [("none", 12.0), ("iterative", 1.5)])
def test_eval_twin_equals_numba_kernels_within_one_adc_step(scaling, bound):
    """Programmed PCM realisations at 1 d (drift, read noise, global compensation), output
    noise off: every output within one ADC step per row block, and almost all identical."""
    management, out_bound = bound
    hw = _hw(weight_scaling=scaling, bound_management=management, out_bound=out_bound)
    model = _model()
    analog = convert_to_analog(model, ["0", "2"], hw, [0, 1])
    set_time(analog, 86400.0)
    twin = convert_to_twin(model, ["0", "2"], hw, programmed=analog).eval()
    x = torch.randn(2 * 9, 150, generator=torch.Generator().manual_seed(3)) * 2
    with torch.no_grad():
        for name, inputs in (("0", x), ("2", torch.nn.functional.gelu(analog[0](x)))):
            reference, ours = analog.get_submodule(name)(inputs), twin.get_submodule(name)(inputs)
            state = tile_state(analog.get_submodule(name))
            row_blocks = state.weights.shape[1]
            per_block = inputs.abs().max() * 2 ** 3 * state.out_scale.max()  # in_scale x max headroom
            adc_step = hw.analog.periphery.out_bound / (2 ** (hw.analog.adc_bits - 1) - 1)
            difference = (reference - ours).abs()
            assert difference.max() <= adc_step * per_block * row_blocks + 1e-5
            assert (difference < 1e-4).float().mean() > 0.99


def test_ste_round_clip_forward_exact_backward_straight_through():
    value = torch.tensor([-3.0, -0.26, 0.24, 0.25, 0.75, 2.9], requires_grad=True)
    quantised, clipped = ste_round_clip(value, 0.5, 4)  # levels +-4 -> bound 2.0
    assert quantised.tolist() == [-2.0, -0.5, 0.0, 0.0, 1.0, 2.0]  # ties (0.5, 1.5 steps) to even
    assert clipped.tolist() == [True, False, False, False, False, True]
    quantised.sum().backward()
    assert value.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_twin_gradients_are_straight_through():
    """Noise off: d(sum y)/dx is exactly W summed over outputs (as for FP), and d(sum y)/dW
    is the sum of the DAC-quantised inputs, within half a DAC step per input."""
    hw = _hw()
    linear = nn.Linear(100, 20)
    twin = TwinLinear(linear, hw.analog).eval()
    x = torch.randn(8, 100, requires_grad=True)
    twin(x).sum().backward()
    assert torch.allclose(x.grad, linear.weight.detach().sum(0).expand(8, 100), atol=1e-5)
    half_step = 0.5 / (2 ** (hw.analog.dac_bits - 1) - 1) * x.detach().abs().max()
    difference = linear.weight.grad - x.detach().sum(0).expand(20, 100)
    assert difference.abs().max() <= 8 * half_step
    assert difference.abs().max() > 0  # the quantised input, not the raw one


@pytest.mark.parametrize("kind", ["additive", "pcm"])
def test_weight_noise_is_injected_in_training_and_seeded(kind):
    hw = _hw()
    linear = nn.Linear(64, 32)
    twin = TwinLinear(linear, hw.analog, noise=NoiseInjection(kind, 0.067, out_noise=0.04))
    x = torch.randn(4, 64)
    twin.train()
    twin.reseed(5)
    first = twin(x)
    twin.reseed(5)
    again = twin(x)
    twin.reseed(6)
    other = twin(x)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    with torch.no_grad():
        relative = (first - linear(x)).norm() / linear(x).norm()
    assert 0.01 < relative < 0.5
    twin.eval()
    assert torch.equal(twin(x), twin(x))
