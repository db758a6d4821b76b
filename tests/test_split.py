"""Projections split over programming rounds: packing, checks, YAML, and the lowering of
their parts against hand-computed task graphs."""
import numpy as np
import pytest

from simulator.engine import des, fast
from simulator.engine.lower import Lowerer, lower
from simulator.engine.taskgraph import ENERGY_COMPONENTS, TASK_KINDS
from simulator.errors import UserError
from simulator.hw.schema import AnalogConfig, DigitalConfig, HwConfig, InterconnectConfig
from simulator.ir.graph import Graph, Op, OpKind, Projection
from simulator.mapping.io import load_mapping, save_mapping
from simulator.mapping.mapping import ANALOG, Mapping, Placement
from simulator.mapping.place import check_mapping, map_workload

E = {name: i for i, name in enumerate(ENERGY_COMPONENTS)}

# One 256 x 256 tile, one core; 3 nodes on a 3-wide mesh: core0 (0,0), tile0 (1,0), DRAM (2,0).
ONE_TILE = HwConfig(analog=AnalogConfig(tiles=1, allow_time_multiplexing=True, program_time_per_tile_us=2.0,
                                        program_energy_per_tile_nj=50.0),
                    digital=DigitalConfig(cores=1), interconnect=InterconnectConfig(mesh_cols=3))


def _kinds(tg, tasks=None):
    kinds = [TASK_KINDS[k] for k in tg.task_kind]
    return kinds if tasks is None else [kinds[t] for t in tasks]


def _schedule(tg):
    reference, numba = des.simulate(tg), fast.simulate(tg)
    np.testing.assert_array_equal(reference.start_cycles, numba.start_cycles)
    return reference.start_cycles


def _graph(in_features, out_features, bias=True):
    """embedding (its output comes from the DRAM node) -> fc -> layernorm."""
    ops = (Op(0, "emb#0", OpKind.EMBEDDING, (), tokens=1, dram_elements=in_features, elements_out=in_features),
           Op(1, "fc#0", OpKind.LINEAR, (0,), tokens=1, projection="fc", in_features=in_features,
              out_features=out_features, has_bias=bias, macs=in_features * out_features,
              elements_in=in_features, elements_out=out_features),
           Op(2, "ln#0", OpKind.LAYERNORM, (1,), tokens=1, elements=out_features, elements_in=out_features,
              elements_out=out_features))
    return Graph("toy", "prefill", 1, 1, ops, (Projection("fc", in_features, out_features, bias),))


def _split(rows, cols, block_rounds):
    return Mapping((Placement("fc", ANALOG, cores=(0,) * cols, tiles=(0,) * (rows * cols), row_blocks=rows,
                              col_blocks=cols, program_round=0, block_rounds=block_rounds),),
                   program_rounds=max(block_rounds) + 1)


def test_packing_splits_by_rows_when_a_column_strip_exceeds_the_tiles():
    graph = _graph(512, 64)
    mapping = map_workload(graph, ONE_TILE, "all-analog")
    fc = mapping.placement("fc")
    assert (fc.row_blocks, fc.col_blocks, fc.block_rounds, fc.tiles) == (2, 1, (0, 1), (0, 0))
    assert mapping.program_rounds == 2 and mapping.analog_projections() == ("fc",)


