"""Latency of each sequence of a batch, as papers on pipelined accelerators quote it.

A weight-stationary fabric pipelines the sequences of a batch one behind the other, so
the makespan (the batch's latency, which sets TOP/s) is longer than the time one
sequence spends in the machine. IBM's analog-fabric BERT figures (Burr et al., CICC 2025
Table 2) quote the latter: 0.35 ms per sentence against a batch makespan of
ops / TOP/s = 0.50 ms. Here a sequence's latency runs from the start of its first MVM
(its first token entering the fabric) to the end of its last task; inputs fetched before
that (embeddings from DRAM) do not count. Needs a graph that says which ops belong to
which sequence (`meta["sequence_op_start"]`, from the BERT-family builder).

The same sequence index is the dispatch priority of `system.dispatch: sequence_first`
(Buchel et al., Nat. Comput. Sci. 2025, Methods: the scheduler "prioritizes operations
from earlier sequences"): a shared resource serves the earliest sequence's ready task.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.engine.taskgraph import TASK_KINDS, Schedule, TaskGraph
from simulator.errors import UserError
from simulator.ir.graph import Graph

_MVM = TASK_KINDS.index("mvm")


def _sequence_starts(graph: Graph) -> np.ndarray:
    starts = graph.meta.get("sequence_op_start")
    if starts is None:
        raise UserError(f"{graph.model} {graph.phase}: the graph does not record its sequences "
                        "(only BERT-family encoder graphs do)")
    return np.asarray(starts)


def task_sequences(tg: TaskGraph, graph: Graph) -> np.ndarray:
    """The sequence each task serves (int32 [n_tasks]); tasks of no op count to sequence 0."""
    sequence = np.searchsorted(_sequence_starts(graph), tg.task_op, side="right") - 1
    return np.maximum(sequence, 0).astype(np.int32)


def with_sequence_priority(tg: TaskGraph, graph: Graph) -> TaskGraph:
    """The task graph with each task's sequence as its dispatch priority (earlier first)."""
    return dataclasses.replace(tg, priority=task_sequences(tg, graph))


def sequence_latencies_ns(tg: TaskGraph, schedule: Schedule, graph: Graph) -> np.ndarray:
    """Per sequence: last task end minus first MVM start, in ns (float64 [batch])."""
    n_sequences = len(_sequence_starts(graph))
    sequence = task_sequences(tg, graph)
    on_op = tg.task_op >= 0
    end = schedule.start_cycles + tg.duration_cycles
    latencies = np.zeros(n_sequences)
    for s in range(n_sequences):
        mine = on_op & (sequence == s)
        mvm = mine & (tg.task_kind == _MVM)
        first = schedule.start_cycles[mvm].min() if mvm.any() else schedule.start_cycles[mine].min()
        latencies[s] = (end[mine].max() - first) * tg.cycle_ns
    return latencies


def sequence_latency_summary(tg: TaskGraph, schedule: Schedule, graph: Graph) -> dict:
    """First, mean and max sequence latency (ns) and the list, for the run report; {} when
    the graph does not record its sequences."""
    if graph.meta.get("sequence_op_start") is None or not tg.n_tasks:
        return {}
    latencies = sequence_latencies_ns(tg, schedule, graph)
    return {"first": float(latencies[0]), "mean": float(latencies.mean()), "max": float(latencies.max()),
            "per_sequence": latencies.tolist()}
