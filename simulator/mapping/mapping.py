"""A mapping: where each projection runs. Plain data that round-trips through YAML.

Analog placements split the weight (out x in) into blocks of at most rows x cols,
inputs on rows and outputs on columns: block (r, c) covers inputs
[r*rows, (r+1)*rows) and outputs [c*cols, (c+1)*cols) and sits on
`tiles[r * col_blocks + c]` (times `replicas`, replica k using the next
row_blocks*col_blocks entries). Row-block partial sums are reduced on `cores`: with G
cores, column block c belongs to group c // ceil(col_blocks / G), reduced on cores[g] (one core: all on cores[0]); ops that follow run on cores[0].
Digital placements run on the core group `cores`.
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

    @property
    def is_analog(self) -> bool:
        return self.target == ANALOG


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

    def analog_projections(self) -> tuple[str, ...]:
        return tuple(p.projection for p in self.placements if p.is_analog)

    def targets(self) -> dict[str, str]:
        """projection -> 'analog' | 'digital'; what the accuracy side needs."""
        return {p.projection: p.target for p in self.placements}
