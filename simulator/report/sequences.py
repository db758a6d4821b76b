"""Latency of each sequence of a batch, as papers on pipelined accelerators quote it.

A weight-stationary fabric pipelines the sequences of a batch one behind the other, so
the makespan (the batch's latency, which sets TOP/s) is longer than the time one
sequence spends in the machine. IBM's analog-fabric BERT figures (Burr et al., CICC 2025
Table 2) quote the latter: 0.35 ms per sentence against a batch makespan of
ops / TOP/s = 0.50 ms. Here a sequence's latency runs from the start of its first MVM
(its first token entering the fabric) to the end of its last task; inputs fetched before
that (embeddings from DRAM) do not count. Needs a graph that says which ops belong to
which sequence (`meta["sequence_op_start"]`, from the BERT-family builder).
"""
from __future__ import annotations

import numpy as np

from simulator.engine.taskgraph import TASK_KINDS, Schedule, TaskGraph
from simulator.errors import UserError
from simulator.ir.graph import Graph

_MVM = TASK_KINDS.index("mvm")


def sequence_latencies_ns(tg: TaskGraph, schedule: Schedule, graph: Graph) -> np.ndarray:
    """Per sequence: last task end minus first MVM start, in ns (float64 [batch])."""
    starts = graph.meta.get("sequence_op_start")
    if starts is None:
        raise UserError(f"{graph.model} {graph.phase}: the graph does not record its sequences "
                        "(only BERT-family encoder graphs do)")
    sequence = np.searchsorted(np.asarray(starts), tg.task_op, side="right") - 1
    on_op = tg.task_op >= 0
    end = schedule.start_cycles + tg.duration_cycles
    latencies = np.zeros(len(starts))
    for s in range(len(starts)):
        mine = on_op & (sequence == s)
        mvm = mine & (tg.task_kind == _MVM)
        first = schedule.start_cycles[mvm].min() if mvm.any() else schedule.start_cycles[mine].min()
        latencies[s] = (end[mine].max() - first) * tg.cycle_ns
    return latencies
