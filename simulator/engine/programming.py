"""Reprogramming a tile as data movement: its new weights come from DRAM over the NoC.

Each program task of a time-multiplexed mapping (see `lower._program_tasks`) becomes a
*unit* of tasks, in this order:
  delay (DRAM latency, no resource) -> DRAM channel (the block's weight bytes, DRAM
  energy) -> the XY route from the DRAM node to the tile, one task per link (noc energy;
  the first link may start once the channel has started and finishes no earlier than it,
  later links follow by the flow control) -> program (the tile, `program_time_per_tile_us`,
  `program_energy_per_tile_nj`).
The unit starts when the tile's previous contents are drained (its delay waits for the
MVMs that used them), so weights are not prefetched into buffers that do not exist, and
the block's MVMs wait for the program task. The bytes are the block's cells (active
rows x active columns) times `digital.weight_bytes` (the weights as stored in DRAM).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.engine.taskgraph import ENERGY_COMPONENTS, TASK_KINDS
from simulator.hw.schema import HwConfig
from simulator.interconnect.cost import forward_lags, hop_cycles_many
from simulator.interconnect.mesh import Topology
from simulator.memory.cost import dram_bytes_per_cycle, dram_latency_cycles, ns_to_cycles

_ENERGY = {name: i for i, name in enumerate(ENERGY_COMPONENTS)}
_KIND = {name: i for i, name in enumerate(TASK_KINDS)}


@dataclass(frozen=True)
class ProgramUnits:
    """The tasks of every program unit, concatenated in program-task order (unit-local ids).

    Unit k occupies [unit_start[k], unit_start[k + 1]); its first task (`entry`) waits for
    the drained MVMs, its last (`program`) is what the new MVMs wait for.
    """

    resource: np.ndarray  # int32
    duration_cycles: np.ndarray  # int64
    task_kind: np.ndarray  # int8
    energy_pj: np.ndarray  # float64 [n, components]
    unit_start: np.ndarray  # int64 [units + 1]
    edge_task: np.ndarray  # int64 finish-to-start edges inside the units
    edge_pred: np.ndarray
    lag_task: np.ndarray  # int64 start-to-start edges inside the units
    lag_pred: np.ndarray
    lag_cycles: np.ndarray
    weight_bytes: int  # read from DRAM for all units
    noc_byte_hops: int

    @property
    def entry(self) -> np.ndarray:
        return self.unit_start[:-1]

    @property
    def program(self) -> np.ndarray:
        return self.unit_start[1:] - 1


def program_units(tiles: np.ndarray, cells: np.ndarray, hw: HwConfig, topology: Topology, link_base: int,
                  dram_resource: int) -> ProgramUnits:
    """Units for program tasks on `tiles`, each writing a block of `cells` weights."""
    clock, ic = hw.system.clock_ghz, hw.interconnect
    n = tiles.shape[0]
    nbytes = cells.astype(np.int64) * hw.digital.weight_bytes
    hops, links = topology.routes(np.full(n, topology.dram_node), topology.tile_node(tiles))
    size = 3 + hops  # delay, channel, links, program
    unit_start = np.concatenate([[0], np.cumsum(size)]).astype(np.int64)
    total = int(unit_start[-1])
    unit_of = np.repeat(np.arange(n), size)
    position = np.arange(total) - unit_start[unit_of]
    is_delay, is_channel = position == 0, position == 1
    is_program = position == size[unit_of] - 1
    is_link = ~(is_delay | is_channel | is_program)
    resource = np.full(total, -1, dtype=np.int32)
    resource[is_channel] = dram_resource
    resource[is_link] = link_base + links
    resource[is_program] = tiles
    # dram_stream_cycles, vectorised: ceil_div(bytes, bytes per cycle) with its rounding
    channel_cycles = np.maximum(1, np.ceil(np.round(nbytes / dram_bytes_per_cycle(hw.memory, clock), 6))).astype(np.int64)
    link_cycles = hop_cycles_many(ic, nbytes)
    duration = np.empty(total, dtype=np.int64)
    duration[is_delay] = dram_latency_cycles(hw.memory, clock)
    duration[is_channel] = channel_cycles
    duration[is_link] = link_cycles[unit_of[is_link]]
    duration[is_program] = max(1, ns_to_cycles(hw.analog.program_time_per_tile_us * 1000.0, clock))
    kind = np.full(total, _KIND["delay"], dtype=np.int8)
    kind[is_channel], kind[is_link], kind[is_program] = _KIND["dram"], _KIND["transfer"], _KIND["program"]
    energy = np.zeros((total, len(ENERGY_COMPONENTS)))
    energy[is_channel, _ENERGY["dram"]] = nbytes * hw.memory.dram_energy_pj_per_byte
    energy[is_link, _ENERGY["noc"]] = nbytes[unit_of[is_link]] * ic.energy_pj_per_byte_hop
    energy[is_program, _ENERGY["program"]] = hw.analog.program_energy_per_tile_nj * 1000.0
    # edges: channel after delay; program after the last link; first link lags the channel
    start = unit_start[:-1]
    edge_task, edge_pred = [start + 1], [start]
    edge_task.append(unit_start[1:] - 1)
    edge_pred.append(unit_start[1:] - 2)  # the last link (the channel when there is no hop)
    first_link = start[hops > 0] + 2
    lag_task = [first_link]
    lag_pred = [first_link - 1]
    lag_cycles = [np.maximum(1, channel_cycles[hops > 0] - link_cycles[hops > 0])]
    follows = np.flatnonzero(is_link & (position > 2))  # link j+1 after link j of the same unit
    lags = forward_lags(ic, nbytes[unit_of[follows]])
    if lags is None:
        edge_task.append(follows)
        edge_pred.append(follows - 1)
    else:
        lag_task.append(follows)
        lag_pred.append(follows - 1)
        lag_cycles.append(lags)
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return ProgramUnits(resource, duration, kind, energy, unit_start, cat(edge_task), cat(edge_pred),
                        cat(lag_task), cat(lag_pred), cat(lag_cycles), int(nbytes.sum()),
                        int((nbytes * hops).sum()))
