"""The numba timing engine: the dispatch rule of engine.taskgraph as an event-driven list scheduler.

Same answer as engine.des (identical start cycles), for the mapping-search inner loop
and big sweeps. Data layout, all flat arrays:
  * successors in CSR (built once with numpy from the predecessor CSR);
  * one binary min-heap of ready tasks per resource, keyed (ready_cycle, task_id); the
    heaps share one array, resource r owning the slice of its own task count;
  * one global min-heap of finish events keyed by finish cycle.
The main loop visits cycles in increasing order: it first processes every finish at
the cycle (zero-duration delay tasks may add more finishes at the same cycle, and are
processed in the same pass), then lets each touched, idle resource pick its smallest
ready task. Resource tasks last >= 1 cycle, so a pick never adds a finish at the cycle.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.des import check_durations
from simulator.engine.taskgraph import Schedule, TaskGraph


@njit(cache=True, inline="always")
def _before(cycle_a, task_a, cycle_b, task_b):
    """Heap order of resource queues: (ready_cycle, task_id) lexicographic."""
    return cycle_a < cycle_b or (cycle_a == cycle_b and task_a < task_b)


@njit(cache=True)
def _ready_push(cycles, tasks, base, size, cycle, task):
    """Push (cycle, task) onto the ready heap (cycles, tasks)[base:base+size]; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(cycle, task, cycles[base + parent], tasks[base + parent]):
            break
        cycles[base + i] = cycles[base + parent]
        tasks[base + i] = tasks[base + parent]
        i = parent
    cycles[base + i] = cycle
    tasks[base + i] = task
    return size + 1


