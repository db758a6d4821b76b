"""Placement: turn per-projection targets (analog | digital) into tiles, cores and rounds.

Policy, chosen to be predictable for architects reading a trace:
  * Analog projections get contiguous tile ids in model order; within a projection,
    block (r, c) sits on tiles[r * col_blocks + c] (see `simulator.mapping.mapping`).
  * Row-block partial sums are reduced on the core nearest (Manhattan distance on the
    mesh, see `simulator.interconnect.mesh`) to the centroid of the tiles that produce
    them, ties to the lowest core id, so partial sums travel few hops. With
    `analog.reduction_col_blocks` = k > 0, the column blocks are split into groups of k
    consecutive blocks, each reduced on the core nearest its own tiles (Placement.cores
    lists one core per group), so no core receives a large projection's whole partial
    sums; 0 reduces every block on one core. On a bus every core is equally near: the
    groups go round-robin over the cores (one group: core 0).
  * Digital projections run on the group of all cores (their MACs are split over it).
  * "all-analog" means analog *where it fits* (`fitting_analog_targets`): without
    time-multiplexing, projections are taken in model order while tiles remain (one that
    does not fit the remaining tiles runs digital, later smaller ones may still fit);
    with time-multiplexing and `analog.multiplexing: reprogram_per_pass` (default), every
    projection that fits one programming round is analog; with `resident_subset`, the
    projections are chosen as without time-multiplexing (no reprogramming at all).
    Explicit mappings are never changed: asking for more than fits is an error.
  * More blocks than tiles is an error unless `analog.allow_time_multiplexing`; then
    projections are packed in model order into programming rounds of at most
    `analog.tiles` blocks, tile ids restarting at 0 in every round. A projection is
    never split over rounds: one that alone needs more tiles than exist is an error.
"""
from __future__ import annotations

from collections.abc import Mapping as MappingABC
from pathlib import Path

import numpy as np

from simulator.errors import UserError
from simulator.hw.schema import HwConfig
from simulator.interconnect.mesh import Topology, build_topology
from simulator.ir.graph import Graph, Projection
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping, Placement
from simulator.mapping.resolve import block_grid, fits, fits_alone, tile_capacity, tiles_needed

TARGETS = (ANALOG, DIGITAL)
ALL_ANALOG = "all-analog"
ALL_DIGITAL = "all-digital"
NAMED_STRATEGIES = (ALL_ANALOG, ALL_DIGITAL)


def check_target(value, location: str) -> str:
    """A valid target string, or a UserError naming where the bad value was found."""
    if value not in TARGETS:
        raise UserError(f"{location}: expected {' or '.join(TARGETS)}, got {value!r}")
    return value


def hw_source(hw: HwConfig) -> str:
    return hw.source or f"hw config {hw.name!r}"


def _check_capacity(analog_projections: list[Projection], hw: HwConfig, source: str) -> None:
    """The capacity rule of mapping/resolve.py, with a message saying which part fails."""
    if fits(analog_projections, hw):
        return
    tiles = hw.analog.tiles
    if tiles == 0:
        raise UserError(f"{source}: {len(analog_projections)} projections are mapped analog (first "
                        f"{analog_projections[0].name}) but {hw_source(hw)} has analog.tiles=0; "
                        "map them digital or use a config with analog tiles")
    if tile_capacity(hw) is not None:
        needed = sum(tiles_needed(p, hw.analog) for p in analog_projections)
        raise UserError(f"{source}: the mapping needs {needed} tiles, {hw_source(hw)} has "
                        f"analog.tiles={tiles}; set analog.allow_time_multiplexing: true or map "
                        "fewer projections analog")
    for projection in analog_projections:
        if not fits_alone(projection, hw):
            blocks = tiles_needed(projection, hw.analog)
            raise UserError(f"{source}: {projection.name} alone needs {blocks} tiles of "
                            f"{hw.analog.rows}x{hw.analog.cols}, more than analog.tiles={tiles} of "
                            f"{hw_source(hw)}, so even time-multiplexing cannot hold it; map it "
                            "digital or use more or larger tiles")


def _pack_rounds(block_counts: list[int], tiles: int) -> list[tuple[int, int]]:
    """(program_round, first tile id) per projection, filling rounds in model order."""
    placed = []
    round_index, used = 0, 0
    for blocks in block_counts:
        if used + blocks > tiles:
            round_index, used = round_index + 1, 0
        placed.append((round_index, used))
        used += blocks
    return placed


