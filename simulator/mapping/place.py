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
    projection is analog (split over rounds where it needs more tiles than are free); with
    `resident_subset`, the projections are chosen as without time-multiplexing (no
    reprogramming at all).
    Explicit mappings are never changed: asking for more than fits is an error.
  * More blocks than tiles is an error unless `analog.allow_time_multiplexing`; then
    projections are packed in model order into programming rounds of at most
    `analog.tiles` blocks, tile ids restarting at 0 in every round (`_pack_blocks`). A
    projection that fits the free tiles of the current round goes there whole; one that
    does not is split: whole column strips (all its row blocks) fill the current round's
    free tiles and continue in the next rounds; when even one column strip has more row
    blocks than there are tiles, each strip is split by rows too, and the row parts'
    partial sums are added on a core (see `simulator.engine.split`).
"""
from __future__ import annotations

from collections.abc import Mapping as MappingABC
from pathlib import Path

import numpy as np

from simulator.errors import UserError
from simulator.hw.schema import HwConfig
from simulator.interconnect.mesh import Topology, build_topology
from simulator.ir.graph import Graph, Projection
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping, Placement, split_parts
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


# Every crossbar block is at least one MVM task per chunk or token, and packing walks the
# blocks one by one: 2 M blocks is ~640 MB of tasks and seconds of packing (GPT-2 XL on
# 64x64 tiles has 0.4 M); beyond that a model has to be timed on larger tiles.
MAX_CROSSBAR_BLOCKS = 2_000_000


def _check_block_count(analog_projections: list[Projection], hw: HwConfig, source: str) -> None:
    blocks = sum(tiles_needed(p, hw.analog) for p in analog_projections)
    if blocks > MAX_CROSSBAR_BLOCKS:
        largest = max(analog_projections, key=lambda p: tiles_needed(p, hw.analog))
        raise UserError(f"{source}: the analog projections need {blocks:,} crossbar blocks of "
                        f"{hw.analog.rows}x{hw.analog.cols} (largest {largest.name}, "
                        f"{largest.in_features}x{largest.out_features}); at most "
                        f"{MAX_CROSSBAR_BLOCKS:,} are simulated: use larger analog.rows/analog.cols "
                        f"in {hw_source(hw)} or map fewer projections analog")


def _check_capacity(analog_projections: list[Projection], hw: HwConfig, source: str) -> None:
    """The capacity rule of mapping/resolve.py, with a message saying which part fails."""
    _check_block_count(analog_projections, hw, source)
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


def _pack_blocks(grids: list[tuple[int, int]], replicas: int,
                 tiles: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(tile per block, round per block), row-block major (per replica), for each
    projection's (row_blocks, col_blocks), filling rounds of `tiles` in model order: whole
    where the free tiles of the current round hold it, else split (module doc). Within
    each round a projection's parts take consecutive tile ids, row-block major."""
    placed = []
    round_index, used = 0, 0
    for rows, cols in grids:
        blocks = rows * cols * replicas
        if used + blocks <= tiles:
            placed.append((tuple(range(used, used + blocks)), (round_index,) * blocks))
            used += blocks
            continue
        block_round = [0] * blocks
        next_tile = {round_index: used}  # first free tile of each round this projection uses
        for col in range(cols):
            row = 0
            while row < rows:
                if used == tiles or (rows <= tiles and used + rows > tiles):  # next round
                    round_index, used = round_index + 1, 0
                    next_tile[round_index] = 0
                height = min(rows - row, tiles - used)
                for r in range(row, row + height):
                    block_round[r * cols + col] = round_index
                row, used = row + height, used + height
        tile_of = [0] * blocks
        for part in split_parts(rows, cols, tuple(range(blocks)), tuple(block_round)):
            for block in part.tiles:  # block indices, row-block major within the part
                tile_of[block] = next_tile[part.program_round]
                next_tile[part.program_round] += 1
        placed.append((tuple(tile_of), tuple(block_round)))
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
    slots = _pack_blocks(grids, replicas, hw.analog.tiles)
    topology = build_topology(hw)
    tile_sets = [tiles for tiles, _ in slots]
    if hw.analog.reduction_cores == "exclusive" and topology.kind == "mesh":
        cores = exclusive_reduction_cores(topology, tile_sets, grids, replicas, hw.analog.reduction_col_blocks,
                                          hw.source or hw.name)
    else:
        load = np.zeros(hw.digital.cores) if hw.analog.reduction_cores == "balanced" else None
        cores = [reduction_cores(topology, tiles, rows, cols, replicas, hw.analog.reduction_col_blocks, load,
                                 _distance_weight(hw))
                 for tiles, (rows, cols) in zip(tile_sets, grids)]
    analog_placements = {}
    for projection, (rows, cols), (tiles, rounds), group_cores in zip(analog_projections, grids, slots, cores):
        split = len(set(rounds)) > 1
        analog_placements[projection.name] = Placement(
            projection.name, ANALOG, cores=group_cores, tiles=tiles, row_blocks=rows, col_blocks=cols,
            replicas=replicas, program_round=rounds[0], block_rounds=rounds if split else ())
    all_cores = tuple(range(hw.digital.cores))
    placements = tuple(analog_placements.get(p.name, Placement(p.name, DIGITAL, cores=all_cores))
                       for p in graph.projections)
    rounds = max(max(block_rounds) for _, block_rounds in slots) + 1 if slots else 1
    return Mapping(placements, strategy=strategy, program_rounds=rounds)


