"""Lowering against hand-computed task graphs and schedules (dispatch rule in taskgraph.py)."""
import math

import numpy as np
import pytest

from simulator.engine import des, fast
from simulator.engine.lower import lower
from simulator.engine.taskgraph import ENERGY_COMPONENTS, TASK_KINDS
from simulator.errors import UserError
from simulator.hw.schema import AdcConfig, AnalogConfig, DacConfig, DigitalConfig, HwConfig, InterconnectConfig, MemoryConfig
from simulator.ir.graph import Graph, Op, OpKind, Projection
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping, Placement

E = {name: i for i, name in enumerate(ENERGY_COMPONENTS)}


def _kinds(tg):
    return [TASK_KINDS[k] for k in tg.task_kind]


def _schedule(tg):
    """Both engines must agree; return the start cycles."""
    reference, numba = des.simulate(tg), fast.simulate(tg)
    np.testing.assert_array_equal(reference.start_cycles, numba.start_cycles)
    return reference.start_cycles


def _linear(op_id, name, in_f, out_f, tokens=1, deps=(), layer=0, chunk=0, bias=False):
    return Op(op_id, f"{name}#{chunk}", OpKind.LINEAR, deps, tokens=tokens, projection=name, in_features=in_f,
              out_features=out_f, has_bias=bias, macs=tokens * in_f * out_f, elements_in=tokens * in_f,
              elements_out=tokens * out_f, layer=layer, chunk=chunk)


def _analog(name, tiles, row_blocks=1, col_blocks=1, core=0, program_round=0):
    return Placement(name, ANALOG, cores=(core,), tiles=tuple(tiles), row_blocks=row_blocks, col_blocks=col_blocks,
                     program_round=program_round)


# 13000 pJ of array read for a full 256x256 MVM: 13000e3 fJ / 65536 cells over a 1 ns input phase
TILE_HW = HwConfig(analog=AnalogConfig(tiles=1, mvm_latency_ns=133.3, cell_read_power_uw=13000e3 / 65536,
                                       dac=DacConfig(encoding="multi_level", phase_ns=1.0, energy_pj_per_row=0.5),
                                       adc=AdcConfig(energy_pj=1.5), control_energy_pj=200.0,
                                       allow_time_multiplexing=True, program_time_per_tile_us=2.0,
                                       program_energy_per_tile_nj=50.0),
                   digital=DigitalConfig(cores=1), interconnect=InterconnectConfig(mesh_cols=3))


def test_one_mvm_cycles_and_energy():
    graph = Graph("toy", "prefill", 1, 1, (_linear(0, "fc", 100, 50),), (Projection("fc", 100, 50, False),))
    tg = lower(graph, Mapping((_analog("fc", [0]),)), TILE_HW)
    # 3 nodes, digital slots floor((2k+1) * 3 / 4) = 0, 2: core0 (0,0), tile0 (1,0), DRAM (2,0)
    # tile0 -> core0: one hop for the 50 partial sums, then the reduce
    assert _kinds(tg) == ["mvm", "transfer", "reduce"]
    assert tg.duration_cycles[0] == 134  # ceil(133.3 ns / 1 ns)
    assert tg.energy_pj[0, E["array"]] == pytest.approx(13000.0 * 100 * 50 / 65536 + 200.0)
    assert tg.energy_pj[0, E["dac"]] == pytest.approx(50.0)
    assert tg.energy_pj[0, E["adc"]] == pytest.approx(75.0)
    assert tg.duration_cycles[1] == math.ceil(50 / 32) + 1
    assert tg.energy_pj[1, E["noc"]] == pytest.approx(50 * 0.1)
    assert tg.duration_cycles[2] == 2  # 50 scale-and-accumulate ops on 32 lanes
    assert tg.resource_label[tg.resource[0]] == "tile0" and tg.resource_label[tg.resource[2]] == "core0"
    assert _schedule(tg).tolist() == [0, 134, 137]


def test_chain_of_dependent_digital_ops_on_one_core():
    ops = (Op(0, "ln", OpKind.LAYERNORM, elements=160, elements_out=160, layer=0),
           Op(1, "gelu", OpKind.GELU, (0,), elements=160, elements_out=160, layer=0),
           Op(2, "add", OpKind.ADD, (0, 1), elements=160, elements_out=160, layer=0))
    tg = lower(Graph("toy", "prefill", 1, 1, ops, ()), Mapping(()), HwConfig(digital=DigitalConfig(cores=1)))
    assert _kinds(tg) == ["special", "special", "elementwise"]  # same core: nothing to move
    assert tg.duration_cycles.tolist() == [10, 20, 5]  # 160/16, 160/8, 160/32
    # ln's output is already on the core: add waits for gelu, which read it
    assert [sorted(tg.preds(i).tolist()) for i in range(3)] == [[], [0], [1]]
    assert _schedule(tg).tolist() == [0, 10, 30]


