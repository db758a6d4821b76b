"""One capacity rule for every command: whether projections fit the analog tiles, and the
mapping a strategy becomes through `map_workload`, the function `aimcsim run` times with.

`run`, `accuracy`, `profile`, `adapt` and `search` all ask here, so `all-analog` names the
same projections everywhere (analog where the tiles hold them, digital elsewhere, nothing
analog on a chip with 0 tiles) and the search's MILP offers only mappings `run` accepts.
The rule: a projection of in x out weights takes ceil(in / rows) x ceil(out / cols) tiles;
without time-multiplexing the analog projections together must fit `analog.tiles`; with
it they are packed into programming rounds, a projection larger than a round's free tiles
split over several (docs/timing_model.md, "Time multiplexing"), so any fits. Which projections
fit depends only on their weight shapes and the tiles, not on the sequence length, so a
short prompt suffices to resolve a strategy.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from simulator.hw.schema import AnalogConfig, HwConfig
from simulator.ir.graph import Projection
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping

_SHAPE_TOKENS = 8  # graph size only; projection shapes do not depend on it


def block_grid(projection: Projection, analog: AnalogConfig) -> tuple[int, int]:
    """(row_blocks, col_blocks): inputs on rows, outputs on columns."""
    return (math.ceil(projection.in_features / analog.rows),
            math.ceil(projection.out_features / analog.cols))


def tiles_needed(projection: Projection, analog: AnalogConfig) -> int:
    rows, cols = block_grid(projection, analog)
    return rows * cols


def tile_capacity(hw: HwConfig) -> int | None:
    """Tiles the analog projections share at once; None with time-multiplexing, where they
    are packed into (and if need be split over) programming rounds."""
    return None if hw.analog.allow_time_multiplexing else hw.analog.tiles


def fits_alone(projection: Projection, hw: HwConfig) -> bool:
    """Whether the tiles can hold this projection at all: with time-multiplexing any can
    (split over rounds), without it only one that fits every tile at once."""
    if hw.analog.tiles <= 0:
        return False
    return hw.analog.allow_time_multiplexing or tiles_needed(projection, hw.analog) <= hw.analog.tiles


def fits(projections: Iterable[Projection], hw: HwConfig) -> bool:
    """Whether these projections, all analog, are a mapping `aimcsim run` accepts."""
    projections = list(projections)
    if not all(fits_alone(p, hw) for p in projections):
        return False
    capacity = tile_capacity(hw)
    return capacity is None or sum(tiles_needed(p, hw.analog) for p in projections) <= capacity


def resolve_mapping(workload: str, hw: HwConfig, strategy) -> Mapping:
    """The Mapping `aimcsim run --mapping strategy` would use for `workload` on `hw`."""
    from simulator.mapping.place import map_workload  # place builds on the rule above
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
