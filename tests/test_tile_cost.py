"""Tile cost model: latency composition and energy scaling, checked by hand arithmetic."""
import dataclasses

import pytest

from simulator.analog.tile_cost import (adc_conversion_ns, adc_energy_per_conversion_pj, input_window_ns,
                                        mvm_energy_parts_pj, mvm_energy_pj, mvm_latency_ns,
                                        tile_static_power_mw)
from simulator.hw.schema import AdcConfig, AnalogConfig, DacConfig

TILE = AnalogConfig(tiles=4, rows=64, cols=128, dac_bits=6, adc_bits=5, adcs_per_tile=32,
                    dac=DacConfig(encoding="pwm", ns_per_step=0.25, phase_ns=2.0, energy_pj_per_row=0.5),
                    adc=AdcConfig(type="sar", ns_per_bit=1.0, ns_per_lsb=0.1, conversion_ns=3.0,
                                  energy_model="fixed", energy_pj=3.0),
                    integration_ns=10.0, cell_read_power_uw=2.0, periphery_energy_pj_per_col=0.25,
                    control_energy_pj=8.0, static_power_mw=2.5)


def tile(**changes):
    """TILE with top-level keys and `adc__x` / `dac__x` sub-keys replaced."""
    sub = {name: {k.split("__")[1]: v for k, v in changes.items() if k.startswith(f"{name}__")}
           for name in ("adc", "dac")}
    top = {k: v for k, v in changes.items() if "__" not in k}
    return dataclasses.replace(TILE, **top, adc=dataclasses.replace(TILE.adc, **sub["adc"]),
                               dac=dataclasses.replace(TILE.dac, **sub["dac"]))


def test_pwm_sar_latency_is_window_plus_integration_plus_conversion_rounds():
    # 2^6 * 0.25 + 10 + ceil(128 / 32) * (5 * 1.0) = 16 + 10 + 20 = 46 ns
    assert mvm_latency_ns(TILE) == pytest.approx(46.0)


@pytest.mark.parametrize("encoding, window_ns", [("pwm", 16.0), ("bit_serial", 6 * 2.0), ("multi_level", 2.0)])
def test_input_window_by_encoding(encoding, window_ns):
    assert input_window_ns(tile(dac__encoding=encoding)) == pytest.approx(window_ns)


@pytest.mark.parametrize("kind, conversion_ns", [("sar", 5.0), ("flash", 3.0), ("ramp", 32 * 0.1), ("cco", 3.2)])
def test_conversion_time_by_architecture(kind, conversion_ns):
    assert adc_conversion_ns(tile(adc__type=kind)) == pytest.approx(conversion_ns)


def test_shared_adcs_round_up_conversion_rounds():
    assert mvm_latency_ns(tile(adcs_per_tile=100)) == pytest.approx(16 + 10 + 2 * 5)


def test_given_mvm_latency_overrides_composition():
    assert mvm_latency_ns(tile(mvm_latency_ns=77.0)) == 77.0


def test_full_mvm_energy_parts():
    # array: 2 uW * 64 * 128 cells * 16 ns = 262.144 pJ; periphery 128 * 0.25; dac 64 rows * 0.5
    assert mvm_energy_parts_pj(TILE, 64, 128) == pytest.approx(
        {"array_read": 262.144, "periphery": 32.0, "control": 8.0, "dac": 32.0, "adc": 128 * 3.0})
    assert mvm_energy_pj(TILE, 64, 128) == pytest.approx({"array": 262.144 + 32 + 8, "dac": 32.0, "adc": 384.0})


def test_partial_block_pays_for_the_cells_rows_and_columns_it_drives():
    energy = mvm_energy_parts_pj(TILE, 16, 32)  # 1/16 of the cells, 1/4 of rows and columns
    assert energy == pytest.approx({"array_read": 262.144 / 16, "periphery": 8.0, "control": 8.0,
                                    "dac": 8.0, "adc": 96.0})


def test_bit_serial_drives_each_row_once_per_bit():
    energy = mvm_energy_parts_pj(tile(dac__encoding="bit_serial"), 64, 128)
    assert energy["dac"] == pytest.approx(6 * 32.0)
    assert energy["array_read"] == pytest.approx(2.0 * 64 * 128 * 12.0 / 1e3)


@pytest.mark.parametrize("model, bits, energy_pj", [
    ("survey", 8, 0.36), ("survey", 6, 0.09),
    ("walden", 8, 1.56), ("walden", 4, 1.56 / 16),
    ("capacitive", 8, (800 + 0.001 * 65536) * 0.64 / 1e3),
    ("fixed", 4, 3.0), ("fixed", 12, 3.0),
])
def test_adc_energy_models(model, bits, energy_pj):
    assert adc_energy_per_conversion_pj(tile(adc_bits=bits, adc__energy_model=model)) == pytest.approx(energy_pj)


def test_walden_figure_of_merit_is_per_step():
    assert adc_energy_per_conversion_pj(tile(adc_bits=8, adc__energy_model="walden",
                                             adc__fom_fj_per_step=78.125)) == pytest.approx(20.0)


@pytest.mark.parametrize("rows, cols", [(0, 10), (65, 10), (10, 0), (10, 129)])
def test_block_outside_the_tile_is_a_bug(rows, cols):
    with pytest.raises(ValueError, match="does not fit"):
        mvm_energy_pj(TILE, rows, cols)


@pytest.mark.parametrize("changes, what", [(dict(dac__encoding="thermometer"), "input encoding"),
                                           (dict(adc__type="pipeline"), "ADC type")])
def test_unknown_architecture_is_rejected(changes, what):
    with pytest.raises(ValueError, match=what):
        mvm_latency_ns(tile(**changes))


def test_static_power_is_per_tile():
    assert tile_static_power_mw(TILE) == 2.5