def test_two_chunks_contend_for_one_tile_in_task_order():
    ops = (_linear(0, "fc", 64, 32, tokens=3, chunk=0), _linear(1, "fc", 64, 32, tokens=2, chunk=1))
    graph = Graph("toy", "prefill", 1, 5, ops, (Projection("fc", 64, 32, False),))
    tg = lower(graph, Mapping((_analog("fc", [0]),)), TILE_HW)
    mvms = np.flatnonzero(tg.task_kind == TASK_KINDS.index("mvm"))
    assert tg.duration_cycles[mvms].tolist() == [3 * 134, 2 * 134]
    starts = _schedule(tg)
    # both ready at 0; the tile serves the smaller task id first, the other waits for it
    assert starts[mvms].tolist() == [0, 3 * 134]


def test_streamed_weights_hold_the_dram_channel_and_the_noc_and_the_core_finishes_last():
    # 1 core + DRAM on a 2-wide mesh: core0 (0,0), DRAM (1,0); 2 MiB of weights do not fit 1 KiB
    hw = HwConfig(digital=DigitalConfig(cores=1, sram_kib=1), memory=MemoryConfig(dram_bandwidth_gb_s=64.0,
                                                                                 dram_latency_ns=100.0))
    graph = Graph("toy", "prefill", 1, 1, (_linear(0, "fc", 1024, 2048),), (Projection("fc", 1024, 2048, False),))
    tg = lower(graph, Mapping((Placement("fc", DIGITAL, cores=(0,)),)), hw)
    assert _kinds(tg) == ["digital_linear", "delay", "dram", "transfer"]
    # compute 2 M MACs / 256 = 8192; DRAM 2 MiB at 64 B/cycle; the hop 2 MiB / 32 B per cycle + 1
    assert tg.duration_cycles.tolist() == [8192, 100, 32768, 65537]
    assert tg.resource_label[tg.resource[2]] == "dram" and tg.resource_label[tg.resource[3]] == "link(1,0)->(0,0)"
    assert tg.energy_pj[2, E["dram"]] == pytest.approx(2097152 * 20.0)
    assert tg.energy_pj[3, E["noc"]] == pytest.approx(2097152 * 0.1)
    assert tg.energy_pj[0, E["sram"]] == pytest.approx((1024 + 2048) * 0.5)  # input read, output written
    # the link starts 1 cycle after the channel (it is slower, so it finishes last); the core
    # overlaps it and finishes with it: lag 65537 - 8192 after the link's start
    assert _schedule(tg).tolist() == [101 + 65537 - 8192, 0, 100, 101]
    assert tg.memory.weight_resident_bytes == (0,) and tg.memory.weight_streamed_bytes == 2097152
    assert tg.memory.dram_bytes == 2097152 and tg.memory.noc_byte_hops == 2097152


@pytest.mark.parametrize("flow_control, expected", [
    # store-and-forward: a's second hop is ready at 21 but b's hop holds that link over [15, 26)
    ("store_and_forward", [0, 0, 10, 26, 37, 48, 15, 26]),
    # cut-through: a's hops start 1 cycle apart (10, 11, 12), c gets the tail at 12 + 11 = 23;
    # b's hop, ready at 15, finds the shared link held by a's message over [11, 22)
    ("cut_through", [0, 0, 10, 11, 12, 23, 22, 33]),
])
def test_three_hop_transfer_contends_for_a_link_with_another_transfer(flow_control, expected):
    # 4 cores + DRAM in one row: core c at (c, 0). Single-core digital Linears pin where data
    # is; with one token, weight streaming sets their cycles: in * out B / 64 B per cycle.
    hw = HwConfig(digital=DigitalConfig(cores=4), interconnect=InterconnectConfig(mesh_cols=5,
                                                                                 flow_control=flow_control))
    ops = (_linear(0, "a", 2, 320),  # core0, 10 cycles, 320 B out
           _linear(1, "b", 3, 320),  # core1, 15 cycles, 320 B out
           _linear(2, "c", 320, 1, deps=(0,)),  # core3: a's 320 B over 3 hops, then 5 cycles
           _linear(3, "d", 320, 1, deps=(1,)))  # core2: b's 320 B over link (1,0)->(2,0)
    projections = tuple(Projection(n, op.in_features, op.out_features, False) for n, op in zip("abcd", ops))
    mapping = Mapping(tuple(Placement(n, DIGITAL, cores=(core,)) for n, core in zip("abcd", (0, 1, 3, 2))))
    tg = lower(Graph("toy", "prefill", 1, 1, ops, projections), mapping, hw)
    assert _kinds(tg) == ["digital_linear", "digital_linear", "transfer", "transfer", "transfer", "digital_linear",
                          "transfer", "digital_linear"]
    hops = [tg.resource_label[tg.resource[i]] for i in (2, 3, 4, 6)]
    assert hops == ["link(0,0)->(1,0)", "link(1,0)->(2,0)", "link(2,0)->(3,0)", "link(1,0)->(2,0)"]
    assert tg.duration_cycles.tolist() == [10, 15, 11, 11, 11, 5, 11, 5]  # hop: 320 B / 32 B per cycle + 1
    assert _schedule(tg).tolist() == expected
    assert tg.energy_pj[:, E["noc"]].sum() == pytest.approx(4 * 320 * 0.1)


