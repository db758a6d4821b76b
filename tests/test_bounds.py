"""Analytical lower bounds: hand-computed terms, and no simulated figure beats its bound."""
import pytest

from simulator.hw.loader import load_hw
from simulator.ir.graph import Graph, Op, OpKind, Projection
from simulator.mapping.mapping import Mapping, Placement
from simulator.report.bounds import lower_bound
from simulator.run import simulate_workload


def one_linear(tokens: int, phase: str = "decode") -> tuple[Graph, Mapping]:
    """A 64 x 128 projection (1 row block x 2 column blocks of tiny's 64 x 64 tiles)."""
    op = Op(id=0, name="fc#s0", kind=OpKind.LINEAR, tokens=tokens, projection="fc", in_features=64,
            out_features=128, macs=tokens * 64 * 128, elements_in=tokens * 64, elements_out=tokens * 128)
    graph = Graph(model="hand", phase=phase, batch=1, tokens=tokens, ops=(op,),
                  projections=(Projection("fc", 64, 128, has_bias=False),))
    mapping = Mapping((Placement("fc", "analog", cores=(0,), tiles=(0, 1), row_blocks=1, col_blocks=2),))
    return graph, mapping


def test_one_analog_linear_by_hand():
    """tiny: 50 ns MVMs, 272 pJ each; 2 cores of 16 SIMD lanes; 1 mW static per tile.

    4 tokens: each tile runs 4 MVMs = 200 ns (tiles term); reduction 4 x 128 adds at
    16 lanes on one core... spread over both cores for the `cores` term: 512/16/2 = 16 ns;
    energy 4 tokens x 2 blocks x 272 pJ, reduction 512 x 0.05 pJ, NoC inputs 4 x 64 x 2
    + partial sums 4 x 128 bytes at 0.1 pJ/B/hop, static 8 tiles x 1 mW x 200 ns.
    """
    hw = load_hw("tiny")
    graph, mapping = one_linear(4)
    bound = lower_bound(graph, mapping, hw)
    assert bound.latency_terms_ns["tiles"] == 200.0
    assert bound.latency_terms_ns["cores"] == pytest.approx(16.0)
    assert bound.latency_terms_ns["dependency"] == 200.0  # decode: all 4 tokens through the tile
    assert bound.latency_ns == 200.0 and bound.binding == "dependency"  # ties go to the first term
    e = bound.energy_terms_pj
    assert e["array"] + e["dac"] + e["adc"] == pytest.approx(4 * 2 * 272.0)
    assert e["digital_mac"] == pytest.approx(512 * 0.05)
    assert e["noc"] == pytest.approx((4 * 64 * 2 + 4 * 128) * 0.1)
    assert e["static"] == pytest.approx(8 * 1.0 * 200.0)
    assert bound.counts["mvms"] == 8 and bound.counts["adc_conversions"] == 512


def test_prefill_tokens_pipeline_through_the_chain():
    """In prefill the chain counts one token per op: 1 MVM of 50 ns, not 4."""
    hw = load_hw("tiny")
    graph, mapping = one_linear(4, phase="prefill")
    bound = lower_bound(graph, mapping, hw)
    assert bound.latency_terms_ns["dependency"] == 50.0
    assert bound.latency_terms_ns["tiles"] == 200.0


def test_reprogramming_counts_per_pass():
    """A tile serving rounds 0 and 1 is rewritten twice per decode pass, minus the initial load."""
    from simulator.report.bounds import _reprogrammings_per_tile
    mapping = Mapping((Placement("a", "analog", tiles=(0,), row_blocks=1, col_blocks=1, program_round=0),
                       Placement("b", "analog", tiles=(0,), row_blocks=1, col_blocks=1, program_round=1),
                       Placement("c", "analog", tiles=(1,), row_blocks=1, col_blocks=1, program_round=1)),
                      program_rounds=2)
    assert _reprogrammings_per_tile(mapping, passes=3, n_tiles=3).tolist() == [5, 1, 0]


