"""The critical path of a schedule, attributed to what it spent its time on (the bottleneck).

Walking back from the task that finishes last, each step goes to what made the current
task start when it did: the predecessor that finished at that cycle (a finish-to-start
edge), the predecessor whose start plus lag is that cycle (a start-to-start edge, e.g. a
cut-through hop), or, when the task was ready earlier but its resource was busy, the task
that ran just before it on that resource. The segments walked cover [0, makespan] without
overlap, so the attribution sums to the latency. Both engines give the same start cycles,
hence the same path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from simulator.engine.taskgraph import RESOURCE_KINDS, TASK_KINDS, Schedule, TaskGraph
from simulator.ir.graph import Graph, OpKind

# What an architect reads the bottleneck as: task kinds grouped by the part of the chip.
CATEGORY_OF_TASK_KIND = {
    "mvm": "analog_mvm", "reduce": "digital_compute", "digital_linear": "digital_compute",
    "matmul": "digital_compute", "special": "digital_compute", "elementwise": "digital_compute",
    "transfer": "noc", "dram": "dram", "delay": "dram", "program": "programming",
}
CATEGORIES = ("analog_mvm", "digital_compute", "noc", "dram", "programming", "wait")


@dataclass(frozen=True)
class CriticalPath:
    """Cycles of the critical path per category, task kind, resource kind and op kind."""

    latency_cycles: int
    n_tasks: int  # tasks on the path
    by_category: dict[str, int]
    by_task_kind: dict[str, int]
    by_resource_kind: dict[str, int]  # "none" for delays without a resource
    by_op_kind: dict[str, int]  # graph op kind; linear split into analog / digital

    def to_dict(self) -> dict:
        return {"latency_cycles": self.latency_cycles, "n_tasks": self.n_tasks,
                "by_category": dict(self.by_category), "by_task_kind": dict(self.by_task_kind),
                "by_resource_kind": dict(self.by_resource_kind), "by_op_kind": dict(self.by_op_kind)}

    @property
    def bottleneck(self) -> str:
        """The category holding the largest share of the path."""
        return max(self.by_category, key=self.by_category.get) if self.latency_cycles else "none"


@njit(cache=True)
def _walk(start, finish, resource, pred_ptr, pred_idx, lag_in_ptr, lag_in_src, lag_in_cycles,
          prev_on_resource, last):
    """(task, cycles) segments of the path ending at `last`, newest first; wait cycles as task -1."""
    n = start.shape[0]
    seg_task = np.empty(2 * n + 1, dtype=np.int64)
    seg_cycles = np.empty(2 * n + 1, dtype=np.int64)
    count = 0
    seg_task[0] = last
    seg_cycles[0] = finish[last] - start[last]
    count = 1
    task = last
    while start[task] > 0:
        t = start[task]
        nxt = -1
        for k in range(pred_ptr[task], pred_ptr[task + 1]):
            p = pred_idx[k]
            if finish[p] == t:
                nxt = p
                seg_task[count] = p
                seg_cycles[count] = finish[p] - start[p]
                break
        if nxt < 0:
            for k in range(lag_in_ptr[task], lag_in_ptr[task + 1]):
                q = lag_in_src[k]
                if start[q] + lag_in_cycles[k] == t:
                    nxt = q
                    seg_task[count] = q
                    seg_cycles[count] = lag_in_cycles[k]
                    break
        if nxt < 0 and resource[task] >= 0:
            r = prev_on_resource[task]
            if r >= 0 and finish[r] == t:
                nxt = r
                seg_task[count] = r
                seg_cycles[count] = finish[r] - start[r]
        if nxt < 0:  # nothing explains the start: count the gap as waiting and stop
            seg_task[count] = -1
            seg_cycles[count] = t
            count += 1
            break
        count += 1
        task = nxt
    return seg_task[:count], seg_cycles[:count]


def _lag_edges_by_successor(tg: TaskGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The start-to-start edges as a CSR keyed by successor (the task graph keys them by predecessor)."""
    lag_ptr = getattr(tg, "lag_ptr", None)
    if lag_ptr is None or tg.lag_succ.shape[0] == 0:
        return np.zeros(tg.n_tasks + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    src = np.repeat(np.arange(tg.n_tasks, dtype=np.int64), np.diff(lag_ptr))
    order = np.argsort(tg.lag_succ, kind="stable")
    ptr = np.zeros(tg.n_tasks + 1, dtype=np.int64)
    np.cumsum(np.bincount(tg.lag_succ, minlength=tg.n_tasks), out=ptr[1:])
    return ptr, src[order], tg.lag_cycles[order].astype(np.int64)


def _previous_on_resource(tg: TaskGraph, start: np.ndarray) -> np.ndarray:
    """For each task, the task that started just before it on the same resource (-1: none)."""
    order = np.lexsort((start, tg.resource))
    prev = np.full(tg.n_tasks, -1, dtype=np.int64)
    same = tg.resource[order[1:]] == tg.resource[order[:-1]]
    prev[order[1:][same]] = order[:-1][same]
    return prev


def critical_path(tg: TaskGraph, schedule: Schedule, graph: Graph | None = None,
                  analog_projections: frozenset[str] = frozenset()) -> CriticalPath:
    """Attribute the makespan to the kinds of work on its critical path."""
    empty = {name: 0 for name in CATEGORIES}
    if tg.n_tasks == 0 or schedule.makespan_cycles == 0:
        return CriticalPath(0, 0, empty, {}, {}, {})
    start = np.asarray(schedule.start_cycles, dtype=np.int64)
    finish = start + tg.duration_cycles
    last = int(np.flatnonzero(finish == finish.max())[-1])
    lag_ptr, lag_src, lag_cycles = _lag_edges_by_successor(tg)
    seg_task, seg_cycles = _walk(start, finish, tg.resource.astype(np.int64), tg.pred_ptr,
                                 tg.pred_idx.astype(np.int64), lag_ptr, lag_src, lag_cycles,
                                 _previous_on_resource(tg, start), last)
    on_path = seg_task >= 0
    tasks, cycles = seg_task[on_path], seg_cycles[on_path]
    wait = int(seg_cycles[~on_path].sum())

    by_task_kind = _sum_by(tg.task_kind[tasks], cycles, TASK_KINDS)
    by_category = dict(empty)
    for kind, value in by_task_kind.items():
        by_category[CATEGORY_OF_TASK_KIND.get(kind, "digital_compute")] += value
    by_category["wait"] += wait
    resource_kind = np.where(tg.resource[tasks] >= 0, tg.resource_kind[np.maximum(tg.resource[tasks], 0)], -1)
    by_resource_kind = _sum_by(resource_kind, cycles, RESOURCE_KINDS, none="none")
    by_op_kind = _op_kinds(tg.task_op[tasks], cycles, graph, analog_projections)
    return CriticalPath(int(schedule.makespan_cycles), int(tasks.size), by_category,
                        by_task_kind, by_resource_kind, by_op_kind)


def _sum_by(codes: np.ndarray, cycles: np.ndarray, names, none: str = "none") -> dict[str, int]:
    codes = np.asarray(codes, dtype=np.int64)
    sums = np.bincount(codes + 1, weights=cycles, minlength=len(names) + 1)
    result = {name: int(sums[i + 1]) for i, name in enumerate(names) if sums[i + 1]}
    if sums[0]:
        result[none] = int(sums[0])
    return result


def _op_kinds(task_op: np.ndarray, cycles: np.ndarray, graph: Graph | None,
              analog_projections: frozenset[str]) -> dict[str, int]:
    """Cycles per graph op kind; Linear split by target; tasks of no op (tile programming) as 'programming'."""
    result: dict[str, int] = {}
    if graph is None:
        return result
    sums = np.bincount(task_op + 1, weights=cycles, minlength=len(graph.ops) + 1)
    for op_plus_one in np.flatnonzero(sums):
        if op_plus_one == 0:
            name = "programming"
        else:
            op = graph.ops[op_plus_one - 1]
            name = op.kind
            if op.kind == OpKind.LINEAR:
                name = "linear_analog" if op.projection in analog_projections else "linear_digital"
        result[name] = result.get(name, 0) + int(sums[op_plus_one])
    return result