def test_digital_ops_run_on_the_reduction_core_of_their_latest_producer():
    # 4 cores + DRAM + 1 tile on a 6-wide row: digital slots floor((2k+1) * 6 / 10) = 0, 1, 3, 4, 5,
    # so core0 (0,0), core1 (1,0), tile0 (2,0), core2 (3,0), core3 (4,0), DRAM (5,0).
    # (No SRAM, so the KV cache is read from DRAM.)
    hw = HwConfig(analog=AnalogConfig(tiles=1), digital=DigitalConfig(cores=4, sram_kib=0),
                  interconnect=InterconnectConfig(mesh_cols=6))
    ops = (Op(0, "kv", OpKind.KV_READ, dram_elements=64, elements_out=64, layer=0),
           _linear(1, "fc", 64, 64),
           Op(2, "qk", OpKind.MATMUL, (1, 0), macs=64, elements_out=64, layer=0),  # kv is a DRAM op: follows fc
           Op(3, "gelu", OpKind.GELU, (2,), elements=64, elements_out=64, layer=0),
           Op(4, "ln", OpKind.LAYERNORM, (0,), elements=64, elements_out=64, layer=0))  # only DRAM input: core 0
    mapping = Mapping((_analog("fc", [0], core=2),))
    tg = lower(Graph("toy", "prefill", 1, 1, ops, (Projection("fc", 64, 64, False),)), mapping, hw)
    on_core = {tg.task_op[i]: tg.resource_label[tg.resource[i]] for i in range(tg.n_tasks)
               if TASK_KINDS[tg.task_kind[i]] in ("matmul", "special")}
    assert on_core == {2: "core2", 3: "core2", 4: "core0"}
    # transfers: kv (DRAM) -> qk on core2 (2 hops), fc's partial sums tile0 -> core2 (1 hop),
    # kv -> ln on core0 (5 hops); qk -> gelu stays on core2
    transfer_ops = tg.task_op[tg.task_kind == TASK_KINDS.index("transfer")].tolist()
    assert sorted(transfer_ops) == [1, 2, 2, 4, 4, 4, 4, 4]


def _two_round_graph(phase="prefill", steps=1):
    ops = []
    for step in range(steps):
        deps = (len(ops) - 1,) if ops else ()
        ops.append(_linear(len(ops), "p0", 64, 64, deps=deps, chunk=step))
        ops.append(_linear(len(ops), "p1", 64, 64, deps=(len(ops) - 1,), chunk=step))
    projections = (Projection("p0", 64, 64, False), Projection("p1", 64, 64, False))
    return Graph("toy", phase, 1, steps, tuple(ops), projections)


TWO_ROUNDS = Mapping((_analog("p0", [0], program_round=0), _analog("p1", [0], program_round=1)), program_rounds=2)


def test_a_programming_round_moves_its_weights_from_dram_before_it_programs():
    # core0 (0,0), tile0 (1,0), DRAM (2,0). p1's 64 x 64 block (4096 B) is read from DRAM once
    # p0's MVM has drained the tile, crosses link (2,0)->(1,0), then programs the tile.
    tg = lower(_two_round_graph(), TWO_ROUNDS, TILE_HW)
    kinds = _kinds(tg)
    assert kinds == ["mvm", "transfer", "reduce", "delay", "dram", "transfer", "program",
                     "transfer", "mvm", "transfer", "reduce"]
    assert tg.task_op[3:7].tolist() == [-1] * 4
    assert tg.resource_label[tg.resource[5]] == "link(2,0)->(1,0)" and tg.resource_label[tg.resource[6]] == "tile0"
    # 100 ns latency; 4096 B at 64 B/cycle; 4096 B / 32 B per cycle + 1; 2 us at 1 GHz
    assert tg.duration_cycles[3:7].tolist() == [100, 64, 129, 2000]
    assert tg.energy_pj[4, E["dram"]] == pytest.approx(4096 * 20.0)
    assert tg.energy_pj[5, E["noc"]] == pytest.approx(4096 * 0.1)
    assert tg.energy_pj[6, E["program"]] == pytest.approx(50_000.0)
    assert tg.preds(3).tolist() == [0]  # the read waits for round 0's MVM on the tile
    assert sorted(tg.preds(8).tolist()) == [6, 7]  # p1's MVM waits for the programming and its input
    starts = _schedule(tg)
    # MVM [0, 134); read [134, 234) + [234, 298); the link starts 1 cycle after the channel
    # (it is slower) and ends at 364; programming [364, 2364); then p1's MVM
    assert starts[3:9].tolist() == [134, 234, 235, 364, 139, 2364]
    assert tg.memory.program_bytes == 4096 and tg.memory.dram_bytes == 4096


def test_decode_reprograms_every_step():
    tg = lower(_two_round_graph("decode", steps=2), TWO_ROUNDS, TILE_HW)
    programs = np.flatnonzero(tg.task_kind == TASK_KINDS.index("program"))
    assert programs.shape[0] == 3  # step 0: round 1; step 1: round 0 again, then round 1
    assert tg.energy_pj[:, E["program"]].sum() == pytest.approx(3 * 50_000.0)
    starts = _schedule(tg)
    mvms = np.flatnonzero(tg.task_kind == TASK_KINDS.index("mvm"))
    assert np.all(np.diff(starts[np.sort(np.concatenate([mvms, programs]))]) > 0)  # strictly alternating


