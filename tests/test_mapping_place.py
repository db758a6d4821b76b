"""Placement: tile blocks, contiguous tiles, reduction cores, capacity errors, programming rounds."""
import pytest

from simulator.errors import UserError
from simulator.hw.schema import AnalogConfig, DigitalConfig, HwConfig
from simulator.mapping.mapping import ANALOG, DIGITAL
from simulator.interconnect.mesh import build_topology
from simulator.mapping.place import map_workload, reduction_cores
from workloads.configs import NAMED_CONFIGS
from workloads.gpt2.graph import build_gpt2_graph

GRAPH = build_gpt2_graph(NAMED_CONFIGS["gpt2"], "prefill", seq=4)
# Per block on 256 x 256 tiles: c_attn 3x9, c_proj 3x3, c_fc 3x12, mlp.c_proj 12x3.
TILES_PER_BLOCK = 27 + 9 + 36 + 36
LM_HEAD_TILES = 3 * 197
ALL_ANALOG_TILES = 12 * TILES_PER_BLOCK + LM_HEAD_TILES  # 1887


def hw(tiles, *, cores=4, multiplex=False, reduction_col_blocks=1):
    return HwConfig(name="test", source="hwconfigs/test.yaml", digital=DigitalConfig(cores=cores),
                    analog=AnalogConfig(tiles=tiles, rows=256, cols=256,
                                        allow_time_multiplexing=multiplex,
                                        reduction_col_blocks=reduction_col_blocks))


def test_all_analog_splits_into_blocks_on_contiguous_tiles():
    mapping = map_workload(GRAPH, hw(ALL_ANALOG_TILES), "all-analog")
    c_fc = mapping.placement("transformer.h.0.mlp.c_fc")
    assert (c_fc.row_blocks, c_fc.col_blocks) == (3, 12)
    assert c_fc.tiles == tuple(range(27 + 9, 27 + 9 + 36))
    mlp_proj = mapping.placement("transformer.h.0.mlp.c_proj")
    assert (mlp_proj.row_blocks, mlp_proj.col_blocks) == (12, 3)
    lm_head = mapping.placement("lm_head")
    assert (lm_head.row_blocks, lm_head.col_blocks) == (3, 197)
    assert lm_head.tiles[-1] == ALL_ANALOG_TILES - 1
    all_tiles = [t for p in mapping.placements for t in p.tiles]
    assert all_tiles == list(range(ALL_ANALOG_TILES))
    assert mapping.strategy == "all-analog" and mapping.program_rounds == 1


def test_reduction_cores_balance_load_against_distance_and_digital_uses_all_cores():
    targets = {"transformer.h.0.attn.c_attn": ANALOG, "transformer.h.0.mlp.c_fc": ANALOG,
               "transformer.h.1.attn.c_attn": ANALOG, "transformer.h.2.mlp.c_fc": ANALOG}
    mapping = map_workload(GRAPH, hw(200, cores=3, reduction_col_blocks=0), targets)
    # 204 nodes on a 15-wide mesh (14 rows: diameter 27); digital slots floor((2k+1) * 204 / 8)
    # = 25, 76, 127, 178: core0 (10,1), core1 (1,5), core2 (7,8). Distances from the centroid:
    # h0.c_attn (tiles 0..26) 4.15, 9.96, 8.15; h0.c_fc (27..62) 4.83, 8.17, 5.67;
    # h1.c_attn (63..89) 6.11, 6.89, 3.89. Work per group: col blocks x (row blocks + 1):
    # c_attn 9 x 4 = 36, c_fc 12 x 4 = 48; distance weight simd_lanes / link bytes = 32/32.
    # h0.c_attn: 36 * (4.15, 9.96, 8.15) / 27 -> core 0 (load 36, 0, 0).
    # h0.c_fc: 36 + 48*4.83/27 = 44.6, 48*8.17/27 = 14.5, 48*5.67/27 = 10.1 -> core 2 (36, 0, 48).
    # h1.c_attn: 36 + 8.1, 0 + 9.2, 48 + 5.2 -> core 1.
    assert [mapping.placement(n).cores for n in targets][:3] == [(0,), (2,), (1,)]
    assert mapping.placement("transformer.h.1.attn.c_attn").tiles == tuple(range(63, 90))
    assert mapping.placement("lm_head").cores == (0, 1, 2)
    assert mapping.target("lm_head") == DIGITAL
    assert mapping.analog_projections() == tuple(targets)
    # without loads, each group goes to the core nearest its tiles
    topology = build_topology(hw(200, cores=3))
    assert reduction_cores(topology, tuple(range(63, 90)), 3, 9, 1, 0) == (2,)
    assert reduction_cores(topology, tuple(range(27)), 3, 9, 1, 0) == (0,)


