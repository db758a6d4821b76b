"""Projections split over programming rounds, lowered as one Linear op per part.

With time multiplexing a projection whose blocks exceed the free tiles of a round is
split into rectangular parts, each in one round (`Placement.parts`). The lowering sees
such a projection as its parts: `expand` rewrites (graph, mapping) so that every op of a
split projection becomes one Linear op per part (the part's input and output features;
the bias on the parts of the first row blocks), each with its own placement and program
round, so the lowering's epochs reprogram the tiles between parts. Where columns are
split by rows, an ADD op adds the row parts' partial outputs (tokens x columns x (parts
- 1) additions on the SIMD lanes); like any digital op it runs on the reduction core of
its latest producer, the last row part. Consumers of the op wait for the parts and ADDs
that produce its columns and receive each of their outputs. A row part receives only
its rows' share of its input (`row_inputs`): of a piece that holds columns, its overlap with
the part's rows; of any other piece, the rows' fraction of its bytes.

A part's reduction cores are the projection's cores of the column-block groups it
covers (`Placement.cores`, one per group of ceil(col_blocks / len(cores)) blocks).
`SplitLowering` lowers the expanded graph and maps its tasks back to the original ops,
so `TaskGraph.task_op` and every per-op report keep naming the graph the user ran.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from simulator.errors import UserError
from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph, Op, OpKind, Projection
from simulator.mapping.mapping import ANALOG, Mapping, Part, Placement
from simulator.mapping.place import block_grid

_CACHE_LIMIT = 16  # expanded graphs (and their Lowerers) kept, by split shape


@dataclass(frozen=True)
class Expansion:
    """An expanded graph and how it relates to the original one."""

    graph: Graph
    origin: np.ndarray  # int32: expanded op id -> original op id
    input_rows: dict[int, tuple[int, int, int]]  # row part op id -> (first, stop, features) of its input
    part_names: dict[str, tuple[str, ...]]  # split projection -> its parts' projection names


def part_name(projection: str, index: int) -> str:
    return f"{projection}/part{index}"


def split_parts(placement: Placement, projection: Projection, hw: HwConfig) -> tuple[Part, ...]:
    """The parts of a split placement, or a one-line UserError naming what is wrong."""
    where = f"mapping: {projection.name}"
    grid = block_grid(projection, hw.analog)
    if (placement.row_blocks, placement.col_blocks) != grid:
        raise UserError(f"{where}: row_blocks x col_blocks must be {grid[0]} x {grid[1]} for "
                        f"{projection.in_features}x{projection.out_features} on "
                        f"{hw.analog.rows}x{hw.analog.cols} tiles")
    if placement.replicas != 1:
        raise UserError(f"{where}: a projection split over rounds has no replicas, got {placement.replicas}")
    try:
        return placement.parts()
    except ValueError as error:
        raise UserError(f"{where}: block_rounds: {error}") from None


def _features(part: Part, projection: Projection, hw: HwConfig) -> tuple[int, int, int, int]:
    """(first input, stop input, first output, stop output) feature of a part."""
    rows, cols = hw.analog.rows, hw.analog.cols
    return (part.row_start * rows, min(part.row_stop * rows, projection.in_features),
            part.col_start * cols, min(part.col_stop * cols, projection.out_features))


def expand(graph: Graph, hw: HwConfig, parts: dict[str, tuple[Part, ...]]) -> Expansion:
    """`graph` with every op of the projections in `parts` replaced by its parts (module doc)."""
    ops: list[Op] = []
    origin: list[int] = []
    input_rows: dict[int, tuple[int, int, int]] = {}
    produces: list[tuple[int, ...]] = []  # original op id -> expanded ops that produce its output
    by_name = {p.name: p for p in graph.projections}

    def add(op: Op, source: int) -> int:
        ops.append(dataclasses.replace(op, id=len(ops)))
        origin.append(source)
        return len(ops) - 1

    for op in graph.ops:
        deps = tuple(sorted({d for dep in op.deps for d in produces[dep]}))
        if op.kind != OpKind.LINEAR or op.projection not in parts:
            produces.append((add(dataclasses.replace(op, deps=deps), op.id),))
            continue
        projection = by_name[op.projection]
        columns: dict[tuple[int, int], list[int]] = {}  # output feature range -> its row parts
        for index, part in enumerate(parts[op.projection]):
            first_in, stop_in, first_out, stop_out = _features(part, projection, hw)
            n_in, n_out = stop_in - first_in, stop_out - first_out
            part_id = add(dataclasses.replace(
                op, name=f"{op.name}/part{index}", deps=deps, projection=part_name(op.projection, index),
                in_features=n_in, out_features=n_out, has_bias=op.has_bias and part.row_start == 0,
                macs=op.tokens * n_in * n_out, elements_in=op.tokens * n_in, elements_out=op.tokens * n_out),
                op.id)
            if n_in < projection.in_features:
                input_rows[part_id] = (first_in, stop_in, projection.in_features)
            columns.setdefault((first_out, stop_out), []).append(part_id)
        producers = []
        for (first_out, stop_out), row_parts in sorted(columns.items()):
            if len(row_parts) == 1:
                producers.append(row_parts[0])
                continue
            width = op.tokens * (stop_out - first_out)
            producers.append(add(Op(
                id=0, name=f"{op.name}/rows{first_out}:{stop_out}", kind=OpKind.ADD, deps=tuple(row_parts),
                tokens=op.tokens, elements=width * (len(row_parts) - 1), elements_in=width * len(row_parts),
                elements_out=width, layer=op.layer, chunk=op.chunk), op.id))
        produces.append(tuple(producers))
    projections = []
    part_names = {}
    for projection in graph.projections:
        if projection.name not in parts:
            projections.append(projection)
            continue
        names = []
        for index, part in enumerate(parts[projection.name]):
            first_in, stop_in, first_out, stop_out = _features(part, projection, hw)
            names.append(part_name(projection.name, index))
            projections.append(Projection(names[-1], stop_in - first_in, stop_out - first_out,
                                          projection.has_bias and part.row_start == 0, projection.layer))
        part_names[projection.name] = tuple(names)
    expanded = dataclasses.replace(graph, ops=tuple(ops), projections=tuple(projections))
    return Expansion(expanded, np.array(origin, dtype=np.int32), input_rows, part_names)


def expand_mapping(mapping: Mapping, parts: dict[str, tuple[Part, ...]], expansion: Expansion) -> Mapping:
    """`mapping` with each split placement replaced by one plain placement per part."""
    placements = []
    for placement in mapping.placements:
        if placement.projection not in parts:
            placements.append(placement)
            continue
        per_group = -(-placement.col_blocks // len(placement.cores))
        for part, name in zip(parts[placement.projection], expansion.part_names[placement.projection]):
            groups = range(part.col_start // per_group, (part.col_stop - 1) // per_group + 1)
            placements.append(Placement(name, ANALOG, cores=tuple(placement.cores[g] for g in groups),
                                        tiles=part.tiles, row_blocks=part.row_stop - part.row_start,
                                        col_blocks=part.col_stop - part.col_start,
                                        program_round=part.program_round))
    return Mapping(tuple(placements), strategy=mapping.strategy, program_rounds=mapping.program_rounds)


def row_inputs(inputs: tuple, first: int, stop: int, features: int) -> tuple:
    """Each dependency's output pieces cut to the input features [first, stop) of `features`:
    what a row part of a split projection reads, as pieces of its own input."""
    return tuple(tuple(cut for cut in (_rows_of(p, first, stop, features) for p in pieces) if cut is not None)
                 for pieces in inputs)


def _rows_of(piece, first: int, stop: int, features: int):
    """A piece holding output columns keeps its overlap with [first, stop) (None if there is
    none), re-based to the part's input; heads count as whole columns; any other piece
    keeps the fraction (stop - first) / features of its bytes. Empty pieces still order."""
    from simulator.engine.lower import COLS, HEADS  # lower imports this module
    lo, hi, total = piece.lo, piece.hi, piece.total
    if piece.axis == HEADS and features % total == 0:
        lo, hi, total = lo * (features // total), hi * (features // total), features
    if piece.axis in (COLS, HEADS) and total == features:
        keep_lo, keep_hi = max(lo, first), min(hi, stop)
        if keep_hi <= keep_lo:
            return None
        nbytes = -(-piece.nbytes * (keep_hi - keep_lo) // (hi - lo))
        return piece._replace(nbytes=nbytes, axis=COLS, lo=keep_lo - first, hi=keep_hi - first, total=stop - first)
    nbytes = -(-piece.nbytes * (stop - first) // features)
    return piece._replace(nbytes=nbytes)


class SplitLowering:
    """Lowers mappings with split projections for one graph and config: the expanded graph
    and its Lowerer are built once per split shape (which projections, which parts)."""

    def __init__(self, graph: Graph, hw: HwConfig, make_lowerer):
        self.graph, self.hw = graph, hw
        self._make_lowerer = make_lowerer  # (graph, hw, input_rows) -> Lowerer
        self._by_shape: dict = {}
        self._projections = {p.name: p for p in graph.projections}

    def lower(self, mapping: Mapping):
        parts = {}
        for placement in mapping.placements:
            if placement.is_analog and placement.is_split:
                projection = self._projections.get(placement.projection)
                if projection is None:
                    raise UserError(f"mapping: unknown projection {placement.projection!r} for {self.graph.model}")
                parts[placement.projection] = split_parts(placement, projection, self.hw)
        shape = tuple((name, tuple((p.row_start, p.row_stop, p.col_start, p.col_stop) for p in split))
                      for name, split in parts.items())
        entry = self._by_shape.get(shape)
        if entry is None:
            if len(self._by_shape) >= _CACHE_LIMIT:
                self._by_shape.clear()
            expansion = expand(self.graph, self.hw, parts)
            entry = self._by_shape[shape] = (expansion, self._make_lowerer(expansion.graph, self.hw,
                                                                            expansion.input_rows))
        expansion, lowerer = entry
        tg = lowerer.lower(expand_mapping(mapping, parts, expansion))
        task_op = np.where(tg.task_op >= 0, expansion.origin[np.maximum(tg.task_op, 0)], -1).astype(np.int32)
        return dataclasses.replace(tg, task_op=task_op)
