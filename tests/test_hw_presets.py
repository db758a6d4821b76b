"""Presets reproduce the published figures they are calibrated to (REFERENCES.md)."""
import json
import math

import pytest

from simulator.cli import main
from simulator.hw.loader import load_hw, preset_names
from simulator.hw.summary import summarize

GPT2_SMALL_PROJECTIONS = [(768, 2304), (768, 768), (768, 3072), (3072, 768)] * 12 + [(768, 50257)]


def test_hermes64_reproduces_the_64_core_chip_within_2_percent():
    figures = summarize(load_hw("hermes64"))
    assert figures["peak_tops"] == pytest.approx(63.1, rel=0.02)
    assert figures["tops_per_w"] == pytest.approx(9.76, rel=0.02)
    assert figures["mvm_latency_ns"] == pytest.approx(133, rel=0.02)
    assert figures["mvm_energy_nj"] == pytest.approx(13.4, rel=0.02)
    assert figures["weight_capacity"] == 64 * 256 * 256


def test_hermes64_latency_parts_follow_its_published_per_unit_times():
    parts = summarize(load_hw("hermes64"))["mvm_latency_parts_ns"]
    assert parts["conversion"] == pytest.approx(256 * 0.3)  # [KA22] CCO, 300 ps per LSB
    assert parts["input"] == pytest.approx(256 * 0.2)  # 8-bit pulse width, 200 ps steps


def test_hermes64_adc_share_is_a_minority_but_the_largest_periphery_part():
    breakdown = summarize(load_hw("hermes64"))["mvm_energy_breakdown_pj"]
    assert breakdown["adc"] > breakdown["dac"]
    assert 0.25 < breakdown["adc"] / sum(breakdown.values()) < 0.5


def test_alpine_reproduces_its_mvm_figures():
    figures = summarize(load_hw("alpine"))
    assert figures["mvm_latency_ns"] == pytest.approx(100.0)
    assert figures["mvm_energy_nj"] == pytest.approx(10.24, rel=0.01)
    assert figures["tops_per_w"] == pytest.approx(12.8, rel=0.01)
    assert load_hw("alpine").memory.dram_energy_pj_per_byte * 64 == pytest.approx(120.0)


def test_analog_fabric_holds_gpt2_small_weight_stationary():
    hw = load_hw("analog_fabric")
    rows, cols = hw.analog.rows, hw.analog.cols
    tiles_needed = sum(math.ceil(n_in / rows) * math.ceil(n_out / cols) for n_in, n_out in GPT2_SMALL_PROJECTIONS)
    assert tiles_needed == 654
    assert hw.analog.tiles >= tiles_needed
    assert summarize(hw)["tops_per_w"] == pytest.approx(100.0, rel=0.01)


def test_fewer_adc_bits_cost_less_on_the_fabric():
    six = summarize(load_hw("analog_fabric", {"analog.adc_bits": 6}))
    eight = summarize(load_hw("analog_fabric"))
    assert six["mvm_energy_breakdown_pj"]["adc"] == pytest.approx(eight["mvm_energy_breakdown_pj"]["adc"] / 4)
    assert six["mvm_latency_ns"] == pytest.approx(eight["mvm_latency_ns"] - 2.0)  # SAR: 1 ns per bit


def test_digital_is_hermes64_without_tiles():
    digital, hermes = load_hw("digital"), load_hw("hermes64")
    assert digital.analog.tiles == 0
    assert (digital.digital, digital.interconnect, digital.memory) == (hermes.digital, hermes.interconnect, hermes.memory)
    figures = summarize(digital)
    assert (figures["peak_tops"], figures["tops_per_w"], figures["weight_capacity"]) == (0.0, None, 0)
    assert figures["digital_peak_tops"] == pytest.approx(4 * 256 * 2 * 1.0 / 1e3)


def test_tiny_matches_its_hand_computed_comment():
    figures = summarize(load_hw("tiny"))
    assert figures["mvm_latency_ns"] == 50.0
    assert figures["mvm_energy_breakdown_pj"] == {"array": 80.0, "dac": 64.0, "adc": 128.0, "static": 50.0}
    assert figures["mvm_energy_parts_pj"] == {"array_read": 64.0, "periphery": 16.0, "control": 0.0,
                                              "dac": 64.0, "adc": 128.0, "static": 50.0}
    assert load_hw("tiny_digital").analog.tiles == 0


@pytest.mark.parametrize("name", ["hermes64", "alpine", "analog_fabric", "digital", "tiny", "tiny_digital"])
def test_every_preset_loads(name):
    assert name in preset_names()
    assert load_hw(name).name == name


def test_hw_command_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "hermes.json"
    assert main(["hw", "hermes64", "--set", "analog.tiles=32", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "peak_tops" in printed and "31.55" in printed
    assert "input 51.2, integration 4.94, conversion 76.8" in printed  # the derived parts
    # the array read gives 1,603 pJ to static power (the tile's passive power over the MVM)
    assert "array_read 4,417, periphery 1,200, control 0, dac 2,560, adc 5,120, static 132.9" in printed
    written = json.loads(out.read_text())
    assert written["tiles"] == 32 and written["peak_tops"] == pytest.approx(63.1 / 2, rel=0.02)
    assert [p.name for p in tmp_path.iterdir()] == ["hermes.json"]  # no temp file left behind
