"""Tile cost model: latency composition and energy scaling, checked by hand arithmetic."""
import dataclasses

import pytest

from simulator.analog.tile_cost import mvm_energy_pj, mvm_latency_ns, tile_static_power_mw
from simulator.hw.schema import AnalogConfig

TILE = AnalogConfig(tiles=4, rows=64, cols=128, dac_bits=6, adcs_per_tile=32,
                    input_phase_ns=2.0, integration_ns=10.0, adc_conversion_ns=5.0,
                    array_energy_pj=100.0, periphery_energy_pj=8.0, dac_energy_pj=0.5,
                    adc_energy_pj=3.0, static_power_mw=2.5)


def test_pwm_latency_is_one_phase_plus_integration_plus_conversion_rounds():
    # 1 * 2 + 10 + ceil(128 / 32) * 5 = 32 ns
    assert mvm_latency_ns(TILE) == pytest.approx(32.0)


def test_bit_serial_latency_pays_one_phase_per_input_bit():
    bit_serial = dataclasses.replace(TILE, input_encoding="bit_serial")
    assert mvm_latency_ns(bit_serial) == pytest.approx(6 * 2 + 10 + 4 * 5)


def test_shared_adcs_round_up_conversion_rounds():
    assert mvm_latency_ns(dataclasses.replace(TILE, adcs_per_tile=100)) == pytest.approx(2 + 10 + 2 * 5)


def test_given_mvm_latency_overrides_composition():
    assert mvm_latency_ns(dataclasses.replace(TILE, mvm_latency_ns=77.0)) == 77.0


def test_full_mvm_energy_breakdown():
    assert mvm_energy_pj(TILE, 64, 128) == pytest.approx(
        {"array": 100.0 + 8.0, "dac": 64 * 0.5, "adc": 128 * 3.0})


def test_partial_block_scales_array_by_active_fraction_and_periphery_is_paid_whole():
    energy = mvm_energy_pj(TILE, 16, 32)  # 1/16 of the cells
    assert energy == pytest.approx({"array": 100.0 / 16 + 8.0, "dac": 8.0, "adc": 96.0})


@pytest.mark.parametrize("rows, cols", [(0, 10), (65, 10), (10, 0), (10, 129)])
def test_block_outside_the_tile_is_a_bug(rows, cols):
    with pytest.raises(ValueError, match="does not fit"):
        mvm_energy_pj(TILE, rows, cols)


def test_unknown_encoding_is_rejected():
    with pytest.raises(ValueError, match="input encoding"):
        mvm_latency_ns(dataclasses.replace(TILE, input_encoding="thermometer"))


def test_static_power_is_per_tile():
    assert tile_static_power_mw(TILE) == 2.5
