"""Mesh layout, XY routes and hop costs."""
import re

import numpy as np
import pytest

from simulator.errors import UserError
from simulator.hw.schema import AnalogConfig, DigitalConfig, HwConfig, InterconnectConfig
from simulator.interconnect.cost import hop_cost, hop_cycles_many
from simulator.interconnect.mesh import build_topology


def _hw(tiles=6, cores=2, **interconnect):
    return HwConfig(analog=AnalogConfig(tiles=tiles), digital=DigitalConfig(cores=cores),
                    interconnect=InterconnectConfig(**interconnect))


def _ends(label):
    x0, y0, x1, y1 = map(int, re.match(r"link\((\d+),(\d+)\)->\((\d+),(\d+)\)", label).groups())
    return (x0, y0), (x1, y1)


def test_digital_nodes_are_spread_over_the_tiles():
    topo = build_topology(_hw())  # 6 tiles + 2 cores + DRAM = 9 nodes -> 3 x 3
    assert (topo.cols, topo.rows, topo.n_nodes) == (3, 3, 9)
    assert (topo.tile_node(5), topo.core_node(0), topo.core_node(1), topo.dram_node) == (5, 6, 7, 8)
    # S = 3 digital nodes in slots floor((2k+1) * 9 / 6) = 1, 4, 7: the middle column
    x, y = topo.node_xy([6, 7, 8])
    assert list(zip(x.tolist(), y.tolist())) == [(1, 0), (1, 1), (1, 2)]
    x, y = topo.node_xy(range(6))  # tiles fill slots 0, 2, 3, 5, 6, 8 in id order
    assert list(zip(x.tolist(), y.tolist())) == [(0, 0), (2, 0), (0, 1), (2, 1), (0, 2), (2, 2)]
    assert topo.n_links == 2 * (3 * 2 + 3 * 2)


def test_without_tiles_the_digital_nodes_keep_their_order():
    topo = build_topology(_hw(tiles=0, cores=4, mesh_cols=5))  # slots floor((2k+1) * 5 / 10) = k
    assert topo.node_xy(range(5))[0].tolist() == [0, 1, 2, 3, 4]


def test_xy_route_goes_along_x_first_then_y():
    topo = build_topology(_hw())
    labels = topo.link_labels()
    route = [labels[link] for link in topo.route(5, 0)]  # tile 5 (2,2) to tile 0 (0,0)
    assert route == ["link(2,2)->(1,2)", "link(1,2)->(0,2)", "link(0,2)->(0,1)", "link(0,1)->(0,0)"]
    assert topo.route(4, 4) == ()


def test_routes_are_connected_minimal_paths_for_every_pair():
    topo = build_topology(_hw(tiles=11, cores=3, mesh_cols=4))  # 15 nodes: partial last row
    labels = topo.link_labels()
    src, dst = np.meshgrid(np.arange(topo.n_nodes), np.arange(topo.n_nodes), indexing="ij")
    hops, links = topo.routes(src.ravel(), dst.ravel())
    xy = topo.node_xy(np.arange(topo.n_nodes))
    start = 0
    for s, d, h in zip(src.ravel(), dst.ravel(), hops):
        here, goal = tuple(int(c[s]) for c in xy), tuple(int(c[d]) for c in xy)
        assert h == abs(here[0] - goal[0]) + abs(here[1] - goal[1])
        for link in links[start:start + h]:
            a, b = _ends(labels[link])
            assert a == here
            here = b
        assert here == goal
        start += h
    assert len(set(labels)) == topo.n_links


def test_bus_is_one_shared_link():
    topo = build_topology(_hw(topology="bus"))
    assert topo.link_labels() == ("bus",)
    assert topo.route(0, 7) == (0,)
    assert topo.route(3, 3) == ()


def test_unknown_topology_is_a_user_error():
    with pytest.raises(UserError, match="interconnect.topology"):
        build_topology(_hw(topology="torus"))


def test_hop_cost_is_serialisation_plus_router_latency():
    ic = InterconnectConfig(link_bytes_per_cycle=32.0, hop_cycles=2, energy_pj_per_byte_hop=0.1)
    assert hop_cost(ic, 100) == (4 + 2, {"noc": pytest.approx(10.0)})
    assert hop_cycles_many(ic, np.array([1, 32, 33, 100])).tolist() == [3, 3, 4, 6]


def test_multicast_merges_routes_into_a_tree_ordered_from_the_source():
    # 15 nodes, digital slots floor((2k+1) * 15 / 8) = 1, 5, 9, 13; tiles in slots 0, 2, 3, 4, 6, 7, ...
    topo = build_topology(_hw(tiles=11, cores=3, mesh_cols=4))
    labels = topo.link_labels()
    assert topo.node_xy([11])[0].tolist() == [1] and topo.node_xy([11])[1].tolist() == [0]  # core 0 at (1,0)
    # tiles 2 (slot 3: (3,0)) and 5 (slot 7: (3,1)): routes (1,0)->(2,0)->(3,0) and the same, then ->(3,1)
    tree = topo.multicast(11, [2, 5])
    assert [labels[link] for link in tree.links] == ["link(1,0)->(2,0)", "link(2,0)->(3,0)", "link(3,0)->(3,1)"]
    assert list(zip(tree.feeds_from.tolist(), tree.feeds_into.tolist())) == [(0, 1), (1, 2)]
    assert tree.first.tolist() == [0, 0] and tree.last.tolist() == [1, 2]


def test_gather_merges_routes_that_meet_ordered_towards_the_destination():
    topo = build_topology(_hw(tiles=11, cores=3, mesh_cols=4))
    labels = topo.link_labels()
    # tiles 3 (slot 4: (0,1)) and 5 (slot 7: (3,1)) to core 0 (1,0): both turn north in column 1
    tree = topo.gather([3, 5], 11)
    got = [labels[link] for link in tree.links]
    assert got[-1] == "link(1,1)->(1,0)" and len(got) == 4  # (0,1)->(1,1), (3,1)->(2,1)->(1,1), then north
    into_last = tree.feeds_from[tree.feeds_into == 3]
    assert sorted(labels[tree.links[i]] for i in into_last) == ["link(0,1)->(1,1)", "link(2,1)->(1,1)"]
    assert tree.last.tolist() == [3, 3]
