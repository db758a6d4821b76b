"""One capacity rule: `run`'s placement, the search's MILP eligibility and capacity, and
`adapt`'s analog projections all agree with mapping/resolve.py on which mappings fit."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.analysis.search import EngineCost, Problem, fits_capacity, make_groups
from simulator.errors import UserError
from simulator.hw.loader import load_hw
from simulator.mapping.place import map_workload, place_targets
from simulator.mapping.resolve import analog_names, fits, fits_alone, resolve_targets
from workloads.registry import build_graph

CONFIGS = [  # (preset, overrides): capacity at once, with rounds, none, and tiles smaller than a projection
    ("tiny", {}),
    ("tiny", {"analog.tiles": 0}),
    ("tiny", {"analog.tiles": 5}),
    ("tiny", {"analog.tiles": 5, "analog.allow_time_multiplexing": True}),
    ("tiny", {"analog.tiles": 5, "analog.allow_time_multiplexing": True, "analog.multiplexing": "resident_subset"}),
    ("tiny", {"analog.tiles": 2, "analog.rows": 64, "analog.cols": 64, "analog.allow_time_multiplexing": True}),
    ("hermes64", {}),
]


def _placement_accepts(graph, hw, analog: set[str]) -> bool:
    try:
        place_targets(graph, hw, {p.name: "analog" if p.name in analog else "digital" for p in graph.projections})
    except UserError:
        return False
    return True


@pytest.mark.parametrize("preset, overrides", CONFIGS)
def test_search_placement_and_rule_agree_on_random_mappings(preset, overrides):
    hw = load_hw(preset, overrides)
    graph = build_graph("gpt2-pydoc", "prefill", seq=8)
    engine = EngineCost(graph, hw)
    eligible = [p for p in graph.projections if fits_alone(p, hw)]
    groups = make_groups([(p.name, 1, engine.tiles(p.name)) for p in eligible], {p.name: 0.0 for p in eligible},
                         "projection")
    problem = Problem(groups, "latency", 1.0, engine.tile_capacity())
    rng = np.random.default_rng(0)
    for _ in range(40):
        chosen = {p.name for p in graph.projections if rng.random() < rng.random()}
        projections = [p for p in graph.projections if p.name in chosen]
        rule = fits(projections, hw)
        assert rule == _placement_accepts(graph, hw, chosen), chosen
        if all(p in eligible for p in projections):  # the MILP only ever sees eligible projections
            assert fits_capacity(problem, chosen) == rule, chosen
        else:
            assert not rule  # what the search leaves out never fits


@pytest.mark.parametrize("preset, overrides", CONFIGS)
def test_all_analog_is_a_mapping_the_rule_accepts(preset, overrides):
    hw = load_hw(preset, overrides)
    graph = build_graph("gpt2-pydoc", "prefill", seq=8)
    analog = set(map_workload(graph, hw, "all-analog").analog_projections())
    assert fits([p for p in graph.projections if p.name in analog], hw)
    assert analog == set(analog_names(resolve_targets("gpt2-pydoc", hw, "all-analog")))
    if hw.analog.tiles == 0:
        assert not analog


def test_adapt_adapts_the_projections_run_maps_analog(monkeypatch, tmp_path):
    """`aimcsim adapt` asks the same rule: on 5 tiles held at once (no reprogramming) it trains
    beside what `run` maps analog."""
    from simulator.cli import main
    from simulator.commands import adapt

    hw = load_hw("tiny", {"analog.tiles": 5, "analog.multiplexing": "resident_subset"})
    expected = analog_names(resolve_targets("gpt2-pydoc", hw, "all-analog"))
    seen = {}

    def stop(_args, _loaded, names):
        seen["names"] = list(names)
        raise UserError("stopped before training")

    monkeypatch.setattr(adapt, "check_adapt_sizes", stop)
    code = main(["adapt", "--hw", "tiny", "--set", "analog.tiles=5", "--set", "analog.multiplexing=resident_subset",
                 "--out", str(tmp_path / "a.safetensors")])
    assert code == 2
    assert seen["names"] == expected and 0 < len(expected) < 49
