"""Cost of one matrix-vector multiply (MVM) on one crossbar tile: latency, energy, leakage.

Every figure is composed from per-unit parameters, so that sweeping a tile key moves it by
the circuit's law (the table in docs/hwconfigs.md lists each key, its law and source):

- Input window (`analog.dac`). Pulse-width inputs (`pwm`) apply each input as one pulse
  of up to 2^dac_bits steps of `ns_per_step`; `bit_serial` applies one phase of
  `phase_ns` per input bit; `multi_level` applies one amplitude-coded phase of `phase_ns`.
- Integration (`integration_ns`): what follows the input window before conversion. It is
  constant in rows: the column charge is collected during the input window itself and the
  integrator is sized to the output range (`periphery.out_bound`), so more rows mean more
  charge, not more time; the bit-line RC of even 1024 rows settles in well under a ns.
- Conversion (`analog.adc`). Columns that share an ADC are converted one after another:
  `ceil(cols / adcs_per_tile)` rounds. One conversion takes `adc_bits * ns_per_bit` (SAR:
  a binary search), `2^adc_bits * ns_per_lsb` (ramp, CCO: counting LSB periods) or
  `conversion_ns` (flash: all comparators at once).
- `analog.mvm_latency_ns`, if given, is a measured total that replaces the composition.
- Energy of an MVM on `r` driven rows x `c` converted columns: the crossbar read
  `cell_read_power_uw * r * c * input window` (each driven cell conducts while its input
  pulses last), the DAC `dac.energy_pj_per_row * r * phases`, the ADC `c` conversions at
  the energy model's figure for `adc_bits`, the per-column periphery (accumulation,
  scaling, affine correction) `periphery_energy_pj_per_col * c`, and `control_energy_pj`
  per MVM. Unused rows are not driven and unused columns are not converted.
- Static power is per tile and is charged for the whole run by the report.
"""
from __future__ import annotations

import math

from simulator.hw.schema import AnalogConfig

ADC_TYPES = ("sar", "flash", "ramp", "cco")
ADC_ENERGY_MODELS = ("fixed", "walden", "survey", "capacitive")
INPUT_ENCODINGS = ("pwm", "bit_serial", "multi_level")
# The per-unit time parameter each architecture is timed by (docs/hwconfigs.md).
ADC_TIME_KEY = {"sar": "ns_per_bit", "flash": "conversion_ns", "ramp": "ns_per_lsb", "cco": "ns_per_lsb"}
DAC_TIME_KEY = {"pwm": "ns_per_step", "bit_serial": "phase_ns", "multi_level": "phase_ns"}

SURVEY_8BIT_14NM_PJ = 0.36  # Murmann-survey regression at 14 nm (REFERENCES.md)
CAPACITIVE_VDD_V = 0.8  # assumed supply of a 14 nm node


def input_phases(analog: AnalogConfig) -> int:
    """Number of input phases per MVM under the tile's input encoding."""
    encoding = _checked(analog.dac.encoding, INPUT_ENCODINGS, "input encoding")
    return analog.dac_bits if encoding == "bit_serial" else 1


def input_window_ns(analog: AnalogConfig) -> float:
    """How long the inputs are applied to the rows: the time each driven cell conducts."""
    if _checked(analog.dac.encoding, INPUT_ENCODINGS, "input encoding") == "pwm":
        return 2 ** analog.dac_bits * analog.dac.ns_per_step
    return input_phases(analog) * analog.dac.phase_ns


def adc_conversion_rounds(analog: AnalogConfig) -> int:
    """Columns share ADCs, so a full MVM needs this many conversions one after another."""
    return math.ceil(analog.cols / analog.adcs_per_tile)


def adc_conversion_ns(analog: AnalogConfig) -> float:
    """Time of one conversion at `adc_bits` under the converter's architecture."""
    adc = analog.adc
    kind = _checked(adc.type, ADC_TYPES, "ADC type")
    if kind == "sar":
        return analog.adc_bits * adc.ns_per_bit
    if kind == "flash":
        return adc.conversion_ns
    return 2 ** analog.adc_bits * adc.ns_per_lsb


def adc_energy_per_conversion_pj(analog: AnalogConfig) -> float:
    """Energy of one conversion at `adc_bits` under the ADC energy model (REFERENCES.md)."""
    adc, bits = analog.adc, analog.adc_bits
    model = _checked(adc.energy_model, ADC_ENERGY_MODELS, "ADC energy model")
    if model == "fixed":
        return adc.energy_pj
    if model == "walden":  # a figure of merit per conversion step
        return adc.fom_fj_per_step * 2 ** bits / 1e3
    if model == "survey":
        return SURVEY_8BIT_14NM_PJ * 2.0 ** (bits - 8)
    return (100.0 * bits + 0.001 * 4 ** bits) * CAPACITIVE_VDD_V ** 2 / 1e3  # capacitive, fF * V^2


def mvm_latency_parts_ns(analog: AnalogConfig) -> dict[str, float]:
    """The composed latency of one MVM: input window, integration, conversion rounds."""
    return {"input": input_window_ns(analog),
            "integration": analog.integration_ns,
            "conversion": adc_conversion_rounds(analog) * adc_conversion_ns(analog)}


def mvm_latency_ns(analog: AnalogConfig) -> float:
    """Latency of one MVM of one input vector on one tile, in ns."""
    if analog.mvm_latency_ns is not None:
        return float(analog.mvm_latency_ns)
    return sum(mvm_latency_parts_ns(analog).values())


def mvm_energy_parts_pj(analog: AnalogConfig, active_rows: int, active_cols: int) -> dict[str, float]:
    """Dynamic energy of one MVM on `active_rows` x `active_cols` of the tile, by part, in pJ."""
    if not (0 < active_rows <= analog.rows and 0 < active_cols <= analog.cols):
        raise ValueError(f"active block {active_rows}x{active_cols} does not fit a "
                         f"{analog.rows}x{analog.cols} tile")
    cells = active_rows * active_cols
    return {
        "array_read": analog.cell_read_power_uw * cells * input_window_ns(analog) / 1e3,  # uW*ns = fJ
        "periphery": analog.periphery_energy_pj_per_col * active_cols,
        "control": analog.control_energy_pj,
        "dac": analog.dac.energy_pj_per_row * active_rows * input_phases(analog),
        "adc": adc_energy_per_conversion_pj(analog) * active_cols,
    }


def mvm_energy_pj(analog: AnalogConfig, active_rows: int, active_cols: int) -> dict[str, float]:
    """Dynamic energy of one MVM in the report's components, in pJ.

    Keys: `array` (crossbar read plus the tile's digital periphery and control), `dac`
    (row drivers), `adc` (conversions).
    """
    parts = mvm_energy_parts_pj(analog, active_rows, active_cols)
    return {"array": parts["array_read"] + parts["periphery"] + parts["control"],
            "dac": parts["dac"], "adc": parts["adc"]}


def tile_static_power_mw(analog: AnalogConfig) -> float:
    """Leakage and bias power of one tile while the system runs, in mW (= pJ per ns)."""
    return float(analog.static_power_mw)


def _checked(value: str, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(valid)}")
    return value