def test_a_row_split_projection_adds_its_row_parts_on_a_core():
    # fc 512 -> 64 on one tile: row block 0 in round 0, row block 1 in round 1, then an ADD.
    tg = lower(_graph(512, 64), _split(2, 1, (0, 1)), ONE_TILE)
    assert _kinds(tg) == ["delay", "dram",  # embedding at the DRAM node
                          "transfer", "mvm", "transfer", "reduce",  # part 0: rows 0..255
                          "delay", "dram", "transfer", "program",  # reprogram tile0 for part 1
                          "transfer", "mvm", "transfer", "reduce",  # part 1: rows 256..511
                          "elementwise",  # the ADD of the two partial outputs
                          "special"]  # the layernorm
    # every task reports the op of the ORIGINAL graph: emb 0, fc 1, ln 2; programming -1
    assert tg.task_op.tolist() == [0, 0, 1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 2]
    # each part receives only its rows' 256 of the 512 input bytes (DRAM node -> tile0, one hop)
    assert tg.energy_pj[[2, 10], E["noc"]].tolist() == pytest.approx([256 * 0.1] * 2)
    assert tg.duration_cycles[[2, 10]].tolist() == [256 // 32 + 1] * 2
    # the program unit reads and sends part 1's 256 x 64 block: 16384 B
    assert tg.energy_pj[7, E["dram"]] == pytest.approx(16384 * 20.0)
    assert tg.memory.program_bytes == 16384
    assert tg.duration_cycles[9] == 2000 and tg.energy_pj[9, E["program"]] == pytest.approx(50_000.0)
    assert tg.preds(6).tolist() == [3]  # the DRAM read of part 1's weights waits for part 0's MVM
    assert sorted(tg.preds(11).tolist()) == [9, 10]  # part 1's MVM after the programming and its input
    # reduces: part 0 adds its bias (64 + 64 SIMD ops: 4 cycles), part 1 scales only (2 cycles);
    # the ADD: 64 additions on 32 lanes = 2 cycles, SIMD energy per element
    assert tg.duration_cycles[[5, 13, 14]].tolist() == [4, 2, 2]
    assert sorted(tg.preds(14).tolist()) == [5, 13] and tg.preds(15).tolist() == [14]
    assert tg.resource_label[tg.resource[14]] == "core0"
    starts = _schedule(tg)
    assert starts[9] >= starts[3] + tg.duration_cycles[3]  # programming after part 0's MVM


def test_a_column_split_projection_feeds_its_consumer_from_every_part():
    # fc 64 -> 512 on one tile: column block 0 in round 0, column block 1 in round 1; no ADD.
    tg = lower(_graph(64, 512), _split(1, 2, (0, 1)), ONE_TILE)
    assert _kinds(tg) == ["delay", "dram", "transfer", "mvm", "transfer", "reduce",
                          "delay", "dram", "transfer", "program",
                          "transfer", "mvm", "transfer", "reduce", "special"]
    # every part receives the whole 64-byte input (all rows); each sends 256 partial sums
    assert tg.energy_pj[[2, 10], E["noc"]].tolist() == pytest.approx([64 * 0.1] * 2)
    assert tg.energy_pj[[4, 12], E["noc"]].tolist() == pytest.approx([256 * 0.1] * 2)
    assert sorted(tg.preds(14).tolist()) == [5, 13]  # the layernorm waits for both parts
    assert tg.memory.program_bytes == 64 * 256
    assert set(tg.task_op.tolist()) == {-1, 0, 1, 2}
    _schedule(tg)


def test_lowering_a_split_mapping_reuses_the_lowerer_and_leaves_plain_mappings_alone():
    graph = _graph(512, 64)
    lowerer = Lowerer(graph, ONE_TILE)
    split = _split(2, 1, (0, 1))
    first, again = lowerer.lower(split), lowerer.lower(split)
    np.testing.assert_array_equal(first.duration_cycles, again.duration_cycles)
    np.testing.assert_array_equal(first.pred_idx, again.pred_idx)
    plain = Mapping((Placement("fc", "digital", cores=(0,)),))
    assert lowerer.lower(plain).n_tasks == lower(graph, plain, ONE_TILE).n_tasks


def test_decode_reprograms_both_parts_every_step():
    ops = []
    for step in range(2):
        ops.append(Op(len(ops), f"fc#{step}", OpKind.LINEAR, (len(ops) - 1,) if ops else (), tokens=1,
                      projection="fc", in_features=512, out_features=64, macs=512 * 64, elements_in=512,
                      elements_out=64, chunk=step))
    graph = Graph("toy", "decode", 1, 2, tuple(ops), (Projection("fc", 512, 64, False),))
    tg = lower(graph, _split(2, 1, (0, 1)), ONE_TILE)
    programs = np.flatnonzero(tg.task_kind == TASK_KINDS.index("program"))
    assert programs.shape[0] == 3  # step 0: part 1; step 1: part 0 again, then part 1
    assert tg.memory.program_bytes == 3 * 256 * 64
    _schedule(tg)


def _yaml_hw():
    return HwConfig(analog=AnalogConfig(tiles=1, allow_time_multiplexing=True), digital=DigitalConfig(cores=1),
                    source="hw.yaml")


def test_a_split_mapping_round_trips_through_yaml(tmp_path):
    graph = _graph(512, 512)
    mapping = map_workload(graph, _yaml_hw(), "all-analog")
    assert mapping.placement("fc").block_rounds == (0, 2, 1, 3)  # column block 0 by rows, then 1
    path = tmp_path / "m.yaml"
    save_mapping(mapping, path)
    assert "block_rounds: [0, 2, 1, 3]" in path.read_text()
    assert load_mapping(path, graph, _yaml_hw()) == mapping
    # a mapping without splits keeps its old file format
    plain = map_workload(graph, _yaml_hw(), "all-digital")
    save_mapping(plain, path)
    assert "block_rounds" not in path.read_text()


@pytest.mark.parametrize("rows, cols, block_rounds, program_round, message", [
    (2, 2, (0, 1, 2), 0, "block_rounds: expected 4 rounds"),
    (2, 2, (0, 1, 2, 4), 0, r"block_rounds: expected rounds in 0\.\.3, got 4"),
    (2, 2, (1, 1, 2, 3), 0, r"program_round: expected the first of block_rounds \(1\)"),
    (3, 1, (0, 1, 0), 0, r"column block 0: the row blocks of round 0 are not contiguous \(\[0, 2\]\)"),
    # round 0 holds column blocks 0..1 of row block 0, round 1 only column block 0 of row block 1
    (2, 2, (0, 0, 1, 2), 0, "share some columns but not all"),
])
def test_bad_split_mappings_are_one_line_user_errors(rows, cols, block_rounds, program_round, message):
    graph = _graph(256 * rows, 256 * cols)
    mapping = Mapping((Placement("fc", ANALOG, cores=(0,), tiles=(0,) * (rows * cols), row_blocks=rows,
                                 col_blocks=cols, program_round=program_round, block_rounds=block_rounds),),
                      program_rounds=4)
    with pytest.raises(UserError, match=message) as error:
        check_mapping(mapping, graph, _yaml_hw(), "m.yaml")
    assert "\n" not in str(error.value) and str(error.value).startswith("m.yaml: placements: fc: ")


def test_a_tile_twice_in_one_round_of_a_split_is_rejected():
    mapping = Mapping((Placement("fc", ANALOG, cores=(0,), tiles=(0, 0), row_blocks=2, col_blocks=1,
                                 block_rounds=(0, 0)),), program_rounds=1)
    with pytest.raises(UserError, match="tile 0 is already used in program round 0"):
        check_mapping(mapping, _graph(512, 64), _yaml_hw(), "m.yaml")


def test_the_lowering_rejects_a_bad_split_it_is_handed_directly():
    bad = _split(3, 1, (0, 1, 0))
    with pytest.raises(UserError, match="mapping: fc: block_rounds: column block 0"):
        lower(_graph(768, 64), bad, ONE_TILE)


def test_alpine_maps_all_of_gpt2_analog_and_programs_each_block_once():
    from simulator.hw.loader import load_hw
    from workloads.registry import build_graph
    alpine = load_hw("alpine")
    graph = build_graph("gpt2", "prefill", seq=4)
    mapping = map_workload(graph, alpine, "all-analog")
    assert len(mapping.analog_projections()) == len(graph.projections) == 49
    assert mapping.placement("transformer.h.0.mlp.c_proj").is_split  # 12 x 3 blocks: split by rows too
    tg = lower(graph, mapping, alpine)
    linear_ops = {op.id for op in graph.ops if op.kind == OpKind.LINEAR}
    mvm = tg.task_kind == TASK_KINDS.index("mvm")
    assert set(tg.task_op[mvm].tolist()) == linear_ops and tg.task_op.max() == len(graph.ops) - 1
    # one pass: every block not held from time 0 (round 0) is programmed once, with its active cells
    cells, programs = 0, 0
    for p in mapping.placements:
        projection = graph.projection(p.projection)
        for block, block_round in enumerate(p.tile_rounds()):
            if block_round:
                r, c = divmod(block, p.col_blocks)
                cells += (min(256, projection.in_features - 256 * r) * min(256, projection.out_features - 256 * c))
                programs += 1
    assert np.count_nonzero(tg.task_kind == TASK_KINDS.index("program")) == programs == 1887 - 6
    assert tg.memory.program_bytes == cells * alpine.digital.weight_bytes
    _schedule(tg)


def test_a_reused_lowerer_lowers_split_mappings_like_a_fresh_one():
    from simulator.hw.loader import load_hw
    from workloads.registry import build_graph
    alpine = load_hw("alpine")
    graph = build_graph("gpt2", "prefill", seq=4, chunk_tokens=2)
    names = [p.name for p in graph.projections]
    first = map_workload(graph, alpine, dict.fromkeys(names[:6], ANALOG))
    second = map_workload(graph, alpine, dict.fromkeys(names[2:9], ANALOG))
    assert first.has_split and second.has_split
    lowerer = Lowerer(graph, alpine)
    lowerer.lower(map_workload(graph, alpine, "all-digital"))
    lowerer.lower(first)  # fills the shared fragment caches with other placements
    reused, fresh = lowerer.lower(second), lower(graph, second, alpine)
    for field in ("resource", "duration_cycles", "energy_pj", "pred_ptr", "pred_idx", "task_op", "lag_ptr",
                  "lag_succ", "lag_cycles"):
        np.testing.assert_array_equal(getattr(reused, field), getattr(fresh, field))