def test_rounds_against_the_model_order_are_rejected():
    backwards = Mapping((_analog("p0", [0], program_round=1), _analog("p1", [0], program_round=0)), program_rounds=2)
    with pytest.raises(UserError, match="p1.*program_round"):
        lower(_two_round_graph(), backwards, TILE_HW)


@pytest.mark.parametrize("placement, message", [
    (Placement("fc", ANALOG, cores=(0,), tiles=(0,), row_blocks=1, col_blocks=1), "row_blocks x col_blocks"),
    (Placement("fc", ANALOG, cores=(0,), tiles=(0,), row_blocks=2, col_blocks=1), "expected 2 tiles"),
    (Placement("fc", ANALOG, cores=(0,), tiles=(0, 5), row_blocks=2, col_blocks=1), "tile ids"),
    (Placement("fc", DIGITAL, cores=(3,)), "cores"),
])
def test_bad_placements_are_user_errors(placement, message):
    graph = Graph("toy", "prefill", 1, 1, (_linear(0, "fc", 300, 10),), (Projection("fc", 300, 10, False),))
    hw = HwConfig(analog=AnalogConfig(tiles=2, mvm_latency_ns=10.0), digital=DigitalConfig(cores=1))
    with pytest.raises(UserError, match=message):
        lower(graph, Mapping((placement,)), hw)
    with pytest.raises(UserError, match="no placement"):
        lower(graph, Mapping(()), hw)


def test_digital_linear_on_a_core_group_splits_output_columns():
    # 2 cores + DRAM in one row: core0 (0,0), core1 (1,0)
    hw = HwConfig(digital=DigitalConfig(cores=2), interconnect=InterconnectConfig(mesh_cols=3))
    ops = (Op(0, "ln", OpKind.LAYERNORM, elements=256, elements_out=256, layer=0),
           _linear(1, "fc", 64, 10, tokens=4, deps=(0,)),
           Op(2, "add", OpKind.ADD, (1,), elements=40, elements_out=40, layer=0))
    graph = Graph("toy", "prefill", 1, 4, ops, (Projection("fc", 64, 10, False),))
    tg = lower(graph, Mapping((Placement("fc", DIGITAL, cores=(0, 1)),)), hw)
    assert _kinds(tg) == ["special", "transfer", "digital_linear", "digital_linear", "transfer", "elementwise"]
    # 5 columns each: 4*64*5 MACs / 256 = 5 cycles = 320 weight bytes / 64 B per cycle from SRAM
    assert tg.duration_cycles.tolist() == [16, 9, 5, 5, 2, 2]
    # weights (320 B) from SRAM, input (4 x 64) read and output slice (4 x 5) written in SRAM
    assert tg.energy_pj[2, E["sram"]] == pytest.approx((320 + 4 * (64 + 5)) * 0.5)
    assert _schedule(tg).tolist() == [0, 16, 16, 25, 30, 32]


def test_replicas_split_tokens():
    hw = HwConfig(analog=AnalogConfig(tiles=2, mvm_latency_ns=134.0, cell_read_power_uw=1000e3 / 65536,
                                      dac=DacConfig(encoding="multi_level", phase_ns=1.0)),
                  digital=DigitalConfig(cores=1))
    graph = Graph("toy", "prefill", 1, 3, (_linear(0, "fc", 256, 256, tokens=3),), (Projection("fc", 256, 256, False),))
    placement = Placement("fc", ANALOG, cores=(0,), tiles=(0, 1), row_blocks=1, col_blocks=1, replicas=2)
    tg = lower(graph, Mapping((placement,)), hw)
    mvms = tg.task_kind == TASK_KINDS.index("mvm")
    assert tg.duration_cycles[mvms].tolist() == [2 * 134, 134]
    assert tg.resource[mvms].tolist() == [0, 1]
    assert tg.energy_pj[:, E["array"]].sum() == pytest.approx(3 * 1000.0)


# One row: tile0 (0,0), core0 (1,0), tile1 (2,0), DRAM (3,0), tile2 (4,0); digital slots
# floor((2k+1) * 5 / 4) = 1, 3.
ROW_HW = HwConfig(analog=AnalogConfig(tiles=3, rows=64, cols=64), digital=DigitalConfig(cores=1),
                  interconnect=InterconnectConfig(mesh_cols=5))


