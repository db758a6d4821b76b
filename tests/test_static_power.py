"""Static power: every calibrated preset draws it for tiles, cores and SRAM, idle or busy."""
import pytest

from simulator.hw.loader import load_hw
from simulator.hw.summary import summarize
from simulator.report.build import energy_breakdown_pj, static_power_mw
from test_engine_graphs import task_graph


@pytest.mark.parametrize("name", ["hermes64", "alpine", "analog_fabric", "digital"])
def test_calibrated_presets_state_static_power_for_every_part(name):
    hw = load_hw(name)
    if hw.analog.tiles:
        assert hw.analog.static_power_mw > 0
    assert hw.digital.static_power_mw > 0
    assert hw.digital.sram_static_power_mw > 0


@pytest.mark.parametrize("name, tops_per_w", [("hermes64", 9.76), ("alpine", 12.8), ("analog_fabric", 100.0)])
def test_static_power_is_inside_the_calibrated_efficiency(name, tops_per_w):
    """Splitting the chip power into dynamic and static keeps the published TOPS/W at peak."""
    figures = summarize(load_hw(name))
    assert figures["tops_per_w"] == pytest.approx(tops_per_w, rel=0.01)
    assert figures["mvm_energy_breakdown_pj"]["static"] > 0


def test_sram_leakage_scales_with_capacity():
    hw = load_hw("hermes64", {"digital.sram_kib": 2048})
    assert hw.digital.sram_static_power_mw == pytest.approx(2 * load_hw("hermes64").digital.sram_static_power_mw)


def test_idle_resources_are_charged_over_the_makespan():
    """Two tiles, one core: only tile0 works (5 cycles of 2 ns), yet all three leak for 10 ns,
    and the core's SRAM (0.25 mW) on top: (1 + 1 + 0.5 + 0.25) mW x 10 ns = 27.5 pJ."""
    tg = task_graph([0], [5], [[]], 3, cycle_ns=2.0, static_power_mw=[1.0, 1.0, 0.5],
                    resource_kind=[0, 0, 1])
    assert static_power_mw(tg, 0.25) == {"tiles": 2.0, "cores": 0.5, "sram": 0.25}
    assert energy_breakdown_pj(tg, 5, 0.25)["static"] == pytest.approx(27.5)


def test_sram_static_power_is_validated():
    from simulator.errors import UserError
    with pytest.raises(UserError, match="sram_static_power_mw_per_mib"):
        load_hw("hermes64", {"digital.sram_static_power_mw_per_mib": -1})
