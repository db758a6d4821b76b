"""MemoPlacer against place_targets, and the search's cost against aimcsim run's path."""
import numpy as np
import pytest

from simulator.analysis.evaluate_fast import MemoPlacer
from simulator.analysis.search import EngineCost
from simulator.errors import UserError
from simulator.hw.loader import load_hw
from simulator.mapping.mapping import ANALOG, DIGITAL
from simulator.mapping.place import place_targets
from simulator.run import simulate_workload
from workloads.registry import build_graph


def random_sets(graph, count, seed):
    rng = np.random.default_rng(seed)
    names = [p.name for p in graph.projections]
    return [frozenset(n for n in names if rng.random() < share) for share in rng.uniform(0, 1, count)]


@pytest.mark.parametrize("preset, least_valid", [("hermes64", 5), ("analog_fabric", 5), ("alpine", 1)])
def test_memo_placer_equals_place_targets(preset, least_valid):
    graph, hw = build_graph("gpt2", "prefill", seq=16), load_hw(preset)
    placer = MemoPlacer(graph, hw)
    checked = rejected = 0
    singles = [frozenset({p.name}) for p in graph.projections[::7]]
    for analog in random_sets(graph, 30, seed=1) + singles + [frozenset()]:
        targets = {p.name: ANALOG if p.name in analog else DIGITAL for p in graph.projections}
        try:
            expected = place_targets(graph, hw, targets)
        except UserError as exc:
            with pytest.raises(UserError, match=str(exc)[:40]):
                placer.mapping(analog)
            rejected += 1
            continue
        assert placer.mapping(analog) == expected
        assert placer.mapping(analog) == expected  # memoised placements: the same answer again
        checked += 1
    assert checked >= least_valid and checked + rejected == 38


@pytest.mark.parametrize("preset", ["hermes64", "analog_fabric"])
def test_engine_cost_equals_run_at_the_same_chunking(preset):
    """Same latency and energy as `aimcsim run --mapping` (simulate_workload, fast engine) at
    the search's chunking (one chunk), on random mappings."""
    graph, hw = build_graph("gpt2", "prefill", seq=32), load_hw(preset)
    cost = EngineCost(graph, hw)
    eligible = [p.name for p in graph.projections if cost.tiles(p.name) <= hw.analog.tiles]
    rng = np.random.default_rng(3)
    for _ in range(3):
        analog = frozenset(n for n in eligible if rng.random() < 0.5)
        if cost.tile_capacity() is not None and sum(cost.tiles(n) for n in analog) > cost.tile_capacity():
            continue
        figures = cost(analog)
        run = simulate_workload(hw, "gpt2", "prefill", {n: ANALOG for n in analog}, seq=32, chunk_tokens=None)
        assert figures.latency_ns == pytest.approx(run.report.latency_ns, rel=1e-12)
        assert figures.energy_pj == pytest.approx(run.report.energy_pj, rel=1e-9)


@pytest.mark.slow
def test_run_default_cost_equals_run_auto_chunking():
    """The re-costing of returned mappings gives what `aimcsim run --mapping` reports at its
    default `--chunk-tokens auto`, chunk size included."""
    from simulator.analysis.evaluate_fast import RunDefaultCost
    hw = load_hw("analog_fabric")
    recost = RunDefaultCost("gpt2", "prefill", hw, seq=32)
    graph = build_graph("gpt2", "prefill", seq=32)
    for analog in random_sets(graph, 2, seed=5):
        figures, chunk = recost(analog)
        run = simulate_workload(hw, "gpt2", "prefill", {n: ANALOG for n in analog}, seq=32, chunk_tokens="auto")
        assert figures.latency_ns == pytest.approx(run.report.latency_ns, rel=1e-12)
        assert figures.energy_pj == pytest.approx(run.report.energy_pj, rel=1e-9)
        assert chunk == run.report.workload["chunk_tokens"]
