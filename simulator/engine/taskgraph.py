"""The task graph: flat numpy arrays that both timing engines consume.

Lowering (simulator.engine.lower) turns (Graph, Mapping, HwConfig) into a TaskGraph;
the simpy engine (engine.des) and the numba engine (engine.fast) turn it into a
Schedule. Tasks are numbered in topological order: every predecessor id is smaller.

The dispatch rule, which both engines implement exactly:
  * A task is *ready* at ready_cycle = max(finish_cycle of its predecessors), or 0
    if it has none. finish_cycle = start_cycle + duration_cycles.
  * A task with resource == -1 needs no resource (a pure delay, e.g. DRAM latency):
    it starts at its ready_cycle.
  * Every resource serves one task at a time, without preemption. Whenever a
    resource is idle at cycle t and some of its tasks are ready at or before t,
    it starts the one with the smallest (ready_cycle, task_id) at cycle t.
  * All finishes at cycle t are processed (making successors ready at t) before
    any resource picks a task at cycle t.
So start_cycle = the earliest cycle at which the resource is idle and the task is
the first, by (ready_cycle, task_id), of that resource's tasks ready by then.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

# Energy columns of TaskGraph.energy_pj; static energy is added from the makespan.
ENERGY_COMPONENTS = (
    "array", "dac", "adc", "digital_mac", "special_function", "sram", "dram", "noc", "program",
)
ALL_ENERGY_COMPONENTS = ENERGY_COMPONENTS + ("static",)

# Resource kinds, in the order resources are numbered.
RESOURCE_KINDS = ("tile", "core", "link", "dram")

# Task kinds, for traces and per-kind statistics.
TASK_KINDS = (
    "mvm", "reduce", "digital_linear", "matmul", "special", "elementwise",
    "transfer", "dram", "delay", "program",
)


@dataclass(frozen=True)
class TaskGraph:
    resource: np.ndarray  # int32 [n_tasks], index into resource_kind, or -1 for none
    duration_cycles: np.ndarray  # int64 [n_tasks], >= 1 for tasks with a resource
    energy_pj: np.ndarray  # float64 [n_tasks, len(ENERGY_COMPONENTS)]
    pred_ptr: np.ndarray  # int64 [n_tasks + 1], CSR row pointers
    pred_idx: np.ndarray  # int32 [nnz], predecessor task ids (each < its task id)
    succ_ptr: np.ndarray  # int64 [n_tasks + 1], CSR row pointers of the same edges, transposed
    succ_idx: np.ndarray  # int32 [nnz], successor task ids, increasing within a row
    task_kind: np.ndarray  # int8 [n_tasks], index into TASK_KINDS
    task_op: np.ndarray  # int32 [n_tasks], Graph op id the task comes from (-1: none)
    resource_kind: np.ndarray  # int8 [n_resources], index into RESOURCE_KINDS
    resource_label: tuple[str, ...]  # e.g. "tile3", "core0", "link(1,0)->(2,0)", "dram"
    static_power_mw: np.ndarray  # float64 [n_resources], drawn for the whole makespan
    cycle_ns: float  # one cycle in ns
    tokens: int  # tokens the workload processes (for tokens/s)

    @property
    def n_tasks(self) -> int:
        return int(self.resource.shape[0])

    @property
    def n_resources(self) -> int:
        return int(self.resource_kind.shape[0])

    def preds(self, task: int) -> np.ndarray:
        return self.pred_idx[self.pred_ptr[task]:self.pred_ptr[task + 1]]

    def succs(self, task: int) -> np.ndarray:
        return self.succ_idx[self.succ_ptr[task]:self.succ_ptr[task + 1]]


@njit(cache=True)
def _transpose_csr(pred_ptr, pred_idx, n_tasks, succ_ptr, succ_idx):
    """Fill succ_ptr / succ_idx with the transposed edges; visiting tasks in id order
    leaves every successor row sorted."""
    for k in range(pred_idx.shape[0]):
        succ_ptr[pred_idx[k] + 1] += 1
    for task in range(n_tasks):
        succ_ptr[task + 1] += succ_ptr[task]
    cursor = succ_ptr[:n_tasks].copy()
    for task in range(n_tasks):
        for k in range(pred_ptr[task], pred_ptr[task + 1]):
            pred = pred_idx[k]
            succ_idx[cursor[pred]] = task
            cursor[pred] += 1


def successors_from_predecessors(pred_ptr: np.ndarray, pred_idx: np.ndarray,
                                 n_tasks: int) -> tuple[np.ndarray, np.ndarray]:
    """(succ_ptr int64, succ_idx int32): the predecessor CSR transposed.

    Built once when a TaskGraph is made, because both engines walk edges forwards
    (a finish releases its successors) and transposing per simulation would cost the
    fast engine a third of its run time on big graphs.
    """
    succ_ptr = np.zeros(n_tasks + 1, dtype=np.int64)
    succ_idx = np.empty(pred_idx.shape[0], dtype=np.int32)
    _transpose_csr(np.ascontiguousarray(pred_ptr, dtype=np.int64), np.ascontiguousarray(pred_idx, dtype=np.int32),
                   n_tasks, succ_ptr, succ_idx)
    return succ_ptr, succ_idx


@dataclass(frozen=True)
class Schedule:
    start_cycles: np.ndarray  # int64 [n_tasks]
    makespan_cycles: int
    engine: str  # "simpy" | "fast"


def check_durations(tg: TaskGraph) -> None:
    """The rule needs resource tasks to last >= 1 cycle (so no pick can cause a finish at t)."""
    if tg.n_tasks and int(tg.duration_cycles.min()) < 0:
        raise ValueError("TaskGraph.duration_cycles must be >= 0")
    on_resource = tg.resource >= 0
    if np.any(tg.duration_cycles[on_resource] < 1):
        raise ValueError("TaskGraph: tasks with a resource must last >= 1 cycle")
