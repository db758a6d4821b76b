"""Report figures, table, Chrome trace and HDF5 on a hand-computed three-task run."""
from __future__ import annotations

import dataclasses
import json
import os

import h5py
import numpy as np
import pytest

from simulator.engine import des, fast
from simulator.engine.taskgraph import ENERGY_COMPONENTS
from simulator.errors import UserError
from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph, Op, OpKind, Projection
from simulator.mapping.mapping import Mapping, Placement
from simulator.report.build import build_report, energy_breakdown_pj
from simulator.report.h5 import write_run_h5
from simulator.report.table import format_energy_pj, format_report, format_time_ns
from simulator.report.trace import write_chrome_trace
from test_engine_graphs import task_graph


def energy_row(**components):
    return [components.get(name, 0.0) for name in ENERGY_COMPONENTS]


@pytest.fixture
def run():
    """tile0 runs task 0 (4 cycles), tile1 task 1 (2), core0 task 2 (3) after both: makespan 7."""
    tg = task_graph(
        [0, 1, 2], [4, 2, 3], [[], [], [0, 1]], 3, cycle_ns=2.0, tokens=4,
        energy_pj=[energy_row(array=10.0), energy_row(adc=5.0), energy_row(digital_mac=2.0)],
        static_power_mw=[1.0, 1.0, 0.5], resource_kind=[0, 0, 1], task_kind=[0, 0, 2], task_op=[0, 0, 1])
    graph = Graph(model="gpt2", phase="prefill", batch=1, tokens=4,
                  ops=(Op(id=0, name="fc#c0", kind=OpKind.LINEAR, projection="fc"),
                       Op(id=1, name="out#c0", kind=OpKind.LINEAR, deps=(0,), projection="out")),
                  projections=(Projection("fc", 8, 8), Projection("out", 8, 8)))
    mapping = Mapping(placements=(Placement("fc", "analog", tiles=(0, 1), row_blocks=1, col_blocks=2),
                                  Placement("out", "digital")))
    hw = HwConfig(name="handmade", source="tests")
    schedule = fast.simulate(tg)
    return tg, schedule, graph, build_report(tg, schedule, graph, mapping, hw)


def test_headline_figures_by_hand(run):
    _, _, _, report = run
    d = report.to_dict()
    assert d["latency_cycles"] == 7 and d["latency_ns"] == 14.0
    assert d["tokens_per_s"] == pytest.approx(4 / 14e-9)
    # static: (1 + 1 + 0.5) mW x 14 ns = 35 pJ
    assert d["energy_breakdown_pj"]["static"] == pytest.approx(35.0)
    assert d["energy_pj"] == pytest.approx(10 + 5 + 2 + 35)
    assert "program" not in d["energy_breakdown_pj"]
    assert d["tiles_used"] == 2 and d["n_tasks"] == 3 and d["engine"] == "fast"
    assert d["mapping"] == {"fc": "analog", "out": "digital"}
    assert d["workload"] == {"model": "gpt2", "phase": "prefill", "batch": 1, "tokens": 4,
                             "prompt_tokens": None, "new_tokens": 0, "chunk_tokens": None, "chunks": 1}
    assert d["hw"] == {"name": "handmade", "source": "tests"}
    json.dumps(d)  # JSON-ready


def test_utilisation_by_hand(run):
    utilisation = run[3].to_dict()["utilisation"]
    assert utilisation["tile"]["count"] == 2
    assert utilisation["tile"]["busy_fraction"] == pytest.approx(6 / 14)
    assert utilisation["tile"]["per_resource"] == pytest.approx({"tile0": 4 / 7, "tile1": 2 / 7})
    assert utilisation["core"]["per_resource"] == pytest.approx({"core2": 3 / 7})
    assert utilisation["core"]["busy_fraction"] == pytest.approx(3 / 7)
    assert "link" not in utilisation


def test_program_energy_is_listed_only_when_spent(run):
    tg = run[0]
    reprogrammed = dataclasses.replace(tg, energy_pj=tg.energy_pj + np.eye(3, len(ENERGY_COMPONENTS), 8))
    assert energy_breakdown_pj(reprogrammed, 7)["program"] == pytest.approx(1.0)


def test_both_engines_give_the_same_energy(run):
    tg = run[0]
    assert (energy_breakdown_pj(tg, des.simulate(tg).makespan_cycles)
            == energy_breakdown_pj(tg, fast.simulate(tg).makespan_cycles))


def test_engineering_units():
    assert format_time_ns(1500.0) == "1.5 us"
    assert format_time_ns(2.5e6) == "2.5 ms"
    assert format_time_ns(0.5) == "0.5 ns"
    assert format_energy_pj(2.5e9) == "2.5 mJ"
    assert format_energy_pj(999.0) == "999 pJ"
    assert format_energy_pj(0.0) == "0 pJ"


def test_table_shows_the_figures(run):
    text = format_report(run[3])
    assert "14 ns (7 cycles)" in text
    assert "52 pJ (13 pJ/token)" in text
    assert "1 analog, 1 digital projections" in text
    static_line = next(line for line in text.splitlines() if line.strip().startswith("static"))
    assert static_line.endswith("67.3 %")  # 35 of 52 pJ


