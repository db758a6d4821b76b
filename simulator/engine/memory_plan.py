"""What each core's SRAM holds, and the bytes each memory level moves (for the report).

Capacity rule (docs/timing_model.md, "SRAM"): every core has `digital.sram_kib` of SRAM.
  * Weights of digital projections are allocated first-fit in graph (model) order: the
    column slice a core computes is resident when it fits what earlier projections left
    on that core, else it streams from DRAM on every use (DRAM channel, then the NoC).
  * The KV cache of a layer lives on the layer's attention core in the SRAM that weights
    left free, shared equally by the layers whose attention runs on that core; entries
    are kept in position order, so the cache spills to DRAM once it outgrows its share
    (later positions are read from and written to DRAM).
  * Activations and partial sums in flight take a working buffer on each core, reserved
    before anything else: the largest working set of one op slice on that core (its input
    and output bytes; for an analog reduction its partial sums and its output). They are
    charged SRAM energy (written when they arrive or are produced, read when consumed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MemoryTraffic:
    """Per-core SRAM occupancy and bytes moved per level in one lowered run.

    Read by the report. Occupancy counts what is resident (digital weights and the peak
    KV cache); bytes moved count every access of the run: `sram_bytes` reads and writes
    of weights, activations, partial sums and KV entries in core SRAM; `dram_bytes` every
    byte read from or written to DRAM (embeddings, KV spills, streamed weights, weights
    for reprogramming); `noc_byte_hops` the bytes carried summed over the links crossed.
    """

    sram_capacity_bytes: int  # per core
    weight_resident_bytes: tuple[int, ...]  # per core: digital weights resident
    kv_resident_bytes: tuple[int, ...]  # per core: largest KV cache held at once
    activation_bytes: tuple[int, ...]  # per core: working buffer for activations and partial sums
    weight_streamed_bytes: int  # digital weight bytes streamed from DRAM (all uses)
    sram_bytes: int
    dram_bytes: int
    noc_byte_hops: int
    program_bytes: int = 0  # weight bytes read from DRAM to reprogram tiles

    @property
    def resident_bytes(self) -> tuple[int, ...]:
        """Bytes held per core (activation buffer + weights + KV cache)."""
        return tuple(a + w + k for a, w, k in zip(self.activation_bytes, self.weight_resident_bytes,
                                                  self.kv_resident_bytes))

    @property
    def occupancy(self) -> tuple[float, ...]:
        """Resident bytes per core as a fraction of the capacity."""
        cap = max(self.sram_capacity_bytes, 1)
        return tuple(r / cap for r in self.resident_bytes)


def split_evenly(total: int, parts: int) -> np.ndarray:
    """Sizes of `parts` near-equal slices of `total` (the first ones one larger)."""
    return total // parts + (np.arange(parts) < total % parts)


def plan_weights(projections, placements, reserved_bytes: np.ndarray, sram_bytes: int,
                 weight_bytes: int) -> tuple[dict[str, tuple[bool, ...]], np.ndarray]:
    """First-fit residency of digital weight slices in graph order, in the SRAM each core
    has left after `reserved_bytes` (its activation buffer).

    Returns (projection -> resident flag per core of its group, resident bytes per core).
    A digital projection on a group of g cores gives core k the k-th of g near-equal
    column slices (as the lowering computes them).
    """
    used = np.asarray(reserved_bytes, dtype=np.int64).copy()
    resident = {}
    for projection in projections:
        placement = placements[projection.name]
        if placement.is_analog:
            continue
        cores = placement.cores
        slices = split_evenly(projection.out_features, len(cores))
        flags = []
        for core, cols in zip(cores, slices.tolist()):
            nbytes = projection.in_features * cols * weight_bytes
            fits = cols > 0 and used[core] + nbytes <= sram_bytes
            if fits:
                used[core] += nbytes
            flags.append(bool(fits))
        resident[projection.name] = tuple(flags)
    return resident, used - reserved_bytes
