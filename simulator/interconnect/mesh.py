"""Interconnect topology: where nodes sit, which links exist, and XY routes over them.

Nodes are numbered tiles first, then cores, then one DRAM controller:
tile t is node t, core c is node n_tiles + c, the DRAM controller is the last node.
Mesh: nodes fill a grid of `cols` columns row-major (node n at x = n % cols,
y = n // cols); every grid position is a router, so routes exist even around the
empty corner of a partial last row. Each pair of neighbouring routers has two
directed links. Routes are dimension-ordered (XY): all hops along x first, then
along y, which is deadlock free and the same for every packet of a flow.
Bus: a single shared link between all nodes; a transfer crosses it once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.errors import UserError
from simulator.hw.schema import HwConfig

TOPOLOGIES = ("mesh", "bus")


@dataclass(frozen=True)
class Topology:
    kind: str  # mesh | bus
    n_tiles: int
    n_cores: int
    cols: int  # mesh grid columns (1 for a bus)
    rows: int  # mesh grid rows (1 for a bus)

    @property
    def n_nodes(self) -> int:
        return self.n_tiles + self.n_cores + 1

    def tile_node(self, tile: int) -> int:
        return tile

    def core_node(self, core: int) -> int:
        return self.n_tiles + core

    @property
    def dram_node(self) -> int:
        return self.n_tiles + self.n_cores

    @property
    def _horizontal_links(self) -> int:
        """Directed links of one direction (east or west) in the grid."""
        return self.rows * (self.cols - 1)

    @property
    def _vertical_links(self) -> int:
        return self.cols * (self.rows - 1)

    @property
    def n_links(self) -> int:
        if self.kind == "bus":
            return 1
        return 2 * (self._horizontal_links + self._vertical_links)

    def link_labels(self) -> tuple[str, ...]:
        """One label per link id, e.g. `link(1,0)->(2,0)`; `bus` for the bus."""
        if self.kind == "bus":
            return ("bus",)
        labels = [""] * self.n_links
        h, v = self._horizontal_links, self._vertical_links
        for y in range(self.rows):
            for x in range(self.cols - 1):
                labels[y * (self.cols - 1) + x] = f"link({x},{y})->({x + 1},{y})"
                labels[h + y * (self.cols - 1) + x] = f"link({x + 1},{y})->({x},{y})"
        for x in range(self.cols):
            for y in range(self.rows - 1):
                labels[2 * h + x * (self.rows - 1) + y] = f"link({x},{y})->({x},{y + 1})"
                labels[2 * h + v + x * (self.rows - 1) + y] = f"link({x},{y + 1})->({x},{y})"
        return tuple(labels)

    def routes(self, src_nodes, dst_nodes) -> tuple[np.ndarray, np.ndarray]:
        """XY routes of many transfers at once.

        Returns (hop_counts[n], link_ids[sum(hop_counts)]): the links of transfer i are
        link_ids[start_i : start_i + hop_counts[i]] in travel order, start_i the running sum.
        Same-node transfers have zero hops.
        """
        src = np.asarray(src_nodes, dtype=np.int64)
        dst = np.asarray(dst_nodes, dtype=np.int64)
        if self.kind == "bus":
            hops = (src != dst).astype(np.int64)
            return hops, np.zeros(int(hops.sum()), dtype=np.int64)
        sx, sy = src % self.cols, src // self.cols
        dx, dy = dst % self.cols, dst // self.cols
        nx, ny = np.abs(dx - sx), np.abs(dy - sy)
        hops = nx + ny
        transfer = np.repeat(np.arange(src.shape[0]), hops)
        step = np.arange(transfer.shape[0]) - np.repeat(np.cumsum(hops) - hops, hops)
        h, v = self._horizontal_links, self._vertical_links
        # x leg: position before the hop, then the east or west link leaving it
        east = dx[transfer] > sx[transfer]
        x_pos = sx[transfer] + np.where(east, step, -step)
        x_row = sy[transfer] * (self.cols - 1)
        x_link = np.where(east, x_row + x_pos, h + x_row + x_pos - 1)
        # y leg, in column dx
        y_step = step - nx[transfer]
        south = dy[transfer] > sy[transfer]
        y_pos = sy[transfer] + np.where(south, y_step, -y_step)
        y_col = dx[transfer] * (self.rows - 1)
        y_link = np.where(south, 2 * h + y_col + y_pos, 2 * h + v + y_col + y_pos - 1)
        return hops, np.where(step < nx[transfer], x_link, y_link)

    def route(self, src_node: int, dst_node: int) -> tuple[int, ...]:
        """Link ids from one node to another (empty for the same node)."""
        return tuple(int(link) for link in self.routes([src_node], [dst_node])[1])


def build_topology(hw: HwConfig) -> Topology:
    """The topology of `hw`: mesh side `mesh_cols`, or ceil(sqrt(nodes)) for a square-ish grid."""
    ic = hw.interconnect
    if ic.topology not in TOPOLOGIES:
        raise UserError(f"{hw.source or hw.name}: interconnect.topology: expected one of "
                        f"{', '.join(TOPOLOGIES)}, got {ic.topology!r}")
    n_nodes = hw.analog.tiles + hw.digital.cores + 1
    if ic.topology == "bus":
        return Topology("bus", hw.analog.tiles, hw.digital.cores, 1, 1)
    cols = ic.mesh_cols or math.ceil(math.sqrt(n_nodes))
    return Topology("mesh", hw.analog.tiles, hw.digital.cores, cols, math.ceil(n_nodes / cols))