def test_inputs_multicast_as_one_tree_and_partial_sums_merge_on_shared_links():
    ops = (Op(0, "ln", OpKind.LAYERNORM, elements=64, elements_out=64, layer=0), _linear(1, "fc", 64, 192, deps=(0,)))
    graph = Graph("toy", "prefill", 1, 1, ops, (Projection("fc", 64, 192, False),))
    tg = lower(graph, Mapping((_analog("fc", [0, 1, 2], col_blocks=3),)), ROW_HW)
    transfers = np.flatnonzero(tg.task_kind == TASK_KINDS.index("transfer"))
    labels = [tg.resource_label[tg.resource[t]] for t in transfers]
    noc_bytes = np.rint(tg.energy_pj[transfers, E["noc"]] / 0.1).astype(int).tolist()
    # input tree from core0: west to tile0, east to tile1 and on to tile2; each link carries the 64 B once
    tree = dict(zip(labels[:4], noc_bytes[:4]))
    assert tree == {"link(1,0)->(0,0)": 64, "link(1,0)->(2,0)": 64, "link(2,0)->(3,0)": 64, "link(3,0)->(4,0)": 64}
    # partial sums (64 B per tile) to core0: tile1's and tile2's share link (2,0)->(1,0)
    gather = dict(zip(labels[4:], noc_bytes[4:]))
    assert gather == {"link(0,0)->(1,0)": 64, "link(4,0)->(3,0)": 64, "link(3,0)->(2,0)": 64, "link(2,0)->(1,0)": 128}
    shared = transfers[4 + labels[4:].index("link(2,0)->(1,0)")]
    assert tg.duration_cycles[shared] == math.ceil(128 / 32) + 1
    # tile1's MVM (finish), and the link from tile2 (cut-through: 1 cycle after its start)
    assert TASK_KINDS[tg.task_kind[tg.preds(shared)[0]]] == "mvm" and len(tg.preds(shared)) == 1
    feeder, lag = tg.lag_preds(shared)
    assert tg.resource_label[tg.resource[feeder[0]]] == "link(3,0)->(2,0)" and lag.tolist() == [1]
    _schedule(tg)


def test_one_token_chunks_reuse_a_fragment_but_wait_for_their_own_producers():
    # 2 cores + DRAM in one row; per chunk: Linear a on core0, then Linear b on core1 (one 32 B hop)
    hw = HwConfig(digital=DigitalConfig(cores=2), interconnect=InterconnectConfig(mesh_cols=3))
    ops = (_linear(0, "a", 20, 32, chunk=0), _linear(1, "a", 20, 32, chunk=1),
           _linear(2, "b", 32, 2, deps=(0,), chunk=0), _linear(3, "b", 32, 2, deps=(1,), chunk=1))
    mapping = Mapping((Placement("a", DIGITAL, cores=(0,)), Placement("b", DIGITAL, cores=(1,))))
    graph = Graph("toy", "prefill", 1, 2, ops, (Projection("a", 20, 32, False), Projection("b", 32, 2, False)))
    tg = lower(graph, mapping, hw)
    assert _kinds(tg) == ["digital_linear", "digital_linear", "transfer", "digital_linear", "transfer",
                          "digital_linear"]
    assert tg.task_op.tolist() == [0, 1, 2, 2, 3, 3]
    assert tg.preds(2).tolist() == [0] and tg.preds(4).tolist() == [1]  # each chunk's hop waits for its own a
    assert tg.preds(3).tolist() == [2] and tg.preds(5).tolist() == [4]
    # a streams 640 B of weights at 64 B/cycle: 10 cycles, one after the other on core0;
    # hop 32/32 + 1 = 2; b streams 64 B: 1 cycle on core1
    assert _schedule(tg).tolist() == [0, 10, 10, 12, 20, 22]


def test_data_already_delivered_to_a_node_is_not_sent_again():
    # core0 (0,0), core1 (1,0): adds b and c follow their latest producer p to core1 and both
    # read a from core0; only b's fragment moves it, and c, using it after b, waits for b
    hw = HwConfig(digital=DigitalConfig(cores=2), interconnect=InterconnectConfig(mesh_cols=3))
    ops = (_linear(0, "a", 1, 64), _linear(1, "p", 1, 32),  # 1 cycle each (64 and 32 B of weights)
           Op(2, "b", OpKind.ADD, (0, 1), elements=32, layer=0),
           Op(3, "c", OpKind.ADD, (0, 1), elements=32, layer=0))
    mapping = Mapping((Placement("a", DIGITAL, cores=(0,)), Placement("p", DIGITAL, cores=(1,))))
    graph = Graph("toy", "prefill", 1, 1, ops, (Projection("a", 1, 64, False), Projection("p", 1, 32, False)))
    tg = lower(graph, mapping, hw)
    assert _kinds(tg) == ["digital_linear", "digital_linear", "transfer", "elementwise", "elementwise"]
    assert tg.preds(4).tolist() == [3]  # a and p are both resident: c waits for b, which read them
    assert _schedule(tg).tolist() == [0, 0, 1, 4, 5]  # hop 64/32 + 1 = 3 cycles; b and c 1 cycle each