def test_all_digital_needs_no_tiles():
    mapping = map_workload(GRAPH, hw(0), "all-digital")
    assert mapping.analog_projections() == () and mapping.program_rounds == 1
    assert all(p.tiles == () for p in mapping.placements)


def test_all_analog_maps_what_fits_and_leaves_the_rest_digital():
    mapping = map_workload(GRAPH, hw(ALL_ANALOG_TILES - 1), "all-analog")
    # lm_head (591 tiles) no longer fits behind the 12 blocks; everything else does.
    assert mapping.analog_projections() == tuple(p.name for p in GRAPH.projections[:-1])
    small = map_workload(GRAPH, hw(100), "all-analog")
    # Block 0 takes 108 tiles: c_attn (27) + c_proj (9) fit, c_fc (36) fits, c_proj (36) does not.
    assert small.analog_projections()[:3] == tuple(p.name for p in GRAPH.projections[:3])
    assert sum(len(p.tiles) for p in small.placements) <= 100
    assert map_workload(GRAPH, hw(0), "all-analog").analog_projections() == ()


def test_too_few_tiles_is_a_user_error_with_the_fix():
    everything = dict.fromkeys((p.name for p in GRAPH.projections), ANALOG)
    with pytest.raises(UserError, match=r"needs 1887 tiles, hwconfigs/test.yaml has analog.tiles=1886; "
                                        r"set analog.allow_time_multiplexing: true"):
        map_workload(GRAPH, hw(ALL_ANALOG_TILES - 1), everything)
    with pytest.raises(UserError, match="analog.tiles=0"):
        map_workload(GRAPH, hw(0), {"lm_head": ANALOG})


def test_time_multiplexing_packs_projections_into_rounds_in_model_order():
    mapping = map_workload(GRAPH, hw(600, multiplex=True), "all-analog")
    # Round 0: blocks 0-4 (540 tiles) + h.5 c_attn and c_proj (36) = 576; c_fc (3x12 = 36)
    # exceeds the 24 free tiles: its first 8 column strips (3 row blocks each) fill round 0,
    # the other 4 start round 1.
    rounds = [p.program_round for p in mapping.placements]
    assert rounds[:23] == [0] * 23 and rounds[23] == 1
    c_fc = mapping.placement("transformer.h.5.mlp.c_fc")
    assert c_fc.block_rounds == ((0,) * 8 + (1,) * 4) * 3
    assert [(q.program_round, q.col_start, q.col_stop, q.tiles[:2]) for q in c_fc.parts()] == [
        (0, 0, 8, (576, 577)), (1, 8, 12, (0, 1))]
    assert mapping.placement("transformer.h.5.mlp.c_proj").tiles[0] == 12
    # 1887 blocks fill 3 rounds of 600 and 87 of a fourth; lm_head starts in round 2
    assert sorted(set(mapping.placement("lm_head").block_rounds)) == [2, 3] and mapping.program_rounds == 4
    for r in range(mapping.program_rounds):
        tiles = [t for p in mapping.placements for t, tr in zip(p.tiles, p.tile_rounds()) if tr == r]
        assert len(tiles) == len(set(tiles)) and max(tiles) < 600


def test_a_projection_larger_than_all_tiles_is_split_over_rounds():
    mapping = map_workload(GRAPH, hw(500, multiplex=True), {"lm_head": ANALOG})
    lm_head = mapping.placement("lm_head")
    # 3 x 197 blocks on 500 tiles: 166 column strips of 3 row blocks (498 tiles), then 31.
    assert [(q.program_round, q.col_start, q.col_stop, len(q.tiles)) for q in lm_head.parts()] == [
        (0, 0, 166, 498), (1, 166, 197, 93)]
    assert mapping.program_rounds == 2
    assert map_workload(GRAPH, hw(500, multiplex=True), "all-analog").target("lm_head") == "analog"


