"""Both engines give identical schedules on real lowered workloads, not only on random DAGs."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.engine import des, fast
from simulator.engine.lower import lower
from simulator.hw.loader import load_hw
from simulator.mapping.place import map_workload
from simulator.report.build import build_report
from workloads.registry import build_graph


def lowered(hw_name, workload, phase, strategy, **graph_kw):
    hw = load_hw(hw_name)
    graph = build_graph(workload, phase, **graph_kw)
    mapping = map_workload(graph, hw, strategy)
    return lower(graph, mapping, hw), graph, mapping, hw


def assert_same_schedule(tg):
    reference, numba = des.simulate(tg), fast.simulate(tg)
    np.testing.assert_array_equal(reference.start_cycles, numba.start_cycles)
    assert reference.makespan_cycles == numba.makespan_cycles
    return reference, numba


def test_gpt2_prefill_one_token_chunks_on_analog_fabric():
    tg, graph, mapping, hw = lowered("analog_fabric", "gpt2", "prefill", "all-analog", seq=2, chunk_tokens=1)
    reference, numba = assert_same_schedule(tg)
    a = build_report(tg, reference, graph, mapping, hw).to_dict()
    b = build_report(tg, numba, graph, mapping, hw).to_dict()
    assert a["energy_breakdown_pj"] == b["energy_breakdown_pj"]
    busy_tiles = sum(1 for f in a["utilisation"]["tile"]["per_resource"].values() if f > 0)
    assert a["tiles_used"] == busy_tiles and a["utilisation"]["tile"]["count"] == 672


def test_time_multiplexed_gpt2_with_reprogramming():
    hw = load_hw("hermes64")
    graph = build_graph("gpt2", "prefill", seq=4, chunk_tokens=2)
    targets = {p.name: "analog" for p in graph.projections} | {"lm_head": "digital"}
    mapping = map_workload(graph, hw, targets)
    assert mapping.program_rounds > 1
    tg = lower(graph, mapping, hw)
    reference, _ = assert_same_schedule(tg)
    assert build_report(tg, reference, graph, mapping, hw).to_dict()["energy_breakdown_pj"]["program"] > 0


def test_mobilebert_encoder_all_digital():
    tg, *_ = lowered("hermes64", "mobilebert", "encoder", "all-digital", seq=16, chunk_tokens=8)
    assert_same_schedule(tg)


def test_gpt2_decode_on_hermes():
    hw = load_hw("hermes64")
    graph = build_graph("gpt2", "decode", seq=8, new_tokens=2)
    targets = {p.name: "analog" for p in graph.projections} | {"lm_head": "digital"}
    assert_same_schedule(lower(graph, map_workload(graph, hw, targets), hw))


@pytest.mark.slow
def test_gpt2_prefill_256_tokens_one_token_chunks_on_analog_fabric():
    """About a million tasks (4,191 per token): the size the fast engine is built for."""
    tg, *_ = lowered("analog_fabric", "gpt2", "prefill", "all-analog", seq=256, chunk_tokens=1)
    assert tg.n_tasks > 1_000_000
    assert_same_schedule(tg)