def test_chunks_reading_resident_keys_chain_in_order():
    # attention-like: chunk c's matmul reads the keys k0..kc of every chunk so far. Linears k
    # and q reduce on core0, so every matmul runs there and every k is resident after its first
    # reader: matmul c waits for matmul c-1 and its own chunk's k and q, one edge per earlier
    # chunk no longer (3 chunks: 2 + 3 + 3 edges into the matmuls, not 2 + 3 + 4).
    hw = HwConfig(digital=DigitalConfig(cores=1), interconnect=InterconnectConfig(mesh_cols=3))
    ops, matmuls = [], []
    for c in range(3):
        k, q = len(ops), len(ops) + 1
        ops += [_linear(k, "k", 1, 32, chunk=c), _linear(q, "q", 1, 32, chunk=c)]
        keys = tuple(op.id for op in ops if op.projection == "k")
        matmuls.append(len(ops))
        ops.append(Op(len(ops), f"qk#{c}", OpKind.MATMUL, (*keys, q), tokens=1, macs=32 * (c + 1),
                      elements_in=32 * (c + 2), elements_out=c + 1, layer=0, chunk=c))
    mapping = Mapping((Placement("k", DIGITAL, cores=(0,)), Placement("q", DIGITAL, cores=(0,))))
    graph = Graph("toy", "prefill", 1, 3, tuple(ops), (Projection("k", 1, 32, False), Projection("q", 1, 32, False)))
    tg = lower(graph, mapping, hw)
    assert tg.task_op.tolist() == list(range(9))  # one task per op: everything on core0
    assert [sorted(tg.preds(m).tolist()) for m in matmuls] == [[0, 1], [2, 3, 4], [5, 6, 7]]
    assert tg.pred_idx.shape[0] == 2 + 3 + 3


def test_a_dram_op_receives_a_core_output_even_when_a_linear_consumes_the_next_op():
    # core0 (0,0), DRAM (1,0). c (a Linear, node chosen by its placement) consumes b = a + 1:
    # that must not count as a's output having reached the DRAM node, so kv gets its one hop.
    # (No SRAM: the KV entry spills to DRAM.)
    hw = HwConfig(digital=DigitalConfig(cores=1, sram_kib=0))
    ops = (_linear(0, "a", 1, 64), Op(1, "b", OpKind.ADD, (0,), elements=64, elements_out=64, layer=0),
           _linear(2, "c", 64, 1, deps=(1,)), Op(3, "kv", OpKind.KV_WRITE, (0,), dram_elements=64, layer=0))
    mapping = Mapping((Placement("a", DIGITAL, cores=(0,)), Placement("c", DIGITAL, cores=(0,))))
    graph = Graph("toy", "prefill", 1, 1, ops, (Projection("a", 1, 64, False), Projection("c", 64, 1, False)))
    tg = lower(graph, mapping, hw)
    kv_tasks = np.flatnonzero(tg.task_op == 3)
    assert [TASK_KINDS[k] for k in tg.task_kind[kv_tasks]] == ["transfer", "delay", "dram"]
    assert tg.resource_label[tg.resource[kv_tasks[0]]] == "link(0,0)->(1,0)"
    assert tg.preds(kv_tasks[0]).tolist() == [0] and tg.preds(kv_tasks[1]).tolist() == [kv_tasks[0]]


def test_sram_overflows_across_two_projections_first_fit_in_graph_order():
    # 1 KiB of SRAM: a's 512 B of weights fit, b's 1024 B do not fit what a left, so b
    # streams from DRAM on every use while a stays resident
    hw = HwConfig(digital=DigitalConfig(cores=1, sram_kib=1))
    ops = (_linear(0, "a", 16, 32), _linear(1, "b", 32, 32, deps=(0,)))
    graph = Graph("toy", "prefill", 1, 1, ops, (Projection("a", 16, 32, False), Projection("b", 32, 32, False)))
    tg = lower(graph, Mapping((Placement("a", DIGITAL, cores=(0,)), Placement("b", DIGITAL, cores=(0,)))), hw)
    assert [TASK_KINDS[k] for k in tg.task_kind[tg.task_op == 0]] == ["digital_linear"]
    assert [TASK_KINDS[k] for k in tg.task_kind[tg.task_op == 1]] == ["digital_linear", "delay", "dram", "transfer"]
    assert tg.memory.weight_resident_bytes == (512,) and tg.memory.sram_capacity_bytes == 1024
    assert tg.memory.weight_streamed_bytes == 1024 and tg.memory.dram_bytes == 1024
    b_core = np.flatnonzero((tg.task_op == 1) & (tg.task_kind == TASK_KINDS.index("digital_linear")))[0]
    assert tg.energy_pj[b_core, E["sram"]] == pytest.approx((32 + 32) * 0.5)  # activations only
    assert tg.energy_pj[:, E["dram"]].sum() == pytest.approx(1024 * 20.0)
    _schedule(tg)


def test_kv_cache_spills_to_dram_once_it_outgrows_the_sram():
    # 1 KiB of SRAM, no weights, one layer on core0. qk's working set (64 B in, 64 B out) is
    # reserved first: 896 B are left for the cache. The read (768 B) is resident; the write of
    # 512 more bytes fits only 128 B, the other 384 B spill to DRAM
    hw = HwConfig(digital=DigitalConfig(cores=1, sram_kib=1))
    ops = (Op(0, "kv_read", OpKind.KV_READ, dram_elements=768, elements_out=768, layer=0),
           Op(1, "qk", OpKind.MATMUL, (0,), macs=64, elements_in=64, elements_out=64, layer=0),
           Op(2, "kv_write", OpKind.KV_WRITE, (1,), dram_elements=512, elements_in=512, layer=0))
    tg = lower(Graph("toy", "decode", 1, 1, ops, ()), Mapping(()), hw)
    read, write = (tg.task_op == 0), (tg.task_op == 2)
    assert [TASK_KINDS[k] for k in tg.task_kind[read]] == ["sram"]
    assert tg.energy_pj[read, E["sram"]].sum() == pytest.approx(768 * 0.5) and tg.duration_cycles[read][0] == 12
    assert [TASK_KINDS[k] for k in tg.task_kind[write]] == ["transfer", "sram", "delay", "dram"]  # spill sent first
    assert tg.energy_pj[write, E["sram"]].sum() == pytest.approx(128 * 0.5)
    assert tg.energy_pj[write, E["dram"]].sum() == pytest.approx(384 * 20.0)
    assert tg.memory.activation_bytes == (128,) and tg.memory.kv_resident_bytes == (896,)
    assert tg.memory.resident_bytes == (1024,) and tg.memory.dram_bytes == 384
    _schedule(tg)