def test_bad_strategies_are_user_errors():
    with pytest.raises(UserError, match="unknown projection 'transformer.h.0.attn'"):
        map_workload(GRAPH, hw(100), {"transformer.h.0.attn": ANALOG})
    with pytest.raises(UserError, match="mapping: lm_head: expected analog or digital, got 'anlog'"):
        map_workload(GRAPH, hw(1000), {"lm_head": "anlog"})
    with pytest.raises(UserError, match="--mapping: expected all-analog, all-digital or an existing"):
        map_workload(GRAPH, hw(100), "half-analog")


def test_a_mapping_file_path_is_loaded(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("projections:\n  transformer.h.0.*: analog\n")
    mapping = map_workload(GRAPH, hw(200), str(path))
    assert mapping.analog_projections() == tuple(f"transformer.h.0.{s}" for s in (
        "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"))


def test_replicate_gives_every_analog_projection_the_same_spare_copies():
    targets = {"transformer.h.0.attn.c_proj": ANALOG, "transformer.h.0.mlp.c_fc": ANALOG}
    # 9 + 36 = 45 blocks on 100 tiles: 2 copies each, 90 tiles used.
    mapping = map_workload(GRAPH, hw(100), targets, replicate=True)
    c_proj, c_fc = (mapping.placement(n) for n in targets)
    assert (c_proj.replicas, c_fc.replicas) == (2, 2)
    assert c_proj.tiles == tuple(range(18)) and c_fc.tiles == tuple(range(18, 90))
    assert map_workload(GRAPH, hw(100), targets).placement("transformer.h.0.mlp.c_fc").replicas == 1


def test_resident_subset_multiplexing_maps_only_what_fits_at_once_and_never_reprograms():
    from simulator.hw.loader import load_hw
    from workloads.registry import build_graph
    graph = build_graph("gpt2", "decode", seq=8, new_tokens=2)
    per_pass = map_workload(graph, load_hw("hermes64"), "all-analog")
    subset = map_workload(graph, load_hw("hermes64", {"analog.multiplexing": "resident_subset"}), "all-analog")
    assert per_pass.program_rounds > 1 and subset.program_rounds == 1
    used = sum(len(p.tiles) for p in subset.placements if p.is_analog)
    assert 0 < used <= 64 and len(subset.analog_projections()) < len(per_pass.analog_projections())


def test_each_column_block_group_reduces_on_the_core_nearest_its_tiles():
    mapping = map_workload(GRAPH, hw(200, cores=3), {"transformer.h.0.mlp.c_fc": ANALOG})
    placement = mapping.placement("transformer.h.0.mlp.c_fc")  # 3 x 12 blocks on tiles 0..35
    assert len(placement.cores) == placement.col_blocks == 12
    grouped = map_workload(GRAPH, hw(200, cores=3, reduction_col_blocks=5), {"transformer.h.0.mlp.c_fc": ANALOG})
    assert len(grouped.placement("transformer.h.0.mlp.c_fc").cores) == 3  # ceil(12 / 5) groups


def exclusive_hw(tiles, cores, reduction_cores="exclusive"):
    return HwConfig(name="test", source="hwconfigs/test.yaml", digital=DigitalConfig(cores=cores),
                    analog=AnalogConfig(tiles=tiles, rows=256, cols=256, reduction_cores=reduction_cores))


def test_exclusive_reduction_cores_give_every_group_its_own_core():
    targets = {"transformer.h.0.attn.c_attn": ANALOG, "transformer.h.0.attn.c_proj": ANALOG,
               "transformer.h.0.mlp.c_fc": ANALOG}
    groups = 9 + 3 + 12  # one group per 256-column block
    nearest = map_workload(GRAPH, exclusive_hw(200, groups, "nearest"), targets)
    shared = [c for p in nearest.placements if p.is_analog for c in p.cores]
    assert len(set(shared)) < len(shared)  # the nearest core serves several groups
    mapping = map_workload(GRAPH, exclusive_hw(200, groups), targets)
    cores = [c for p in mapping.placements if p.is_analog for c in p.cores]
    assert sorted(cores) == list(range(groups))


def test_exclusive_reduction_cores_need_a_core_per_group():
    targets = {"transformer.h.0.mlp.c_fc": ANALOG}  # 12 groups
    with pytest.raises(UserError, match="exclusive needs one core per reduction group, 12 groups"):
        map_workload(GRAPH, exclusive_hw(200, 11), targets)