def place_targets(graph: Graph, hw: HwConfig, targets: dict[str, str], *,
                  strategy: str = "explicit", source: str = "mapping",
                  replicate: bool = False) -> Mapping:
    """The Mapping for complete, valid `targets` (projection -> analog | digital)."""
    analog_projections = [p for p in graph.projections if targets[p.name] == ANALOG]
    _check_capacity(analog_projections, hw, source)
    grids = [block_grid(p, hw.analog) for p in analog_projections]
    block_counts = [rows * cols for rows, cols in grids]
    needed = sum(block_counts)
    replicas = hw.analog.tiles // needed if replicate and 0 < needed <= hw.analog.tiles else 1
    slots = _pack_rounds([blocks * replicas for blocks in block_counts], hw.analog.tiles)
    topology = build_topology(hw)
    analog_placements = {}
    for projection, (rows, cols), (round_index, first_tile) in zip(analog_projections, grids, slots):
        tiles = tuple(range(first_tile, first_tile + rows * cols * replicas))
        analog_placements[projection.name] = Placement(
            projection.name, ANALOG, cores=reduction_cores(topology, tiles, rows, cols, replicas,
                                                           hw.analog.reduction_col_blocks),
            tiles=tiles, row_blocks=rows,
            col_blocks=cols, replicas=replicas, program_round=round_index)
    all_cores = tuple(range(hw.digital.cores))
    placements = tuple(analog_placements.get(p.name, Placement(p.name, DIGITAL, cores=all_cores))
                       for p in graph.projections)
    rounds = slots[-1][0] + 1 if slots else 1
    return Mapping(placements, strategy=strategy, program_rounds=rounds)


