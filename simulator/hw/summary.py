"""Headline figures of a hardware config: what an architect reads off a datasheet.

Peak figures assume every tile runs full-size MVMs back to back; TOPS/W counts one
multiply-accumulate as two operations and includes the tile static power over the MVM,
so it is the figure a chip paper quotes for its analog cores at full utilisation. The
per-MVM figures are derived from the per-unit keys at the config's bits and geometry and
are printed with their parts, so a sweep's moves can be read off one config at a time.
"""
from __future__ import annotations

from simulator.analog import tile_cost
from simulator.analog.tile_cost import mvm_energy_pj, mvm_latency_ns, tile_static_power_mw
from simulator.hw.schema import HwConfig


def summarize(hw: HwConfig) -> dict:
    """A flat-ish dict of the config's peak throughput, efficiency and capacity."""
    analog, digital = hw.analog, hw.digital
    ops_per_mvm = 2 * analog.rows * analog.cols
    latency_ns = mvm_latency_ns(analog)
    breakdown_pj = mvm_energy_pj(analog, analog.rows, analog.cols)
    dynamic_pj = sum(breakdown_pj.values())
    static_pj = tile_static_power_mw(analog) * latency_ns  # mW * ns = pJ
    has_tiles = analog.tiles > 0
    digital_ops_per_ns = 2 * digital.cores * digital.macs_per_cycle * hw.system.clock_ghz
    return {
        "name": hw.name,
        "source": hw.source,
        "clock_ghz": hw.system.clock_ghz,
        "tiles": analog.tiles,
        "tile_shape": [analog.rows, analog.cols],
        "weight_capacity": analog.tiles * analog.rows * analog.cols,
        "mvm_latency_ns": latency_ns if has_tiles else None,
        "mvm_latency_from": ("analog.mvm_latency_ns (a fixed total)" if analog.mvm_latency_ns is not None
                             else "input + integration + conversion"),
        "mvm_latency_parts_ns": tile_cost.mvm_latency_parts_ns(analog) if has_tiles else None,
        "mvm_energy_nj": (dynamic_pj + static_pj) / 1e3 if has_tiles else None,
        "mvm_energy_breakdown_pj": (dict(breakdown_pj, static=static_pj) if has_tiles else None),
        "mvm_energy_parts_pj": (dict(tile_cost.mvm_energy_parts_pj(analog, analog.rows, analog.cols),
                                     static=static_pj) if has_tiles else None),
        "input": (f"{analog.dac.encoding}, {analog.dac_bits} bits: "
                  f"{tile_cost.input_window_ns(analog):.4g} ns window, {tile_cost.input_phases(analog)} phase(s)"
                  if has_tiles else None),
        "adc": (f"{analog.adc.type}, {analog.adc_bits} bits: {tile_cost.adc_conversion_ns(analog):.4g} ns "
                f"x {tile_cost.adc_conversion_rounds(analog)} round(s)" if has_tiles else None),
        "adc_energy_model": analog.adc.energy_model if has_tiles else None,
        "adc_energy_pj": tile_cost.adc_energy_per_conversion_pj(analog) if has_tiles else None,
        "peak_tops": analog.tiles * ops_per_mvm / latency_ns / 1e3 if has_tiles else 0.0,
        "tops_per_w": ops_per_mvm / (dynamic_pj + static_pj) if has_tiles else None,
        "analog_peak_power_w": analog.tiles * (dynamic_pj + static_pj) / latency_ns / 1e3,
        "allow_time_multiplexing": analog.allow_time_multiplexing,
        "program_time_per_tile_us": analog.program_time_per_tile_us,
        "program_energy_per_tile_nj": analog.program_energy_per_tile_nj,
        "digital_cores": digital.cores,
        "digital_peak_tops": digital_ops_per_ns / 1e3,
        "digital_tops_per_w": 2 / digital.mac_energy_pj if digital.mac_energy_pj > 0 else None,
        "digital_sram_kib_total": digital.cores * digital.sram_kib,
        "interconnect": f"{hw.interconnect.topology}, {hw.interconnect.link_bytes_per_cycle:g} B/cycle links",
        "dram_bandwidth_gb_s": hw.memory.dram_bandwidth_gb_s,
        "dram_energy_pj_per_byte": hw.memory.dram_energy_pj_per_byte,
    }


def format_summary(summary: dict) -> str:
    """Two aligned columns, units in the key names, '-' where a figure does not apply."""
    width = max(len(key) for key in summary)
    lines = []
    for key, value in summary.items():
        lines.append(f"{key:<{width}}  {_format_value(value)}")
    return "\n".join(lines)


def _format_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " x ".join(str(v) for v in value)
    return str(value)