@njit(cache=True)
def _ready_pop(cycles, tasks, base, size):
    """Remove the smallest (ready_cycle, task_id) from the ready heap; returns its task."""
    top = tasks[base]
    size -= 1
    last_cycle = cycles[base + size]
    last_task = tasks[base + size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _before(cycles[base + right], tasks[base + right],
                                    cycles[base + child], tasks[base + child]):
            child = right
        if not _before(cycles[base + child], tasks[base + child], last_cycle, last_task):
            break
        cycles[base + i] = cycles[base + child]
        tasks[base + i] = tasks[base + child]
        i = child
    cycles[base + i] = last_cycle
    tasks[base + i] = last_task
    return top


@njit(cache=True)
def _event_push(cycles, tasks, size, cycle, task):
    """Push a finish event onto the global heap (cycles, tasks)[:size]; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if cycles[parent] <= cycle:
            break
        cycles[i] = cycles[parent]
        tasks[i] = tasks[parent]
        i = parent
    cycles[i] = cycle
    tasks[i] = task
    return size + 1


@njit(cache=True)
def _event_pop(cycles, tasks, size):
    """Remove the earliest finish event; returns its task (read the cycle from cycles[0] first)."""
    top = tasks[0]
    size -= 1
    last_cycle = cycles[size]
    last_task = tasks[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and cycles[child + 1] < cycles[child]:
            child += 1
        if cycles[child] >= last_cycle:
            break
        cycles[i] = cycles[child]
        tasks[i] = tasks[child]
        i = child
    cycles[i] = last_cycle
    tasks[i] = last_task
    return top


@njit(cache=True)
def _mark_touched(touched, is_touched, n_touched, r):
    """Remember that resource r may pick at this cycle; returns the new count."""
    if is_touched[r]:
        return n_touched
    is_touched[r] = True
    touched[n_touched] = r
    return n_touched + 1


@njit(cache=True)
def _schedule(resource, duration_cycles, n_preds, succ_ptr, succ_idx, heap_base, n_resources):
    """Start cycle of every task under the dispatch rule (-1 if a task never became ready)."""
    n_tasks = resource.shape[0]
    start_cycles = np.full(n_tasks, -1, dtype=np.int64)
    preds_left = n_preds.copy()
    ready_heap_cycles = np.empty(n_tasks, dtype=np.int64)  # resource r owns [heap_base[r], ...)
    ready_heap_tasks = np.empty(n_tasks, dtype=np.int32)
    ready_size = np.zeros(n_resources, dtype=np.int64)
    busy = np.zeros(n_resources, dtype=np.bool_)
    touched = np.empty(n_resources, dtype=np.int32)  # resources that may pick this cycle
    is_touched = np.zeros(n_resources, dtype=np.bool_)
    n_touched = 0
    event_cycles = np.empty(n_tasks, dtype=np.int64)
    event_tasks = np.empty(n_tasks, dtype=np.int32)
    n_events = 0

    now = 0
    for task in range(n_tasks):  # tasks without predecessors are ready at cycle 0
        if preds_left[task] == 0:
            r = resource[task]
            if r < 0:
                start_cycles[task] = 0
                n_events = _event_push(event_cycles, event_tasks, n_events, duration_cycles[task], task)
            else:
                ready_size[r] = _ready_push(ready_heap_cycles, ready_heap_tasks, heap_base[r], ready_size[r],
                                            0, task)
                n_touched = _mark_touched(touched, is_touched, n_touched, r)

    while True:
        # 1. every finish at `now`, including zero-delay finishes they cause
        while n_events > 0 and event_cycles[0] == now:
            task = _event_pop(event_cycles, event_tasks, n_events)
            n_events -= 1
            r = resource[task]
            if r >= 0:
                busy[r] = False
                n_touched = _mark_touched(touched, is_touched, n_touched, r)
            for k in range(succ_ptr[task], succ_ptr[task + 1]):
                succ = succ_idx[k]
                preds_left[succ] -= 1
                if preds_left[succ] > 0:
                    continue
                rs = resource[succ]
                if rs < 0:
                    start_cycles[succ] = now
                    n_events = _event_push(event_cycles, event_tasks, n_events,
                                           now + duration_cycles[succ], succ)
                else:
                    ready_size[rs] = _ready_push(ready_heap_cycles, ready_heap_tasks, heap_base[rs],
                                                 ready_size[rs], now, succ)
                    n_touched = _mark_touched(touched, is_touched, n_touched, rs)
        # 2. picks at `now`
        for i in range(n_touched):
            r = touched[i]
            is_touched[r] = False
            if busy[r] or ready_size[r] == 0:
                continue
            task = _ready_pop(ready_heap_cycles, ready_heap_tasks, heap_base[r], ready_size[r])
            ready_size[r] -= 1
            busy[r] = True
            start_cycles[task] = now
            n_events = _event_push(event_cycles, event_tasks, n_events, now + duration_cycles[task], task)
        n_touched = 0
        # 3. next cycle with a finish
        if n_events == 0:
            break
        now = event_cycles[0]
    return start_cycles


@njit(cache=True)
def _transpose_csr(pred_ptr, pred_idx):
    """Counting-sort transpose: successors of each task, in increasing id order."""
    n_tasks = pred_ptr.shape[0] - 1
    succ_ptr = np.zeros(n_tasks + 1, dtype=np.int64)
    for k in range(pred_idx.shape[0]):
        succ_ptr[pred_idx[k] + 1] += 1
    for task in range(n_tasks):
        succ_ptr[task + 1] += succ_ptr[task]
    fill = succ_ptr[:-1].copy()
    succ_idx = np.empty(pred_idx.shape[0], dtype=np.int32)
    for task in range(n_tasks):
        for k in range(pred_ptr[task], pred_ptr[task + 1]):
            pred = pred_idx[k]
            succ_idx[fill[pred]] = task
            fill[pred] += 1
    return succ_ptr, succ_idx


def successor_csr(tg: TaskGraph) -> tuple[np.ndarray, np.ndarray]:
    """(succ_ptr, succ_idx): the predecessor CSR transposed, successors in increasing id order."""
    return _transpose_csr(np.ascontiguousarray(tg.pred_ptr, dtype=np.int64),
                          np.ascontiguousarray(tg.pred_idx, dtype=np.int32))


def simulate(tg: TaskGraph) -> Schedule:
    """Schedule the task graph with the numba list scheduler; same start cycles as engine.des."""
    check_durations(tg)
    succ_ptr, succ_idx = successor_csr(tg)
    resource = np.ascontiguousarray(tg.resource, dtype=np.int32)
    tasks_per_resource = np.bincount(resource[resource >= 0], minlength=tg.n_resources)
    heap_base = np.zeros(tg.n_resources, dtype=np.int64)
    np.cumsum(tasks_per_resource[:-1], out=heap_base[1:])
    start_cycles = _schedule(resource, np.ascontiguousarray(tg.duration_cycles, dtype=np.int64),
                             np.diff(tg.pred_ptr), succ_ptr, succ_idx, heap_base, tg.n_resources)
    if np.any(start_cycles < 0):
        raise ValueError("TaskGraph: some tasks never became ready (predecessor ids must be smaller)")
    makespan = int((start_cycles + tg.duration_cycles).max()) if tg.n_tasks else 0
    return Schedule(start_cycles=start_cycles, makespan_cycles=makespan, engine="fast")
