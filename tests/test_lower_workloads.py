"""Lowering real workload graphs: structural invariants and Lowerer reuse == fresh lowering."""
import math

import numpy as np
import pytest

from simulator.engine import des, fast
from simulator.engine.lower import Lowerer, lower
from simulator.engine.taskgraph import ENERGY_COMPONENTS, TASK_KINDS
from simulator.hw.loader import load_hw
from simulator.ir.graph import OpKind
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping, Placement
from workloads.registry import build_graph

MVM = TASK_KINDS.index("mvm")


def _sequential_mapping(graph, hw, digital=(), replicas=1):
    """Blocks fill tiles in model order; a new program round starts when tiles run out
    (a projection that would straddle rounds starts the next round whole if it fits)."""
    analog, placements = hw.analog, []
    next_tile, program_round = 0, 0
    for i, projection in enumerate(graph.projections):
        core = i % hw.digital.cores
        if projection.name in digital:
            placements.append(Placement(projection.name, DIGITAL, cores=(core, (core + 1) % hw.digital.cores)))
            continue
        row_blocks = math.ceil(projection.in_features / analog.rows)
        col_blocks = math.ceil(projection.out_features / analog.cols)
        tiles = []
        for _ in range(row_blocks * col_blocks * replicas):
            if next_tile == analog.tiles:
                next_tile, program_round = 0, program_round + 1
            tiles.append(next_tile)
            next_tile += 1
        placements.append(Placement(projection.name, ANALOG, cores=(core,), tiles=tuple(tiles),
                                    row_blocks=row_blocks, col_blocks=col_blocks, replicas=replicas,
                                    program_round=program_round))
    return Mapping(tuple(placements), program_rounds=program_round + 1)


def _check_invariants(tg, graph, mapping, hw):
    n = tg.n_tasks
    assert tg.pred_ptr.shape == (n + 1,) and tg.pred_ptr[-1] == tg.pred_idx.shape[0]
    owner = np.repeat(np.arange(n), np.diff(tg.pred_ptr))
    assert np.all(tg.pred_idx < owner)
    assert np.all(tg.duration_cycles[tg.resource >= 0] >= 1)
    assert np.all(tg.duration_cycles >= 0) and np.all(tg.energy_pj >= 0)
    assert tg.energy_pj.shape == (n, len(ENERGY_COMPONENTS))
    assert tg.resource.max() < tg.n_resources and len(tg.resource_label) == tg.n_resources
    # every analog projection does tokens x row_blocks x col_blocks MVMs, in whole-MVM tasks
    mvm_cycles = math.ceil(round(132.94 * hw.system.clock_ghz, 6))
    expected = sum(op.tokens * mapping.placement(op.projection).row_blocks * mapping.placement(op.projection).col_blocks
                   for op in graph.ops if op.kind == OpKind.LINEAR and mapping.placement(op.projection).is_analog)
    assert tg.duration_cycles[tg.task_kind == MVM].sum() == expected * mvm_cycles
    assert set(tg.task_op[tg.task_op >= 0]) == {op.id for op in graph.ops}


@pytest.fixture(scope="module")
def hermes():
    return load_hw("hermes64")


@pytest.mark.parametrize("workload, phase, kw", [
    ("gpt2", "prefill", {"seq": 32}),
    ("gpt2", "prefill", {"seq": 64, "chunk_tokens": 16}),
    ("gpt2", "decode", {"seq": 16, "new_tokens": 2}),
    ("mobilebert", "encoder", {"seq": 32}),
])
def test_invariants_on_real_graphs(hermes, workload, phase, kw):
    graph = build_graph(workload, phase, **kw)
    mapping = _sequential_mapping(graph, hermes)
    _check_invariants(lower(graph, mapping, hermes), graph, mapping, hermes)


def test_lowerer_reuse_equals_fresh_lowering(hermes):
    graph = build_graph("gpt2", "prefill", seq=32)
    names = [p.name for p in graph.projections]
    rng = np.random.default_rng(7)
    mappings = [_sequential_mapping(graph, hermes),
                _sequential_mapping(graph, hermes, digital=set(rng.choice(names, 12, replace=False))),
                _sequential_mapping(graph, hermes, digital=set(names)),
                _sequential_mapping(graph, hermes, replicas=2)]
    lowerer = Lowerer(graph, hermes)
    reused = [lowerer.lower(m) for m in mappings + mappings[::-1]]
    for mapping, tg in zip(mappings + mappings[::-1], reused):
        fresh = lower(graph, mapping, hermes)
        for field in ("resource", "duration_cycles", "energy_pj", "pred_ptr", "pred_idx", "task_kind", "task_op",
                      "resource_kind", "static_power_mw"):
            np.testing.assert_array_equal(getattr(tg, field), getattr(fresh, field), err_msg=field)
        assert tg.resource_label == fresh.resource_label and tg.tokens == fresh.tokens
        _check_invariants(tg, graph, mapping, hermes)


def _expected_programmings(graph, mapping):
    """Replay decode steps and rounds in order; a tile is programmed when a round needs
    it and it holds another round's weights (all tiles start with round 0)."""
    held, count = {}, 0
    steps = sorted({op.chunk for op in graph.ops})
    for step in steps:
        for program_round in range(mapping.program_rounds):
            for placement in mapping.placements:
                if placement.is_analog and placement.program_round == program_round:
                    for tile in placement.tiles:
                        count += held.get(tile, 0) != program_round
                        held[tile] = program_round
    return count


def test_decode_reprograms_per_token_and_engines_agree(hermes):
    graph = build_graph("gpt2", "decode", seq=8, new_tokens=2)
    mapping = _sequential_mapping(graph, hermes)
    tg = lower(graph, mapping, hermes)
    programs = tg.task_kind == TASK_KINDS.index("program")
    assert mapping.program_rounds == 30
    assert programs.sum() == _expected_programmings(graph, mapping)
    assert tg.energy_pj[:, ENERGY_COMPONENTS.index("program")].sum() == pytest.approx(
        programs.sum() * hermes.analog.program_energy_per_tile_nj * 1e3)  # hermes64: from program-and-verify
    reference, numba = des.simulate(tg), fast.simulate(tg)
    np.testing.assert_array_equal(reference.start_cycles, numba.start_cycles)
    # each tile's programmings are serial on it: the makespan covers the busiest tile's
    busiest = np.bincount(tg.resource[programs], weights=tg.duration_cycles[programs]).max()
    assert reference.makespan_cycles > busiest
