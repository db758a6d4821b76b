"""A mapping: where each projection runs. Plain data that round-trips through YAML.

Analog placements split the weight (out x in) into blocks of at most rows x cols,
inputs on rows and outputs on columns: block (r, c) covers inputs
[r*rows, (r+1)*rows) and outputs [c*cols, (c+1)*cols) and sits on
`tiles[r * col_blocks + c]` (times `replicas`, replica k using the next
row_blocks*col_blocks entries). Row-block partial sums are reduced on `cores`: with G
cores, column block c belongs to group c // ceil(col_blocks / G), reduced on cores[g] (one core: all on cores[0]); ops that follow run on cores[0].
Digital placements run on the core group `cores`.

With time multiplexing a projection may be *split* over programming rounds:
`block_rounds` gives the round of every block (row-block major, like `tiles`; empty: all
blocks in `program_round`). The blocks of one round form parts: per column block a
contiguous run of row blocks, and adjacent column blocks with the same run make one
rectangular part (`Placement.parts`). Parts that share columns must cover the same
columns (their partial sums are added). `program_round` is then the first of the rounds.
"""
from __future__ import annotations

from dataclasses import dataclass

ANALOG = "analog"
DIGITAL = "digital"


@dataclass(frozen=True)
class Placement:
    projection: str
    target: str  # ANALOG | DIGITAL
    cores: tuple[int, ...] = (0,)  # digital: core group; analog: one reduction core per column-block group
    tiles: tuple[int, ...] = ()  # analog: tile id per block (row-block major), per replica
    row_blocks: int = 0
    col_blocks: int = 0
    replicas: int = 1
    program_round: int = 0  # time-multiplexing: which programming round holds these tiles
    block_rounds: tuple[int, ...] = ()  # split over rounds: round of each block (see module doc)

    @property
    def is_analog(self) -> bool:
        return self.target == ANALOG

    @property
    def is_split(self) -> bool:
        return len(set(self.block_rounds)) > 1

    def tile_rounds(self) -> tuple[int, ...]:
        """The programming round of each entry of `tiles`."""
        return self.block_rounds or (self.program_round,) * len(self.tiles)

    def parts(self) -> tuple[Part, ...]:
        """The rectangles of blocks that share a round, by (round, first column block);
        ValueError if `block_rounds` does not describe such parts."""
        return split_parts(self.row_blocks, self.col_blocks, self.tiles, self.tile_rounds())


@dataclass(frozen=True)
class Part:
    """Blocks [row_start, row_stop) x [col_start, col_stop) of a split projection, all in
    `program_round`, on `tiles` (row-block major within the part)."""

    program_round: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    tiles: tuple[int, ...]


def split_parts(row_blocks: int, col_blocks: int, tiles: tuple[int, ...],
                rounds: tuple[int, ...]) -> tuple[Part, ...]:
    """The parts of a row_blocks x col_blocks grid whose blocks sit in `rounds` (see the
    module doc); ValueError naming the first block that breaks the rules."""
    if len(rounds) != row_blocks * col_blocks or len(tiles) != len(rounds):
        raise ValueError(f"expected {row_blocks * col_blocks} rounds and tiles, one per block, "
                         f"got {len(rounds)} and {len(tiles)}")
    rows_in: dict[int, dict[int, list[int]]] = {}  # round -> column block -> its row blocks, ascending
    for index, block_round in enumerate(rounds):
        row, col = divmod(index, col_blocks)
        rows_in.setdefault(block_round, {}).setdefault(col, []).append(row)
    parts = []
    for round_index in sorted(rows_in):
        spans = {}  # column block -> (first, stop) row block in this round
        for col, rows in rows_in[round_index].items():
            if rows[-1] - rows[0] + 1 != len(rows):
                raise ValueError(f"column block {col}: the row blocks of round {round_index} are "
                                 f"not contiguous ({rows})")
            spans[col] = (rows[0], rows[-1] + 1)
        cols = sorted(spans)
        start = 0
        for k in range(1, len(cols) + 1):  # runs of adjacent column blocks with the same rows
            if k == len(cols) or cols[k] != cols[k - 1] + 1 or spans[cols[k]] != spans[cols[start]]:
                (r0, r1), c0, c1 = spans[cols[start]], cols[start], cols[k - 1] + 1
                part_tiles = tuple(tiles[r * col_blocks + c] for r in range(r0, r1) for c in range(c0, c1))
                parts.append(Part(round_index, r0, r1, c0, c1, part_tiles))
                start = k
    ranges = sorted({(p.col_start, p.col_stop, p.program_round) for p in parts})
    for (a0, a1, a_round), (b0, b1, b_round) in zip(ranges, ranges[1:]):
        if b0 < a1 and (a0, a1) != (b0, b1):
            raise ValueError(f"the part of round {a_round} (column blocks {a0}..{a1 - 1}) and the part "
                             f"of round {b_round} (column blocks {b0}..{b1 - 1}) share some columns but not all")
    return tuple(parts)


@dataclass(frozen=True)
class Mapping:
    placements: tuple[Placement, ...]  # model order, one per projection
    strategy: str = "explicit"  # all-analog | all-digital | explicit | search result name
    program_rounds: int = 1  # >1 only with time-multiplexing

    def target(self, projection: str) -> str:
        return self.placement(projection).target

    def placement(self, projection: str) -> Placement:
        for p in self.placements:
            if p.projection == projection:
                return p
        raise KeyError(projection)

    @property
    def has_split(self) -> bool:
        """Whether some projection is split over programming rounds (see `Placement.parts`)."""
        return any(p.is_split for p in self.placements)

    def analog_projections(self) -> tuple[str, ...]:
        return tuple(p.projection for p in self.placements if p.is_analog)

    def targets(self) -> dict[str, str]:
        """projection -> 'analog' | 'digital'; what the accuracy side needs."""
        return {p.projection: p.target for p in self.placements}
