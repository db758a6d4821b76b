"""The task graph: flat numpy arrays that both timing engines consume.

Lowering (simulator.engine.lower) turns (Graph, Mapping, HwConfig) into a TaskGraph;
the simpy engine (engine.des) and the numba engine (engine.fast) turn it into a
Schedule. Tasks are numbered in topological order: every predecessor id is smaller.

The dispatch rule, which both engines implement exactly:
  * A task is *ready* at ready_cycle = the max, over its predecessors, of
    finish_cycle (finish-to-start edges, the pred CSR) or start_cycle + lag_cycles
    (start-to-start edges, the lag CSR: the task may start `lag` cycles after the
    predecessor started, e.g. the next hop of a cut-through message), or 0 if it has
    none. finish_cycle = start_cycle + duration_cycles. Lags are >= 1.
  * A task with resource == -1 needs no resource (a pure delay, e.g. DRAM latency):
    it starts at its ready_cycle.
  * Every resource serves one task at a time, without preemption. Whenever a
    resource is idle at cycle t and some of its tasks are ready at or before t,
    it starts the one with the smallest (priority, ready_cycle, task_id) at cycle t.
    priority is 0 for every task unless the graph gives one (TaskGraph.priority,
    e.g. the sequence of a batch a task belongs to: earlier sequences first).
  * All finishes and lag releases at cycle t are processed (making successors
    ready at t) before any resource picks a task at cycle t.
So start_cycle = the earliest cycle at which the resource is idle and the task is
the first, by (priority, ready_cycle, task_id), of that resource's tasks ready by then.
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
    "transfer", "dram", "delay", "program", "sram",
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
    # start-to-start edges, CSR by predecessor: task lag_succ[k] may start lag_cycles[k]
    # cycles after task p started, for k in lag_ptr[p]:lag_ptr[p + 1] (None: no such edges)
    lag_ptr: np.ndarray | None = None  # int64 [n_tasks + 1]
    lag_succ: np.ndarray | None = None  # int32 [n_lag_edges], each > its predecessor
    lag_cycles: np.ndarray | None = None  # int64 [n_lag_edges], >= 1
    memory: object = None  # MemoryTraffic of the lowering (simulator.engine.memory_plan), or None
    # dispatch priority, smaller first, before (ready_cycle, task_id); None: 0 for every task
    priority: np.ndarray | None = None  # int32 [n_tasks], >= 0

    def __post_init__(self):
        if self.lag_ptr is None:  # frozen: fill the empty lag CSR once
            object.__setattr__(self, "lag_ptr", np.zeros(self.n_tasks + 1, dtype=np.int64))
            object.__setattr__(self, "lag_succ", np.zeros(0, dtype=np.int32))
            object.__setattr__(self, "lag_cycles", np.zeros(0, dtype=np.int64))

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

    @property
    def n_lag_edges(self) -> int:
        return int(self.lag_succ.shape[0])

    def lag_succs(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        """(successors, lags) of the start-to-start edges leaving `task`."""
        lo, hi = self.lag_ptr[task], self.lag_ptr[task + 1]
        return self.lag_succ[lo:hi], self.lag_cycles[lo:hi]

    def lag_preds(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        """(predecessors, lags) of the start-to-start edges into `task` (a scan: for tests)."""
        edge = np.flatnonzero(self.lag_succ == task)
        owner = np.searchsorted(self.lag_ptr, edge, side="right") - 1
        return owner, self.lag_cycles[edge]

    def in_degrees(self) -> np.ndarray:
        """Predecessors of each task over both edge kinds (what an engine counts down)."""
        degree = np.diff(self.pred_ptr)
        if self.n_lag_edges:
            degree = degree + np.bincount(self.lag_succ, minlength=self.n_tasks)
        return degree


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


@njit(cache=True)
def _group_lags(pred, succ, lag, n_tasks, lag_ptr, lag_succ, lag_cycles):
    """Stable counting sort of (pred, succ, lag) edges by pred into the lag CSR."""
    for p in pred:
        lag_ptr[p + 1] += 1
    for task in range(n_tasks):
        lag_ptr[task + 1] += lag_ptr[task]
    cursor = lag_ptr[:n_tasks].copy()
    for k in range(pred.shape[0]):
        lag_succ[cursor[pred[k]]] = succ[k]
        lag_cycles[cursor[pred[k]]] = lag[k]
        cursor[pred[k]] += 1


def lag_csr(pred: np.ndarray, succ: np.ndarray, lag: np.ndarray,
            n_tasks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lag_ptr int64, lag_succ int32, lag_cycles int64) of start-to-start edges given as
    (pred, succ, lag) triples in any order; each predecessor's edges keep their input order."""
    lag_ptr = np.zeros(n_tasks + 1, dtype=np.int64)
    lag_succ = np.empty(pred.shape[0], dtype=np.int32)
    lag_cycles = np.empty(pred.shape[0], dtype=np.int64)
    _group_lags(np.ascontiguousarray(pred, dtype=np.int64), np.ascontiguousarray(succ, dtype=np.int64),
                np.ascontiguousarray(lag, dtype=np.int64), n_tasks, lag_ptr, lag_succ, lag_cycles)
    return lag_ptr, lag_succ, lag_cycles


@dataclass(frozen=True)
class Schedule:
    start_cycles: np.ndarray  # int64 [n_tasks]
    makespan_cycles: int
    engine: str  # "simpy" | "fast"


def check_durations(tg: TaskGraph) -> None:
    """The rule needs resource tasks to last >= 1 cycle and lags >= 1 (so no pick can cause
    a finish or a release at t)."""
    if tg.n_tasks and int(tg.duration_cycles.min()) < 0:
        raise ValueError("TaskGraph.duration_cycles must be >= 0")
    on_resource = tg.resource >= 0
    if np.any(tg.duration_cycles[on_resource] < 1):
        raise ValueError("TaskGraph: tasks with a resource must last >= 1 cycle")
    if tg.n_lag_edges and int(tg.lag_cycles.min()) < 1:
        raise ValueError("TaskGraph: start-to-start lags must be >= 1 cycle")
    if tg.priority is not None and tg.n_tasks and int(tg.priority.min()) < 0:
        raise ValueError("TaskGraph.priority must be >= 0")