def test_node_links_are_grid_neighbours():
    """A corner router has 2 neighbours, an edge one 3, an inner one 4; the bus has one link."""
    from simulator.interconnect.mesh import build_topology
    from simulator.report.bounds import _node_links
    topology = build_topology(load_hw("analog_fabric"))
    x, y = topology.node_xy(range(topology.n_nodes))
    links = _node_links(topology, range(topology.n_nodes))
    corner = ((x == 0) | (x == topology.cols - 1)) & ((y == 0) | (y == topology.rows - 1))
    inner = (x > 0) & (x < topology.cols - 1) & (y > 0) & (y < topology.rows - 1)
    assert set(links[corner]) == {2.0} and set(links[inner]) == {4.0} and set(links[~corner & ~inner]) == {3.0}
    bus = build_topology(load_hw("analog_fabric", {"interconnect.topology": "bus"}))
    assert _node_links(bus, [0, 1]).tolist() == [1.0, 1.0]


def one_layernorm(tokens: int) -> Graph:
    op = Op(id=0, name="ln#s0", kind=OpKind.LAYERNORM, tokens=tokens, elements=tokens * 768,
            elements_in=tokens * 768, elements_out=tokens * 768)
    return Graph(model="hand", phase="decode", batch=1, tokens=tokens, ops=(op,), projections=())


@pytest.mark.parametrize("split_ops, tokens, cores_used", [(False, 8, 1), (True, 8, 8), (True, 64, 16), (True, 1, 1)])
def test_a_layernorm_is_bounded_on_the_cores_its_rows_may_use(split_ops, tokens, cores_used):
    """analog_fabric: 16 cores of 32 LayerNorm elements per cycle at 1 GHz. Unsplit ops run on
    one core; split, a LayerNorm takes one token row per core at most."""
    hw = load_hw("analog_fabric", {"digital.split_ops": split_ops})
    bound = lower_bound(one_layernorm(tokens), Mapping(()), hw)
    assert bound.latency_terms_ns["dependency"] == pytest.approx(tokens * 768 / 32 / cores_used)


def test_unsplit_ops_queue_on_their_core():
    """Three independent LayerNorms of 8 x 768 with no Linear to follow run on core 0: without
    split_ops the core term is their sum (576 ns), though the chain is one of them (192 ns)."""
    ops = tuple(Op(id=i, name=f"ln{i}#s0", kind=OpKind.LAYERNORM, tokens=8, elements=8 * 768,
                   elements_in=8 * 768, elements_out=8 * 768) for i in range(3))
    graph = Graph(model="hand", phase="decode", batch=1, tokens=8, ops=ops, projections=())
    unsplit = lower_bound(graph, Mapping(()), load_hw("analog_fabric", {"digital.split_ops": False}))
    assert unsplit.latency_terms_ns["dependency"] == pytest.approx(192.0)
    assert unsplit.latency_terms_ns["cores"] == pytest.approx(576.0)
    split = lower_bound(graph, Mapping(()), load_hw("analog_fabric"))
    assert split.latency_terms_ns["cores"] == pytest.approx(576.0 / 16)


@pytest.mark.parametrize("preset, phase, kw", [
    ("analog_fabric", "prefill", dict(seq=8, chunk_tokens=2)),
    ("ibm_fabric_bert", "prefill", dict(seq=8, chunk_tokens=2)),  # unsplit ops on one core each
    ("ibm_fabric_bert", "decode", dict(seq=8, new_tokens=2)),
    ("analog_fabric", "prefill", dict(seq=8)),
    ("analog_fabric", "decode", dict(seq=8, new_tokens=2)),
    ("digital", "decode", dict(seq=8, new_tokens=2)),  # weights beyond SRAM stream from DRAM
    ("hermes64", "decode", dict(seq=8, new_tokens=2)),  # reprogrammed every pass
    ("analog_fabric:twin", "decode", dict(seq=8, new_tokens=2)),  # weights streamed past the DRAM node's links
])
def test_no_simulated_figure_beats_its_bound(preset, phase, kw):
    name, _, twin = preset.partition(":")
    hw = load_hw(name, {"analog.tiles": 0} if twin else None)
    report = simulate_workload(hw, "gpt2", phase, "all-analog" if not twin else "all-digital", **kw).report
    assert report.bound["latency_ratio"] >= 1.0
    assert report.bound["energy_ratio"] >= 1.0
