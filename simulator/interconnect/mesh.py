"""Interconnect topology: where nodes sit, which links exist, and XY routes over them.

Nodes are numbered tiles first, then cores, then one DRAM controller:
tile t is node t, core c is node n_tiles + c, the DRAM controller is the last node.
Mesh: a grid of `cols` columns whose first N = n_nodes positions (row-major,
slot s at x = s % cols, y = s // cols) hold the nodes. The S = cores + 1 digital
nodes (cores in id order, then DRAM) are spread over the tiles so no tile is far
from a core: digital node k sits in slot floor((2k + 1) * N / (2S)), the middle of
the k-th of S equal runs of slots; tiles fill the other slots in id order. Every
grid position is a router, so routes exist even around the empty corner of a
partial last row. Each pair of neighbouring routers has two directed links. Routes
are dimension-ordered (XY): all hops along x first, then along y, which is deadlock
free and the same for every packet of a flow.
Bus: a single shared link between all nodes; a transfer crosses it once.

`multicast` and `gather` merge the routes of one flow (one source to many nodes,
many nodes to one) so each link appears once; lowering turns each merged link into
one transfer task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from simulator.errors import UserError
from simulator.hw.schema import HwConfig

TOPOLOGIES = ("mesh", "bus")


@dataclass(frozen=True)
class MergedRoutes:
    """Routes of one flow with every link kept once, in an order where a link comes
    after every link that feeds it (so tasks can be numbered in this order).

    Route i's hops are hop_route == i; link_of_hop gives each hop's merged link index.
    """

    links: np.ndarray  # int64 [m] link ids
    feeds_from: np.ndarray  # int64 [e] merged index of a feeding link ...
    feeds_into: np.ndarray  # int64 [e] ... and of the link it feeds
    first: np.ndarray  # int64 [routes] merged index of each route's first link (-1: no hops)
    last: np.ndarray  # int64 [routes] merged index of each route's last link (-1: no hops)
    hop_route: np.ndarray  # int64 [hops] route of each hop
    link_of_hop: np.ndarray  # int64 [hops] merged index of each hop's link


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

    def node_core(self, node: int) -> int:
        """The core at a core node (inverse of `core_node`)."""
        return node - self.n_tiles

    @property
    def dram_node(self) -> int:
        return self.n_tiles + self.n_cores

    @cached_property
    def node_slot(self) -> np.ndarray:
        """Grid slot (y * cols + x) of every node; see the module docstring."""
        n_digital = self.n_cores + 1
        digital_slots = (2 * np.arange(n_digital) + 1) * self.n_nodes // (2 * n_digital)
        is_digital_slot = np.zeros(self.n_nodes, dtype=bool)
        is_digital_slot[digital_slots] = True
        return np.concatenate([np.flatnonzero(~is_digital_slot), digital_slots]).astype(np.int64)

    def node_xy(self, nodes) -> tuple[np.ndarray, np.ndarray]:
        """Grid coordinates (x, y) of nodes (all at (0, 0) on a bus)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        slot = self.node_slot[nodes] if self.kind == "mesh" else np.zeros_like(nodes)
        return slot % self.cols, slot // self.cols

    def core_distances(self, nodes) -> np.ndarray:
        """Manhattan distance (in grid steps) of every core from the centroid of `nodes`; 0 on a bus."""
        x, y = self.node_xy(nodes)
        core_x, core_y = self.node_xy([self.core_node(c) for c in range(self.n_cores)])
        return np.abs(core_x - x.mean()) + np.abs(core_y - y.mean())

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
        sx, sy = self.node_xy(src)
        dx, dy = self.node_xy(dst)
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

    def multicast(self, src_node: int, dst_nodes) -> MergedRoutes:
        """XY routes from one node to many, merged into a tree: a link's distance from
        the source is the same on every route through it, which orders the links."""
        dst = np.asarray(dst_nodes, dtype=np.int64)
        return _memoised((self, True, int(src_node), dst.tobytes()), lambda: self._merge(
            *self.routes(np.full(dst.shape[0], src_node), dst), from_source=True))

    def gather(self, src_nodes, dst_node: int) -> MergedRoutes:
        """XY routes from many nodes to one, merged: two routes that meet on a link share
        the rest of the way, so a link's distance to the destination orders the links."""
        src = np.asarray(src_nodes, dtype=np.int64)
        return _memoised((self, False, int(dst_node), src.tobytes()), lambda: self._merge(
            *self.routes(src, np.full(src.shape[0], dst_node)), from_source=False))

    @staticmethod
    def _merge(hops: np.ndarray, hop_links: np.ndarray, from_source: bool) -> MergedRoutes:
        starts = np.cumsum(hops) - hops
        hop_route = np.repeat(np.arange(hops.shape[0]), hops)
        step = np.arange(hop_links.shape[0]) - starts[hop_route]
        depth = step if from_source else step - hops[hop_route]  # increases along a route
        by_depth = np.lexsort((hop_links, depth))
        links, first_hop = np.unique(hop_links[by_depth], return_index=True)
        order = np.argsort(first_hop, kind="stable")  # merged links in depth order
        rank = np.empty_like(order)
        rank[order] = np.arange(order.shape[0])
        link_of_hop = rank[np.searchsorted(links, hop_links)]
        follows = step > 0
        pairs = np.unique(np.stack([link_of_hop[np.flatnonzero(follows) - 1], link_of_hop[follows]]), axis=1)
        moved = hops > 0
        first, last = np.full(hops.shape[0], -1, dtype=np.int64), np.full(hops.shape[0], -1, dtype=np.int64)
        first[moved] = link_of_hop[starts[moved]]
        last[moved] = link_of_hop[starts[moved] + hops[moved] - 1]
        return MergedRoutes(links=links[order], feeds_from=pairs[0], feeds_into=pairs[1], first=first, last=last,
                            hop_route=hop_route, link_of_hop=link_of_hop)


# Merged trees by (topology, direction, node, other nodes): every lowering of the same
# geometry (each chunk size `--chunk-tokens auto` tries, each sweep point, each search
# candidate) asks for the same few thousand. Read-only once made; cleared when full.
_TREES: dict[tuple, MergedRoutes] = {}
_TREE_CACHE_LIMIT = 200_000


def _memoised(key: tuple, make) -> MergedRoutes:
    tree = _TREES.get(key)
    if tree is None:
        if len(_TREES) >= _TREE_CACHE_LIMIT:
            _TREES.clear()
        tree = _TREES[key] = make()
        for array in vars(tree).values():
            array.flags.writeable = False
    return tree


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
