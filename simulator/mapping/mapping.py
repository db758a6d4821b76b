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
    grid = [rounds[r * col_blocks:(r + 1) * col_blocks] for r in range(row_blocks)]
    parts = []
    for round_index in sorted(set(rounds)):
        spans = []  # per column block: (first, stop) row block in this round, or None
        for c in range(col_blocks):
            rows = [r for r in range(row_blocks) if grid[r][c] == round_index]
            if rows and rows[-1] - rows[0] + 1 != len(rows):
                raise ValueError(f"column block {c}: the row blocks of round {round_index} are "
                                 f"not contiguous ({rows})")
            spans.append((rows[0], rows[-1] + 1) if rows else None)
        c = 0
        while c < col_blocks:
            stop = c + 1
            while stop < col_blocks and spans[stop] == spans[c]:
                stop += 1
            if spans[c] is not None:
                (r0, r1) = spans[c]
                part_tiles = tuple(tiles[r * col_blocks + k] for r in range(r0, r1) for k in range(c, stop))
                parts.append(Part(round_index, r0, r1, c, stop, part_tiles))
            c = stop
    for a in parts:
        for b in parts:
            overlap = a.col_start < b.col_stop and b.col_start < a.col_stop
            if overlap and (a.col_start, a.col_stop) != (b.col_start, b.col_stop):
                raise ValueError(f"the part of round {a.program_round} (column blocks {a.col_start}.."
                                 f"{a.col_stop - 1}) and the part of round {b.program_round} (column "
                                 f"blocks {b.col_start}..{b.col_stop - 1}) share some columns but not all")
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