def test_chrome_trace(run, tmp_path):
    tg, schedule, graph, _ = run
    path = tmp_path / "trace.json"
    write_chrome_trace(tg, schedule, path, graph=graph)
    events = json.loads(path.read_text())["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert names == {0: "tile0", 1: "tile1", 2: "core2", 3: "delays (no resource)"}
    spans = [e for e in events if e["ph"] == "X"]
    assert [(e["tid"], e["ts"], e["dur"], e["cat"]) for e in spans] == [
        (0, 0.0, 0.008, "mvm"), (1, 0.0, 0.004, "mvm"), (2, 0.008, 0.006, "digital_linear")]
    assert spans[2]["args"] == {"task": 2, "op": 1, "op_name": "out#c0"}


def test_chrome_trace_cap_keeps_the_earliest_tasks(run, tmp_path):
    tg, schedule, _, _ = run
    path = tmp_path / "trace.json"
    write_chrome_trace(tg, schedule, path, max_events=2)
    payload = json.loads(path.read_text())
    assert [e["args"]["task"] for e in payload["traceEvents"] if e["ph"] == "X"] == [0, 1]
    assert payload["otherData"]["tasks"] == 3 and payload["otherData"]["tasks_written"] == 2


def test_run_h5_round_trip(run, tmp_path):
    tg, schedule, _, report = run
    path = tmp_path / "run.h5"
    write_run_h5(report, tg, schedule, path)
    with h5py.File(path) as f:
        assert json.loads(f.attrs["report_json"]) == report.to_dict()
        assert f.attrs["latency_cycles"] == 7 and f.attrs["engine"] == "fast"
        assert f["schedule/start_cycle"][:].tolist() == [0, 0, 4]
        assert f["schedule/energy_pj"][:, 0].tolist() == [10.0, 0.0, 0.0]
        assert list(f["schedule/energy_pj"].attrs["components"]) == list(ENERGY_COMPONENTS)
        assert [s.decode() for s in f["resources/label"][:]] == ["tile0", "tile1", "core2"]
    assert os.listdir(tmp_path) == ["run.h5"]  # no temp file left behind


def test_failed_write_leaves_nothing(run, tmp_path, monkeypatch):
    tg, schedule, _, _ = run

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(json, "dump", fail)
    with pytest.raises(RuntimeError):
        write_chrome_trace(tg, schedule, tmp_path / "trace.json")
    assert os.listdir(tmp_path) == []


def test_missing_folder_is_a_user_error(run, tmp_path):
    tg, schedule, _, _ = run
    with pytest.raises(UserError, match="does not exist"):
        write_chrome_trace(tg, schedule, tmp_path / "nowhere" / "trace.json")


def test_fallbacks_name_each_digital_projection_and_why():
    from simulator.hw.loader import load_hw
    from simulator.mapping.place import map_workload
    from simulator.report.build import fallback_reasons
    from workloads.registry import build_graph

    graph = build_graph("gpt2", "prefill", seq=4)
    hw = load_hw("analog_fabric", {"analog.tiles": 600})  # 456 for the blocks, 144 left: lm_head needs 198
    reasons = fallback_reasons(graph, map_workload(graph, hw, "all-analog"), hw)
    assert reasons == {"lm_head": "needs 198 tiles, 144 free after the analog projections before it "
                                  "(analog.allow_time_multiplexing: false)"}
    digital = fallback_reasons(graph, map_workload(graph, hw, "all-digital"), hw)
    assert len(digital) == 49 and set(digital.values()) == {"all-digital mapping"}


def test_decode_header_says_prompt_and_new_tokens():
    from simulator.report.table import workload_line
    line = workload_line({"model": "gpt2", "phase": "decode", "batch": 1, "tokens": 32,
                          "prompt_tokens": 128, "new_tokens": 32})
    assert line == "gpt2 decode: 32 new tokens after a 128-token prompt, batch 1"


def test_programming_warning_above_half_of_latency_or_energy(run):
    report = run[3]
    quiet = dataclasses.replace(report, programming={"tile_programmings": 4, "latency_share": 0.5,
                                                     "energy_share": 0.2})
    assert quiet.programming_warnings() == []
    loud = dataclasses.replace(report, programming={"tile_programmings": 4, "latency_share": 0.9,
                                                    "energy_share": 0.6})
    warnings = loud.programming_warnings()
    assert len(warnings) == 2 and "90 % of the latency" in warnings[0] and "60 % of the energy" in warnings[1]


def test_decode_workloads_of_different_prompts_are_told_apart():
    from simulator.report.build import workload_summary
    from workloads.registry import build_graph

    short, long = (workload_summary(build_graph("gpt2", "decode", seq=seq, new_tokens=8)) for seq in (16, 128))
    assert (short["prompt_tokens"], long["prompt_tokens"]) == (16, 128)
    assert short["new_tokens"] == long["new_tokens"] == 8 and short != long
    prefill = workload_summary(build_graph("gpt2", "prefill", seq=16, chunk_tokens=4))
    assert (prefill["chunks"], prefill["chunk_tokens"], prefill["new_tokens"]) == (4, 4, 0)


def test_memory_and_bottleneck_sections_of_a_real_run():
    from simulator.hw.loader import load_hw
    from simulator.run import simulate_workload

    report = simulate_workload(load_hw("tiny"), "gpt2-pydoc", "decode", seq=8, new_tokens=2).report
    memory = report.memory
    assert set(memory["bytes_per_level"]) == {"sram", "dram", "noc_byte_hops"}
    assert len(memory["sram_resident_bytes_per_core"]) == 2
    assert max(memory["sram_resident_bytes_per_core"].values()) <= memory["sram_capacity_bytes"]
    path = report.critical_path
    assert sum(path["by_category"].values()) == path["latency_cycles"] == report.latency_cycles
    assert sum(path["by_op_kind"].values()) + path["by_category"]["wait"] == report.latency_cycles
    text = format_report(report)
    assert "memory (bytes moved)" in text and "bottleneck (critical path" in text
    assert "bound " in text.splitlines()[1]
