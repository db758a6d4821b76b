"""DRAM cost: a fixed access latency plus bytes streamed at the channel bandwidth.

Lowering turns one access into a latency delay (no resource, so concurrent requests
overlap their latencies) followed by a transfer task on the single `dram` resource
(so bandwidth is shared and contended). These functions give the two durations and
the energy; they are pure and in integer cycles.
"""
from __future__ import annotations

import math

from simulator.hw.schema import MemoryConfig


def ns_to_cycles(ns: float, clock_ghz: float) -> int:
    """Whole cycles covering `ns` (rounded to 1e-6 cycle first so 100 ns at 1.2 GHz is 120)."""
    return math.ceil(round(ns * clock_ghz, 6))


def ceil_div(amount: int, rate_per_cycle: float) -> int:
    """Cycles to process `amount` units at `rate_per_cycle`, at least 1."""
    return max(1, math.ceil(round(amount / rate_per_cycle, 6)))


def dram_bytes_per_cycle(memory: MemoryConfig, clock_ghz: float) -> float:
    """GB/s is bytes per ns; one cycle lasts 1/clock_ghz ns."""
    return memory.dram_bandwidth_gb_s / clock_ghz


def dram_latency_cycles(memory: MemoryConfig, clock_ghz: float) -> int:
    return ns_to_cycles(memory.dram_latency_ns, clock_ghz)


def dram_stream_cycles(memory: MemoryConfig, clock_ghz: float, nbytes: int) -> int:
    """Cycles the DRAM channel is busy moving `nbytes` (at least 1)."""
    return ceil_div(nbytes, dram_bytes_per_cycle(memory, clock_ghz))


def dram_access_cost(memory: MemoryConfig, clock_ghz: float, nbytes: int) -> tuple[int, dict[str, float]]:
    """Channel cycles and energy of moving `nbytes` to or from DRAM (latency excluded)."""
    return dram_stream_cycles(memory, clock_ghz, nbytes), {"dram": nbytes * memory.dram_energy_pj_per_byte}