def reduction_cores(topology: Topology, tiles: tuple[int, ...], row_blocks: int, col_blocks: int, replicas: int,
                    col_blocks_per_group: int) -> tuple[int, ...]:
    """One reduction core per group of `col_blocks_per_group` consecutive column blocks
    (0: one group), each the core nearest its group's tiles (all rows and replicas)."""
    n_groups = -(-col_blocks // (col_blocks_per_group or col_blocks))
    per_group = -(-col_blocks // n_groups)  # the lowering's grouping for len(cores) groups
    if topology.kind == "bus":  # every core is equally near: spread the groups round-robin
        return tuple(g % topology.n_cores for g in range(n_groups))
    grid = np.array(tiles, dtype=np.int64).reshape(replicas, row_blocks, col_blocks)
    return tuple(reduction_core(topology, tuple(grid[:, :, g * per_group:(g + 1) * per_group].ravel().tolist()))
                 for g in range(n_groups))


def reduction_core(topology: Topology, tiles: tuple[int, ...]) -> int:
    """The core nearest to the centroid of `tiles` (lowest id on ties)."""
    tile_x, tile_y = topology.node_xy([topology.tile_node(t) for t in tiles])
    core_x, core_y = topology.node_xy([topology.core_node(c) for c in range(topology.n_cores)])
    distance = np.abs(core_x - tile_x.mean()) + np.abs(core_y - tile_y.mean())
    return int(np.argmin(distance))  # argmin returns the first minimum


def check_mapping(mapping: Mapping, graph: Graph, hw: HwConfig, source: str) -> Mapping:
    """Check explicit placements against the graph and the hardware; return them in model order."""
    by_name = {}
    for placement in mapping.placements:
        if placement.projection in by_name:
            raise UserError(f"{source}: placements: {placement.projection} is placed twice")
        by_name[placement.projection] = placement
    names = [p.name for p in graph.projections]
    known = set(names)
    missing = [n for n in names if n not in by_name]
    extra = [n for n in by_name if n not in known]
    if missing or extra:
        raise UserError(f"{source}: placements do not match {graph.model}'s projections "
                        f"(missing {missing[:3]}, unknown {extra[:3]})")
    if mapping.program_rounds > 1 and not hw.analog.allow_time_multiplexing:
        raise UserError(f"{source}: program_rounds={mapping.program_rounds} needs "
                        f"analog.allow_time_multiplexing: true in {hw_source(hw)}")
    used_tiles: set[tuple[int, int]] = set()
    for projection in graph.projections:
        placement = by_name[projection.name]
        _check_placement(placement, projection, hw, mapping.program_rounds, used_tiles, source)
    return Mapping(tuple(by_name[n] for n in names), strategy=mapping.strategy,
                   program_rounds=mapping.program_rounds)


def _check_placement(placement: Placement, projection: Projection, hw: HwConfig, rounds: int,
                     used_tiles: set[tuple[int, int]], source: str) -> None:
    where = f"{source}: placements: {projection.name}"
    check_target(placement.target, f"{where}: target")
    if not placement.cores or any(not 0 <= c < hw.digital.cores for c in placement.cores):
        raise UserError(f"{where}: cores: expected ids in 0..{hw.digital.cores - 1}, "
                        f"got {list(placement.cores)}")
    if not placement.is_analog:
        return
    grid = block_grid(projection, hw.analog)
    if (placement.row_blocks, placement.col_blocks) != grid:
        raise UserError(f"{where}: row_blocks x col_blocks must be {grid[0]} x {grid[1]} for "
                        f"{projection.in_features}x{projection.out_features} on "
                        f"{hw.analog.rows}x{hw.analog.cols} tiles")
    if placement.replicas < 1 or len(placement.tiles) != grid[0] * grid[1] * placement.replicas:
        raise UserError(f"{where}: tiles: expected {grid[0] * grid[1]} x replicas "
                        f"({placement.replicas}) tile ids, got {len(placement.tiles)}")
    if not 0 <= placement.program_round < rounds:
        raise UserError(f"{where}: program_round: expected 0..{rounds - 1}, "
                        f"got {placement.program_round}")
    for tile in placement.tiles:
        if not 0 <= tile < hw.analog.tiles:
            raise UserError(f"{where}: tiles: id {tile} is outside 0..{hw.analog.tiles - 1}")
        if (placement.program_round, tile) in used_tiles:
            raise UserError(f"{where}: tiles: tile {tile} is already used in program round "
                            f"{placement.program_round}")
        used_tiles.add((placement.program_round, tile))


def fitting_analog_targets(graph: Graph, hw: HwConfig) -> dict[str, str]:
    """Every projection analog where the tiles can hold it, the rest digital."""
    reprogram = hw.analog.allow_time_multiplexing and hw.analog.multiplexing == "reprogram_per_pass"
    free = hw.analog.tiles
    targets = {}
    for projection in graph.projections:
        blocks = tiles_needed(projection, hw.analog)
        analog = fits_alone(projection, hw) if reprogram else blocks <= free
        if analog and not reprogram:
            free -= blocks
        targets[projection.name] = ANALOG if analog else DIGITAL
    return targets


def map_workload(graph: Graph, hw: HwConfig, strategy, *, replicate: bool = False) -> Mapping:
    """Map every projection of `graph` onto `hw`.

    `strategy`: "all-analog", "all-digital", a mapping YAML path (see
    `simulator.mapping.io`), or a dict projection name -> "analog" | "digital"
    (projections it leaves out run digital). `replicate`: copy analog projections
    onto spare tiles (not applied to files that list their placements).
    """
    names = [p.name for p in graph.projections]
    if isinstance(strategy, MappingABC):
        known = set(names)
        unknown = [key for key in strategy if key not in known]
        if unknown:
            raise UserError(f"mapping: unknown projection {unknown[0]!r} for {graph.model}")
        targets = {n: check_target(strategy.get(n, DIGITAL), f"mapping: {n}") for n in names}
        return place_targets(graph, hw, targets, strategy="explicit", replicate=replicate)
    if strategy == ALL_ANALOG:
        return place_targets(graph, hw, fitting_analog_targets(graph, hw), strategy=strategy,
                             source=f"mapping {strategy}", replicate=replicate)
    if strategy == ALL_DIGITAL:
        return place_targets(graph, hw, dict.fromkeys(names, DIGITAL), strategy=strategy,
                             source=f"mapping {strategy}", replicate=replicate)
    if isinstance(strategy, (str, Path)) and Path(strategy).is_file():
        # Imported here because io builds on this module (it calls place_targets).
        from simulator.mapping.io import load_mapping
        return load_mapping(strategy, graph, hw, replicate=replicate)
    raise UserError(f"--mapping: expected {', '.join(NAMED_STRATEGIES)} or an existing mapping "
                    f"YAML file, got {strategy!r}")
