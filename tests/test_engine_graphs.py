"""Hand-built task graphs and a brute-force reading of the dispatch rule.

The engine and report tests import these; the tests here check the reference itself by hand.
"""
from __future__ import annotations

import numpy as np

from simulator.engine.taskgraph import (ENERGY_COMPONENTS, RESOURCE_KINDS, TaskGraph, lag_csr,
                                        successors_from_predecessors)


def task_graph(resource, duration_cycles, preds, n_resources, *, cycle_ns=1.0, tokens=1,
               energy_pj=None, static_power_mw=None, resource_kind=None, task_kind=None, task_op=None,
               lags=()):
    """A TaskGraph from Python lists; preds[i] lists the predecessor ids of task i;
    lags lists start-to-start edges (pred, succ, lag_cycles)."""
    n = len(resource)
    resource_kind = resource_kind if resource_kind is not None else [0] * n_resources
    pred_ptr = np.zeros(n + 1, dtype=np.int64)
    pred_ptr[1:] = np.cumsum([len(p) for p in preds])
    pred_idx = np.array([p for ps in preds for p in ps], dtype=np.int32)
    succ_ptr, succ_idx = successors_from_predecessors(pred_ptr, pred_idx, n)
    lag_edges = np.array(lags, dtype=np.int64).reshape(-1, 3)
    lag_ptr, lag_succ, lag_cycles = lag_csr(lag_edges[:, 0], lag_edges[:, 1], lag_edges[:, 2], n)
    return TaskGraph(
        resource=np.asarray(resource, dtype=np.int32),
        duration_cycles=np.asarray(duration_cycles, dtype=np.int64),
        energy_pj=(np.zeros((n, len(ENERGY_COMPONENTS))) if energy_pj is None
                   else np.asarray(energy_pj, dtype=np.float64)),
        pred_ptr=pred_ptr,
        pred_idx=pred_idx,
        succ_ptr=succ_ptr,
        succ_idx=succ_idx,
        task_kind=np.asarray(task_kind if task_kind is not None else [0] * n, dtype=np.int8),
        task_op=np.asarray(task_op if task_op is not None else [-1] * n, dtype=np.int32),
        resource_kind=np.asarray(resource_kind, dtype=np.int8),
        resource_label=tuple(f"{RESOURCE_KINDS[kind]}{r}" for r, kind in enumerate(resource_kind)),
        static_power_mw=(np.zeros(n_resources) if static_power_mw is None
                         else np.asarray(static_power_mw, dtype=np.float64)),
        cycle_ns=cycle_ns,
        tokens=tokens,
        lag_ptr=lag_ptr, lag_succ=lag_succ, lag_cycles=lag_cycles,
    )


def brute_force_start_cycles(tg: TaskGraph) -> list[int]:
    """Step cycle by cycle and apply the written rule literally; for small graphs only."""
    n = tg.n_tasks
    resource = tg.resource.tolist()
    duration = tg.duration_cycles.tolist()
    preds = [tg.preds(i).tolist() for i in range(n)]
    lag_preds = [list(zip(*(a.tolist() for a in tg.lag_preds(i)))) for i in range(n)]
    start: list[int | None] = [None] * n
    finish: list[int | None] = [None] * n
    busy_until = [0] * tg.n_resources
    priority = [0] * n if tg.priority is None else tg.priority.tolist()

    def ready_cycle(task, now):
        """max finish (start + lag for start-to-start edges) of the predecessors if all
        have been reached by `now`, else None."""
        finishes = [finish[p] for p in preds[task]]
        finishes += [None if start[p] is None else start[p] + lag for p, lag in lag_preds[task]]
        if any(f is None or f > now for f in finishes):
            return None
        return max(finishes, default=0)

    horizon = sum(duration) + int(tg.lag_cycles.sum()) + 1
    for now in range(horizon + 1):
        changed = True
        while changed:  # delays (zero-length ones cascade within the cycle) and finishes at `now`
            changed = False
            for task in range(n):
                if start[task] is None and resource[task] < 0:
                    ready = ready_cycle(task, now)
                    if ready is not None:
                        start[task], finish[task] = ready, ready + duration[task]
                        changed = True
        for r in range(tg.n_resources):
            if busy_until[r] > now:
                continue
            waiting = [(priority[t], ready_cycle(t, now), t) for t in range(n)
                       if resource[t] == r and start[t] is None]
            waiting = [w for w in waiting if w[1] is not None]
            if waiting:
                task = min(waiting)[-1]
                start[task], finish[task] = now, now + duration[task]
                busy_until[r] = finish[task]
    assert all(s is not None for s in start)
    return start


def test_reference_contention_tie_and_delays_by_hand():
    # 0: tile0 3 cycles; 1: delay of 0 after 0; 2: tile0 after 1, ready at 3;
    # 3: tile0 with no preds (ready 0) but 0 has the smaller id; 4: tile0 ready 0.
    tg = task_graph([0, -1, 0, 0, 0], [3, 0, 2, 1, 1], [[], [0], [1], [], []], 1)
    # cycle 0: 0 wins (0,0)<(0,3); cycle 3: 3 and 4 were ready at 0, before 2 (ready 3)
    assert brute_force_start_cycles(tg) == [0, 3, 5, 3, 4]


def test_reference_delay_chain_lands_before_the_pick():
    # 2 (ready 0, id 2) waits while tile0 runs 0; at cycle 2, 1 (delay 0 after 0) makes 3
    # ready at 2: (0, 2) still beats (2, 3). Then at cycle 3, 3 runs.
    tg = task_graph([0, -1, 0, 0], [2, 0, 1, 1], [[], [0], [], [1]], 1)
    assert brute_force_start_cycles(tg) == [0, 2, 2, 3]


def test_reference_start_to_start_lag_by_hand():
    # 0: link0 5 cycles; 1: link1, may start 1 cycle after 0 started; 2: a delay after 1
    # finishes; 3: link1 ready at 0, so it holds link1 over [0, 2) and 1 starts at 2.
    tg = task_graph([0, 1, -1, 1], [5, 5, 0, 2], [[], [], [1], []], 2, lags=[(0, 1, 1)])
    assert brute_force_start_cycles(tg) == [0, 2, 7, 0]