def _group_tiles(tiles: tuple[int, ...], row_blocks: int, col_blocks: int, replicas: int,
                 col_blocks_per_group: int) -> list[tuple[int, ...]]:
    """The tiles (all rows and replicas) of each group of `col_blocks_per_group` consecutive
    column blocks (0: one group), in the lowering's grouping."""
    n_groups = -(-col_blocks // (col_blocks_per_group or col_blocks))
    per_group = -(-col_blocks // n_groups)  # the lowering's grouping for len(cores) groups
    grid = np.array(tiles, dtype=np.int64).reshape(replicas, row_blocks, col_blocks)
    return [tuple(grid[:, :, g * per_group:(g + 1) * per_group].ravel().tolist()) for g in range(n_groups)]


def reduction_cores(topology: Topology, tiles: tuple[int, ...], row_blocks: int, col_blocks: int, replicas: int,
                    col_blocks_per_group: int, load: np.ndarray | None = None,
                    distance_weight: float = 1.0) -> tuple[int, ...]:
    """One reduction core per group of `col_blocks_per_group` consecutive column blocks
    (0: one group). Without `load`: the core nearest its group's tiles. With `load` (work
    already given to each core, in column blocks x (row blocks + 1), updated here): the core
    that minimises that load plus the group's work times its distance in mesh diameters
    times `distance_weight`, so groups spread over the cores instead of piling onto the few
    that happen to sit near many tiles (the digital ops that follow a projection are split
    over its reduction cores, so this balances them too) while partial sums stay near."""
    groups = _group_tiles(tiles, row_blocks, col_blocks, replicas, col_blocks_per_group)
    per_group = -(-col_blocks // len(groups))
    cores = []
    for g, group_tiles in enumerate(groups):
        blocks = min(per_group, col_blocks - g * per_group)
        if load is None:
            cores.append(g % topology.n_cores if topology.kind == "bus" else reduction_core(topology, group_tiles))
            continue
        work = blocks * (row_blocks + 1)
        cost = load + work * distance_weight * _core_distance(topology, group_tiles)
        core = int(np.argmin(cost))  # argmin returns the first minimum
        load[core] += work
        cores.append(core)
    return tuple(cores)


def _distance_weight(hw: HwConfig) -> float:
    """How much a far reduction core costs against a busy one: a link moves partial sums
    simd_lanes / link_bytes_per_cycle times slower than a core reduces them."""
    return hw.digital.simd_lanes / (hw.interconnect.link_bytes_per_cycle * hw.digital.activation_bytes)


def _core_distance(topology: Topology, tiles: tuple[int, ...]) -> np.ndarray:
    """Manhattan distance of each core from the centroid of `tiles`, in mesh diameters (0 on a bus)."""
    distance = topology.core_distances([topology.tile_node(t) for t in tiles])
    return distance / max(1, topology.cols + topology.rows - 2)


def exclusive_reduction_cores(topology: Topology, tile_sets: list[tuple[int, ...]], grids: list[tuple[int, int]],
                              replicas: int, col_blocks_per_group: int, source: str) -> list[tuple[int, ...]]:
    """Per projection, its groups' reduction cores with no core shared by two groups (a fully
    unrolled fabric): the one-to-one assignment of groups to cores of least summed Manhattan
    distance from each group's tile centroid (scipy's linear_sum_assignment, deterministic)."""
    from scipy.optimize import linear_sum_assignment

    groups = [_group_tiles(tiles, rows, cols, replicas, col_blocks_per_group)
              for tiles, (rows, cols) in zip(tile_sets, grids)]
    flat = [group for projection_groups in groups for group in projection_groups]
    if len(flat) > topology.n_cores:
        raise UserError(f"{source}: analog.reduction_cores: exclusive needs one core per reduction group, "
                        f"{len(flat)} groups but digital.cores is {topology.n_cores}")
    core_x, core_y = topology.node_xy([topology.core_node(c) for c in range(topology.n_cores)])
    distance = np.empty((len(flat), topology.n_cores))
    for g, group in enumerate(flat):
        tile_x, tile_y = topology.node_xy([topology.tile_node(t) for t in group])
        distance[g] = np.abs(core_x - tile_x.mean()) + np.abs(core_y - tile_y.mean())
    _, chosen = linear_sum_assignment(distance)
    out, k = [], 0
    for projection_groups in groups:
        out.append(tuple(int(c) for c in chosen[k:k + len(projection_groups)]))
        k += len(projection_groups)
    return out


def reduction_core(topology: Topology, tiles: tuple[int, ...]) -> int:
    """The core nearest to the centroid of `tiles` (lowest id on ties)."""
    return int(np.argmin(_core_distance(topology, tiles)))


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
    if placement.block_rounds:
        _check_block_rounds(placement, rounds, where)
    for tile, tile_round in zip(placement.tiles, placement.tile_rounds()):
        if not 0 <= tile < hw.analog.tiles:
            raise UserError(f"{where}: tiles: id {tile} is outside 0..{hw.analog.tiles - 1}")
        if (tile_round, tile) in used_tiles:
            raise UserError(f"{where}: tiles: tile {tile} is already used in program round "
                            f"{tile_round}")
        used_tiles.add((tile_round, tile))


def _check_block_rounds(placement: Placement, rounds: int, where: str) -> None:
    """A split placement's rounds: one per block, in range, starting at program_round, in parts."""
    if placement.replicas != 1:
        raise UserError(f"{where}: block_rounds: a projection split over rounds has no replicas, "
                        f"got replicas={placement.replicas}")
    blocks = placement.row_blocks * placement.col_blocks
    if len(placement.block_rounds) != blocks:
        raise UserError(f"{where}: block_rounds: expected {blocks} rounds (one per block, row-block "
                        f"major) or none, got {len(placement.block_rounds)}")
    bad = [r for r in placement.block_rounds if not 0 <= r < rounds]
    if bad:
        raise UserError(f"{where}: block_rounds: expected rounds in 0..{rounds - 1}, got {bad[0]}")
    if min(placement.block_rounds) != placement.program_round:
        raise UserError(f"{where}: program_round: expected the first of block_rounds "
                        f"({min(placement.block_rounds)}), got {placement.program_round}")
    try:
        placement.parts()
    except ValueError as error:
        raise UserError(f"{where}: block_rounds: {error}") from None


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
