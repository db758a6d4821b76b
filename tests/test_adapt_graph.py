"""Adapters as digital graph ops: structure, costing by the unchanged lowering, adaptation cost."""
import pytest

from simulator.adapt.cost import lora_load_cost, reprogram_cost, simulate_with_adapters, adapter_bytes
from simulator.adapt.graph import with_adapter_placements, with_adapters
from simulator.errors import UserError
from simulator.hw.loader import load_hw
from simulator.ir.graph import OpKind
from simulator.mapping.place import map_workload
from workloads.registry import build_graph

RANK = 8


@pytest.fixture(scope="module")
def setting():
    hw = load_hw("hermes64")
    graph = build_graph("gpt2-pydoc", "prefill", seq=16)
    ranks = {p.name: RANK for p in graph.projections if ".attn." in p.name}
    return hw, graph, ranks


def test_each_adapted_linear_gets_a_b_and_an_add_read_by_its_consumers(setting):
    _, graph, ranks = setting
    adapted = with_adapters(graph, ranks)
    linears = [op for op in graph.ops if op.kind == OpKind.LINEAR and op.projection in ranks]
    assert len(adapted.ops) == len(graph.ops) + 3 * len(linears)
    assert len(adapted.projections) == len(graph.projections) + 2 * len(ranks)
    by_name = {op.name: op for op in adapted.ops}
    for op in linears:
        tag = op.name.rpartition("#")[2]
        base = by_name[op.name]
        a = by_name[f"{op.projection}.lora_A#{tag}"]
        b = by_name[f"{op.projection}.lora_B#{tag}"]
        add = by_name[f"{op.projection}.lora_add#{tag}"]
        assert a.deps == base.deps  # in parallel with the analog MVM
        assert (a.in_features, a.out_features, b.in_features, b.out_features) == (
            op.in_features, RANK, RANK, op.out_features)
        assert add.deps == (base.id, b.id) and add.kind == OpKind.ADD
        readers = [o for o in adapted.ops if base.id in o.deps]
        assert {o.id for o in readers} == {add.id}  # consumers read the Add, not the bare Linear
    for i, op in enumerate(adapted.ops):
        assert op.id == i and all(d < i for d in op.deps)


def test_adapter_placements_are_digital_on_the_reduction_cores(setting):
    """A on the first reduction core; B split over every distinct reduction core."""
    hw, graph, ranks = setting
    mapping = map_workload(graph, hw, "all-analog")
    adapted = with_adapter_placements(mapping, with_adapters(graph, ranks))
    for name in ranks:
        cores = mapping.placement(name).cores
        a, b = (adapted.placement(f"{name}.{part}") for part in ("lora_A", "lora_B"))
        assert not a.is_analog and a.cores == (cores[0],)
        assert not b.is_analog and b.cores == tuple(dict.fromkeys(cores))


def test_the_adapter_add_runs_where_its_projection_is_reduced(setting):
    """The adapter ops come before P, so P is the Add's latest producer: the Add (and what
    follows it) is anchored to P's reduction cores, not to lora_B's."""
    hw, graph, ranks = setting
    adapted = with_adapters(graph, ranks)
    for add in (o for o in adapted.ops if ".lora_add#" in o.name):
        producer = adapted.ops[max(add.deps)]
        assert producer.kind == OpKind.LINEAR and producer.projection == add.name.split(".lora_add#")[0]


def test_adapters_cost_a_little_latency_and_energy_and_far_less_to_load_than_reprogramming(setting):
    hw, graph, ranks = setting
    result = simulate_with_adapters(hw, "gpt2-pydoc", ranks, seq=16)
    assert result["with"]["energy_pj"] > result["without"]["energy_pj"]
    assert 0 <= result["latency_overhead"] < 0.5
    assert 0 < result["energy_overhead"] < 0.5
    assert set(result["per_layer"]) >= {"0", "11"}
    lora, hwa = result["adaptation_cost"]["lora"], result["adaptation_cost"]["hwa"]
    assert lora["nbytes"] == sum(adapter_bytes(ranks, graph, hw.digital.weight_bytes).values())
    assert hwa["tiles"] == sum(p.row_blocks * p.col_blocks for p in map_workload(graph, hw, "all-analog").placements
                               if p.is_analog)
    assert hwa["time_ns"] == pytest.approx(hwa["tiles"] * hw.analog.program_time_per_tile_us * 1e3)
    assert hwa["time_ns"] > 100 * lora["time_ns"] and hwa["energy_pj"] > 10 * lora["energy_pj"]


def test_no_adapters_changes_nothing(setting):
    hw, graph, _ = setting
    result = simulate_with_adapters(hw, "gpt2-pydoc", {}, seq=16)
    assert result["with"]["latency_ns"] == result["without"]["latency_ns"]
    assert result["with"]["energy_pj"] == result["without"]["energy_pj"]


def test_unknown_adapter_projection_is_a_user_error(setting):
    _, graph, _ = setting
    with pytest.raises(UserError, match="matches no projection"):
        with_adapters(graph, {"encoder.layer.0.attention.self.query": 8})
