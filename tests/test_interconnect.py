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


def test_nodes_fill_a_square_grid_tiles_then_cores_then_dram():
    topo = build_topology(_hw())  # 6 tiles + 2 cores + DRAM = 9 nodes -> 3 x 3
    assert (topo.cols, topo.rows, topo.n_nodes) == (3, 3, 9)
    assert (topo.tile_node(5), topo.core_node(0), topo.core_node(1), topo.dram_node) == (5, 6, 7, 8)
    assert topo.n_links == 2 * (3 * 2 + 3 * 2)


def test_xy_route_goes_along_x_first_then_y():
    topo = build_topology(_hw())
    labels = topo.link_labels()
    route = [labels[link] for link in topo.route(8, 0)]  # DRAM (2,2) to tile 0 (0,0)
    assert route == ["link(2,2)->(1,2)", "link(1,2)->(0,2)", "link(0,2)->(0,1)", "link(0,1)->(0,0)"]
    assert topo.route(4, 4) == ()


def test_routes_are_connected_minimal_paths_for_every_pair():
    topo = build_topology(_hw(tiles=11, cores=3, mesh_cols=4))  # 15 nodes: partial last row
    labels = topo.link_labels()
    src, dst = np.meshgrid(np.arange(topo.n_nodes), np.arange(topo.n_nodes), indexing="ij")
    hops, links = topo.routes(src.ravel(), dst.ravel())
    start = 0
    for s, d, h in zip(src.ravel(), dst.ravel(), hops):
        here, goal = (s % 4, s // 4), (d % 4, d // 4)
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