def test_partial_sums_of_each_column_block_reduce_on_the_core_nearest_it():
    # 5 nodes on one row: core0 (0,0), tile0 (1,0), core1 (2,0), tile1 (3,0), DRAM (4,0).
    # 64 x 128 on 64 x 64 tiles: column block 0 on tile0, 1 on tile1; one group per block
    from simulator.mapping.place import map_workload
    hw = HwConfig(analog=AnalogConfig(tiles=2, rows=64, cols=64), digital=DigitalConfig(cores=2),
                  interconnect=InterconnectConfig(mesh_cols=5))
    graph = Graph("toy", "prefill", 1, 1, (_linear(0, "fc", 64, 128),), (Projection("fc", 64, 128, False),))
    mapping = map_workload(graph, hw, {"fc": "analog"})
    assert mapping.placement("fc").cores == (0, 1)  # tile0 -> core0 (tie with core1: lowest id), tile1 -> core1
    tg = lower(graph, mapping, hw)
    assert _kinds(tg) == ["mvm", "mvm", "transfer", "reduce", "transfer", "reduce"]
    assert [tg.resource_label[tg.resource[i]] for i in range(2, 6)] == [
        "link(1,0)->(0,0)", "core0", "link(3,0)->(2,0)", "core1"]
    assert tg.duration_cycles[[3, 5]].tolist() == [2, 2]  # 64 outputs each on 32 lanes, not 128 on one core
    assert _schedule(tg).tolist() == [0, 0, 1, 4, 1, 4]
    one_core = lower(graph, map_workload(graph, HwConfig(analog=hw.analog.__class__(
        tiles=2, rows=64, cols=64, reduction_col_blocks=0), digital=hw.digital, interconnect=hw.interconnect),
        {"fc": "analog"}), hw)
    assert _kinds(one_core).count("reduce") == 1


def _sliced_graph():
    """fc (digital, 2 cores) -> GELU -> qk (4 heads) -> softmax -> LayerNorm, 2 tokens."""
    ops = (Op(0, "fc#0", OpKind.LINEAR, (), tokens=2, projection="fc", in_features=8, out_features=16, macs=256,
              elements_in=16, elements_out=32),
           Op(1, "gelu#0", OpKind.GELU, (0,), tokens=2, elements=32, elements_in=32, elements_out=32),
           Op(2, "qk#0", OpKind.MATMUL, (1,), tokens=2, heads=4, macs=64, elements_in=32, elements_out=16),
           Op(3, "softmax#0", OpKind.SOFTMAX, (2,), tokens=2, heads=4, elements=16, elements_in=16, elements_out=16),
           Op(4, "ln#0", OpKind.LAYERNORM, (3,), tokens=2, elements=16, elements_in=16, elements_out=16))
    return Graph("toy", "prefill", 1, 2, ops, (Projection("fc", 8, 16, False),)), \
        Mapping((Placement("fc", DIGITAL, cores=(0, 1)),))


def test_ops_split_over_the_cores_of_the_linear_they_follow():
    graph, mapping = _sliced_graph()
    # 2 cores + DRAM on a 2-wide mesh: core0 (0,0), core1 (1,0), DRAM (0,1)
    tg = lower(graph, mapping, HwConfig(analog=AnalogConfig(tiles=0), digital=DigitalConfig(cores=2)))
    labels = [tg.resource_label[r] for r in tg.resource]
    assert _kinds(tg) == ["digital_linear"] * 2 + ["special"] * 2 + ["transfer"] * 2 + ["matmul"] * 2 \
        + ["special"] * 2 + ["transfer"] * 2 + ["special"] * 2
    # fc: output columns 0..7 on core0, 8..15 on core1. GELU slices sit on those pieces: no transfer,
    # each waits only for its own piece; 16 elements at 8 per cycle
    assert labels[2:4] == ["core0", "core1"] and tg.duration_cycles[2:4].tolist() == [2, 2]
    assert [tg.preds(i).tolist() for i in (2, 3)] == [[0], [1]]
    # qk by heads (2 per core): each head slice needs 2/4 of every GELU piece: 8 of core1's 16 bytes
    # cross (1,0)->(0,0) to core0 and vice versa: ceil(8 / 32) + 1 cycles, 0.8 pJ
    assert tg.duration_cycles[4:6].tolist() == [2, 2] and tg.energy_pj[4:6, E["noc"]].tolist() == [0.8, 0.8]
    assert [tg.preds(i).tolist() for i in (6, 7)] == [[2, 5], [4, 3]]
    # softmax slices hold the same heads as qk's: in place, each after its own qk slice
    assert [tg.preds(i).tolist() for i in (8, 9)] == [[6], [7]]
    # LayerNorm by rows (1 per core) takes half of every head piece: 4 bytes cross each way
    assert tg.energy_pj[10:12, E["noc"]].tolist() == pytest.approx([0.4, 0.4])
    assert _schedule(tg).tolist() == [0, 0, 1, 1, 3, 3, 5, 5, 6, 6, 8, 8, 10, 10]


