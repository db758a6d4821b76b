"""Cost of one matrix-vector multiply (MVM) on one crossbar tile: latency, energy, leakage.

The model is deliberately first-order, so that a preset can be calibrated to a published
chip figure and a sweep over periphery choices moves the numbers the expected way:

- Latency. If `analog.mvm_latency_ns` is given it is the whole MVM. Otherwise the MVM is
  the input phases (pulse-width modulation applies an 8-bit input as one pulse of variable
  length: 1 phase; bit-serial applies one phase per input bit: `dac_bits` phases), then the
  charge integration, then `ceil(cols / adcs_per_tile)` ADC conversion rounds, because
  columns that share an ADC are converted one after another.
- Energy. The crossbar read (`array_energy_pj`, quoted for a full-size MVM) scales with the
  fraction of cells that carry a used weight; the per-MVM digital periphery
  (`periphery_energy_pj`: accumulators, scaling, control) is paid whole; the DAC costs
  `dac_energy_pj` per driven row and the ADC `adc_energy_pj` per converted column.
  Unused rows are not driven and unused columns are not converted.
- Static power is per tile and is charged for the whole run by the report.

A block mapped onto a tile is active on `active_rows` inputs x `active_cols` outputs; the
lowering passes those so that a ragged last block of a projection costs less.
"""
from __future__ import annotations

import math

from simulator.hw.schema import AnalogConfig

INPUT_ENCODINGS = ("pwm", "bit_serial")


def input_phases(analog: AnalogConfig) -> int:
    """Number of input phases per MVM under the tile's input encoding."""
    if analog.input_encoding == "pwm":
        return 1
    if analog.input_encoding == "bit_serial":
        return analog.dac_bits
    raise ValueError(f"unknown input encoding {analog.input_encoding!r}; expected {INPUT_ENCODINGS}")


def adc_conversion_rounds(analog: AnalogConfig) -> int:
    """Columns share ADCs, so a full MVM needs this many conversions one after another."""
    return math.ceil(analog.cols / analog.adcs_per_tile)


def mvm_latency_ns(analog: AnalogConfig) -> float:
    """Latency of one MVM of one input vector on one tile, in ns."""
    if analog.mvm_latency_ns is not None:
        return float(analog.mvm_latency_ns)
    return (input_phases(analog) * analog.input_phase_ns
            + analog.integration_ns
            + adc_conversion_rounds(analog) * analog.adc_conversion_ns)


def mvm_energy_pj(analog: AnalogConfig, active_rows: int, active_cols: int) -> dict[str, float]:
    """Dynamic energy of one MVM with `active_rows` x `active_cols` of the tile in use, in pJ.

    Keys: `array` (crossbar read scaled by the active cell fraction, plus the per-MVM
    digital periphery), `dac` (per driven row), `adc` (per converted column).
    """
    if not (0 < active_rows <= analog.rows and 0 < active_cols <= analog.cols):
        raise ValueError(f"active block {active_rows}x{active_cols} does not fit a "
                         f"{analog.rows}x{analog.cols} tile")
    active_fraction = (active_rows * active_cols) / (analog.rows * analog.cols)
    return {
        "array": analog.array_energy_pj * active_fraction + analog.periphery_energy_pj,
        "dac": analog.dac_energy_pj * active_rows,
        "adc": analog.adc_energy_pj * active_cols,
    }


def tile_static_power_mw(analog: AnalogConfig) -> float:
    """Leakage and bias power of one tile while the system runs, in mW (= pJ per ns)."""
    return float(analog.static_power_mw)
