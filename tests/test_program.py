"""Program-and-verify: tolerance, cost, and its use as the timing model's programming cost."""
import dataclasses

import numpy as np
import pytest

from simulator.analog import programming
from simulator.errors import UserError
from simulator.hw.loader import load_hw
from simulator.hw.schema import AnalogConfig, ProgrammingConfig, PulsedDeviceConfig

IDEAL = PulsedDeviceConfig(model="constant_step", dw_min=0.01, dw_min_dtod=0.0, up_down_dtod=0.0,
                           w_bound_dtod=0.0, dw_min_std=0.0)


def _targets(rows=16, cols=24, seed=0):
    weights = programming.random_tile_weights(rows, cols, np.random.default_rng(seed))
    return programming.pair_targets_uS(weights, 25.0)


def test_ideal_device_meets_its_tolerance():
    prog = ProgrammingConfig(tolerance=0.01, read_noise=0.0, max_iterations=50)
    targets = _targets()
    result = programming.program_and_verify(targets, IDEAL, prog, 25.0, seed=0)
    assert result.converged.all()
    assert np.abs(result.g_uS - targets).max() <= 0.01 * 25.0 + 1e-9
    assert result.time_us > 0 and result.energy_pj > 0


def test_tighter_tolerance_takes_more_pulses_and_time():
    targets = _targets()
    loose, tight = (programming.program_and_verify(
        targets, PulsedDeviceConfig(), ProgrammingConfig(tolerance=tol, max_iterations=40), 25.0, seed=1)
        for tol in (0.05, 0.005))
    assert tight.pulses.sum() > loose.pulses.sum()
    assert tight.time_us >= loose.time_us
    assert np.abs(tight.g_uS - targets).mean() < np.abs(loose.g_uS - targets).mean()


def test_program_and_verify_is_reproducible():
    prog = ProgrammingConfig()
    a = programming.program_and_verify(_targets(), PulsedDeviceConfig(), prog, 25.0, seed=4)
    b = programming.program_and_verify(_targets(), PulsedDeviceConfig(), prog, 25.0, seed=4)
    assert np.array_equal(a.g_uS, b.g_uS) and np.array_equal(a.pulses, b.pulses)


def test_verify_model_sets_the_program_cost_the_timing_model_uses():
    fixed = load_hw("tiny", {"analog.program_time_per_tile_us": 7.0})
    assert fixed.analog.program_time_per_tile_us == 7.0
    verified = load_hw("tiny", {"analog.programming.model": "verify"})
    expected = programming.expected_tile_cost(verified.analog)
    assert verified.analog.program_time_per_tile_us == pytest.approx(expected.time_us)
    assert verified.analog.program_energy_per_tile_nj == pytest.approx(expected.energy_nj)
    assert expected.time_us > 0 and expected.energy_nj > 0
    tighter = load_hw("tiny", {"analog.programming.model": "verify", "analog.programming.tolerance": 0.005})
    assert tighter.analog.program_energy_per_tile_nj > verified.analog.program_energy_per_tile_nj


def test_verify_replaces_a_given_program_time_and_checks_its_keys():
    hw = load_hw("tiny", {"analog.programming.model": "verify", "analog.program_time_per_tile_us": 3.0})
    assert hw.analog.program_time_per_tile_us != 3.0
    with pytest.raises(UserError, match="analog.programming.model"):
        load_hw("tiny", {"analog.programming.model": "guess"})


def test_hermes64_programs_by_verify():
    hw = load_hw("hermes64")
    assert hw.analog.programming.model == "verify"
    cost = programming.expected_tile_cost(hw.analog)
    assert hw.analog.program_time_per_tile_us == pytest.approx(cost.time_us)
    assert cost.converged_fraction > 0.99
    assert isinstance(dataclasses.replace(hw.analog), AnalogConfig)
