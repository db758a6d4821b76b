"""NoC transfer cost: one task per hop on that hop's link, chained by the flow control.

A hop of a B-byte message lasts ceil(B / link_bytes_per_cycle) + hop_cycles cycles on its
link (serialisation plus the router pipeline it crosses) and costs
B * energy_pj_per_byte_hop of `noc` energy. How the next hop of the same message waits
for this one is the flow control (`interconnect.flow_control`):
  * cut_through (default): the next hop may start hop_cycles (at least 1) after this one
    started, a start-to-start edge: the head moves on while the body streams, so H hops
    take H * hop_cycles + ceil(B / link_bytes_per_cycle) cycles without contention. A
    router buffers what a busy next link cannot take yet (virtual cut-through with
    unbounded buffers: no backpressure), so a link is held only while the message passes.
  * store_and_forward: the next hop starts once this router holds a whole packet,
    hop_cycles + ceil(min(B, packet_bytes) / link_bytes_per_cycle) cycles after this hop
    started; with packet_bytes 0 the packet is the whole message, so the next hop waits
    for this hop's finish (a plain finish-to-start edge).
Contention needs no extra model: links are resources, so transfers sharing a link queue
behind each other.
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


def forward_lags(interconnect: InterconnectConfig, nbytes: np.ndarray) -> np.ndarray | None:
    """Start-to-start lag from a hop carrying `nbytes` to the next hop of the same message,
    or None when the next hop must wait for this hop's finish (whole-message store-and-forward)."""
    nbytes = np.asarray(nbytes, dtype=np.int64)
    if interconnect.flow_control == "cut_through":
        return np.full(nbytes.shape, max(1, interconnect.hop_cycles), dtype=np.int64)
    if interconnect.packet_bytes == 0:
        return None
    return hop_cycles_many(interconnect, np.minimum(nbytes, interconnect.packet_bytes))