def test_split_ops_false_runs_each_op_on_the_first_reduction_core():
    graph, mapping = _sliced_graph()
    tg = lower(graph, mapping, HwConfig(analog=AnalogConfig(tiles=0), digital=DigitalConfig(cores=2, split_ops=False)))
    assert _kinds(tg) == ["digital_linear", "digital_linear", "transfer", "special", "matmul", "special", "special"]
    assert [tg.resource_label[r] for r in tg.resource][3:] == ["core0"] * 4


@pytest.mark.parametrize("attention_cores", ["reduction", "per_head"])
def test_decode_kv_cache_is_split_by_heads_over_the_attention_cores(attention_cores):
    """reduction: c_attn's 5 reduction cores hold 3/3/2/2/2 heads; per_head: those 5 and the
    7 cores nearest to them hold one head each, so a decode step reads the cache through 12
    SRAM ports."""
    from simulator.hw.loader import load_hw
    from simulator.mapping.place import map_workload
    from workloads.registry import build_graph
    hw = load_hw("analog_fabric", overrides={"digital.attention_cores": attention_cores})
    graph = build_graph("gpt2", "decode", seq=16, new_tokens=1)
    mapping = map_workload(graph, hw, "all-analog")
    tg = lower(graph, mapping, hw)
    read = next(op for op in graph.ops if op.kind == OpKind.KV_READ and op.layer == 0)
    sram_tasks = np.flatnonzero((tg.task_op == read.id) & (tg.task_kind == TASK_KINDS.index("sram")))
    reduction = tuple(dict.fromkeys(mapping.placement("transformer.h.0.attn.c_attn").cores))
    used = [int(tg.resource[t]) - tg.resource_label.index("core0") for t in sram_tasks]
    assert len(reduction) == 5 and used[:5] == list(reduction)
    assert len(used) == (5 if attention_cores == "reduction" else 12) and len(set(used)) == len(used)
    if attention_cores == "per_head":  # the extra cores are the nearest to the reduction cores' centroid
        from simulator.interconnect.mesh import build_topology
        topology = build_topology(hw)
        x, y = topology.node_xy([topology.core_node(c) for c in range(hw.digital.cores)])
        distance = np.abs(x - x[list(reduction)].mean()) + np.abs(y - y[list(reduction)].mean())
        others = [c for c in range(hw.digital.cores) if c not in reduction]
        assert max(distance[used[5:]]) <= min(distance[[c for c in others if c not in used]])
    # 12 heads over the cores as evenly as possible; bytes in proportion, all from SRAM
    heads = np.diff(np.linspace(0, 12, len(used) + 1).round()).astype(int)
    nbytes = read.dram_elements * hw.digital.activation_bytes
    expected = [-(-nbytes * h // 12) for h in sorted(heads, reverse=True)]
    got = (tg.energy_pj[sram_tasks, E["sram"]] / hw.digital.sram_energy_pj_per_byte).round().astype(int)
    assert got.tolist() == expected
    write = next(op for op in graph.ops if op.kind == OpKind.KV_WRITE and op.layer == 0)
    write_cores = {int(tg.resource[t]) for t in np.flatnonzero(tg.task_op == write.id) if tg.resource[t] >= 0
                   and tg.resource_kind[tg.resource[t]] == 1}
    assert write_cores and write_cores <= set(tg.resource[sram_tasks].tolist())  # written where it is read


def test_a_spilled_kv_write_sends_each_piece_to_dram_once():
    """With SRAM too small for the cache, every head core's part spills: the K/V pieces go
    to the DRAM node once each (one route per piece), not once per core's part."""
    from simulator.hw.loader import load_hw
    from simulator.interconnect.mesh import build_topology
    from simulator.mapping.place import map_workload
    from workloads.registry import build_graph
    hw = load_hw("analog_fabric", {"digital.sram_kib": 1})
    graph = build_graph("gpt2", "prefill", seq=16)
    mapping = map_workload(graph, hw, "all-analog")
    tg = lower(graph, mapping, hw)
    write = next(op for op in graph.ops if op.kind == OpKind.KV_WRITE and op.layer == 0)
    tasks = np.flatnonzero(tg.task_op == write.id)
    kinds = [TASK_KINDS[k] for k in tg.task_kind[tasks]]
    assert kinds.count("dram") == 12  # every one of the 12 head cores' parts spilled
    topology = build_topology(hw)
    sources = [topology.core_node(c) for c in dict.fromkeys(mapping.placement("transformer.h.0.attn.c_attn").cores)]
    hops, _ = topology.routes(sources, [topology.dram_node] * len(sources))
    assert kinds.count("transfer") == int(hops.sum())
