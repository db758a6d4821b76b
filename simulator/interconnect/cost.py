"""NoC transfer cost: store-and-forward, one task per hop on that hop's link.

A transfer of B bytes over h hops is h chained tasks, each lasting
ceil(B / link_bytes_per_cycle) + hop_cycles cycles on its link and costing
B * energy_pj_per_byte_hop of `noc` energy. Contention needs no extra model: links
are resources, so transfers sharing a link queue behind each other.
"""
from __future__ import annotations

import numpy as np

from simulator.hw.schema import InterconnectConfig
from simulator.memory.cost import ceil_div


def hop_cost(interconnect: InterconnectConfig, nbytes: int) -> tuple[int, dict[str, float]]:
    """One hop of an `nbytes` transfer: serialisation on the link plus router latency."""
    return (ceil_div(nbytes, interconnect.link_bytes_per_cycle) + interconnect.hop_cycles,
            {"noc": nbytes * interconnect.energy_pj_per_byte_hop})


def hop_cycles_many(interconnect: InterconnectConfig, nbytes: np.ndarray) -> np.ndarray:
    """`hop_cost` cycles for an array of transfer sizes (same rounding as ceil_div)."""
    serialise = np.maximum(1, np.ceil(np.round(np.asarray(nbytes) / interconnect.link_bytes_per_cycle, 6)))
    return serialise.astype(np.int64) + interconnect.hop_cycles
