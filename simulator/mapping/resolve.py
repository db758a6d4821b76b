"""One capacity rule for every command: a mapping strategy becomes per-projection targets
through `map_workload`, the function `aimcsim run` times with.

`accuracy`, `profile`, `search` and `run` all call it, so `all-analog` names the same
projections everywhere: analog where the tiles hold them, digital elsewhere, nothing
analog on a chip with 0 tiles. Which projections fit depends only on their weight
shapes and the tiles, not on the sequence length, so a short prompt suffices.
"""
from __future__ import annotations

from simulator.hw.schema import HwConfig
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping
from simulator.mapping.place import map_workload

_SHAPE_TOKENS = 8  # graph size only; projection shapes do not depend on it


def resolve_mapping(workload: str, hw: HwConfig, strategy) -> Mapping:
    """The Mapping `aimcsim run --mapping strategy` would use for `workload` on `hw`."""
    from simulator.run import default_phase
    from workloads.registry import build_graph
    graph = build_graph(workload, default_phase(workload), seq=_SHAPE_TOKENS, new_tokens=1)
    return map_workload(graph, hw, strategy)


def resolve_targets(workload: str, hw: HwConfig, strategy) -> dict[str, str]:
    """projection name -> "analog" | "digital" for every timed projection of `workload`."""
    return resolve_mapping(workload, hw, strategy).targets()


def analog_names(targets: dict[str, str]) -> list[str]:
    return [name for name, target in targets.items() if target == ANALOG]


def digital_names(targets: dict[str, str]) -> list[str]:
    return [name for name, target in targets.items() if target == DIGITAL]
