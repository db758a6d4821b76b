"""The simpy timing engine: the readable reference for the dispatch rule in engine.taskgraph.

One simpy process per resource serves a priority queue (a heapq list) of ready tasks
keyed (ready_cycle, task_id), or (priority, ready_cycle, task_id) when the graph gives
priorities. A task enters its resource's queue the moment its last
predecessor finishes, waking the server if it sleeps; tasks without a resource
(resource == -1) are pure delays and finish `duration_cycles` after they become ready.
A task with start-to-start successors releases each of them `lag` cycles after it
starts (a plain timeout per edge, like a finish).

The same-cycle subtlety, and the trick that solves it. The rule says every finish at
cycle t lands before any resource picks at cycle t. simpy orders its event queue by
(time, priority, insertion id), and everything simpy schedules itself (timeouts,
`succeed()`) has priority NORMAL (1). A server therefore never picks right after it
wakes up: it first yields an `EndOfCycle` event, which we schedule at the current time
with priority LATE (2). It fires only after every NORMAL event at this cycle, including
NORMAL events created while those run (a zero-delay task's finish scheduled by a finish
at t sorts as (t, 1, ...) < (t, 2, ...)). Once the first LATE event at t has fired no
finish at t can follow, because resource tasks last >= 1 cycle; picks of different
resources touch different queues, so their order among themselves does not matter.
When no event at all is pending at the current cycle, no finish can follow either, and
the server picks without the barrier (this saves one event per task in quiet stretches).
"""
from __future__ import annotations

from heapq import heappop, heappush

import numpy as np
import simpy
from simpy.events import Event

from simulator.engine.taskgraph import Schedule, TaskGraph, check_durations

LATE = 2  # below simpy's NORMAL (1) and URGENT (0): runs last among same-time events


class EndOfCycle(Event):
    """Fires at the current cycle once every NORMAL-priority event of this cycle has run."""

    def __init__(self, env: simpy.Environment):
        # Same initialisation as simpy's own Timeout, but scheduled at priority LATE.
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, LATE)


class _Machine:
    """The hardware as simpy sees it: one server process per resource, one ready queue each."""

    def __init__(self, tg: TaskGraph):
        self.env = simpy.Environment()
        self.resource = tg.resource.tolist()
        self.duration_cycles = tg.duration_cycles.tolist()
        self.successors = _successor_lists(tg)
        self.lag_ptr, self.lag_succ, self.lag_cycles = tg.lag_ptr.tolist(), tg.lag_succ.tolist(), tg.lag_cycles.tolist()
        self.preds_left = tg.in_degrees().tolist()
        self.start_cycles = [-1] * tg.n_tasks
        self.priority = None if tg.priority is None else tg.priority.tolist()
        self.ready_queues: list[list[tuple[int, ...]]] = [[] for _ in range(tg.n_resources)]
        self.wake_up: list[Event | None] = [None] * tg.n_resources  # set while a server sleeps
        for r in range(tg.n_resources):
            self.env.process(self._serve(r))
        for task in range(tg.n_tasks):
            if self.preds_left[task] == 0:
                self._make_ready(task)

    def _serve(self, r: int):
        """Serve resource r: wait for a ready task, pick the smallest at end of cycle, run it."""
        env = self.env
        queue = self.ready_queues[r]
        while True:
            if not queue:
                self.wake_up[r] = env.event()
                yield self.wake_up[r]
            if env.peek() == env.now:
                yield EndOfCycle(env)
            task = heappop(queue)[-1]
            self._start(task)
            yield env.timeout(self.duration_cycles[task])
            self._finish(task)

    def _make_ready(self, task: int) -> None:
        """All predecessors have finished: queue the task, or start the delay it stands for."""
        r = self.resource[task]
        if r >= 0:
            if self.priority is None:
                heappush(self.ready_queues[r], (self.env.now, task))
            else:
                heappush(self.ready_queues[r], (self.priority[task], self.env.now, task))
            sleeping = self.wake_up[r]
            if sleeping is not None:
                self.wake_up[r] = None
                sleeping.succeed()
            return
        self._start(task)
        delay = self.env.timeout(self.duration_cycles[task], value=task)
        delay.callbacks.append(self._finish_delay)

    def _start(self, task: int) -> None:
        """Record the start; release each start-to-start successor `lag` cycles later."""
        self.start_cycles[task] = self.env.now
        for k in range(self.lag_ptr[task], self.lag_ptr[task + 1]):
            self.env.timeout(self.lag_cycles[k], value=self.lag_succ[k]).callbacks.append(self._release_lag)

    def _release_lag(self, event: Event) -> None:
        self._release(event.value)

    def _finish_delay(self, event: Event) -> None:
        self._finish(event.value)

    def _release(self, succ: int) -> None:
        self.preds_left[succ] -= 1
        if self.preds_left[succ] == 0:
            self._make_ready(succ)

    def _finish(self, task: int) -> None:
        for succ in self.successors[task]:
            self._release(succ)


def _successor_lists(tg: TaskGraph) -> list[list[int]]:
    succ_ptr = tg.succ_ptr.tolist()
    succ_idx = tg.succ_idx.tolist()
    return [succ_idx[succ_ptr[task]:succ_ptr[task + 1]] for task in range(tg.n_tasks)]


def simulate(tg: TaskGraph) -> Schedule:
    """Run the task graph through simpy; returns the start cycle of every task."""
    check_durations(tg)
    machine = _Machine(tg)
    machine.env.run()
    start_cycles = np.asarray(machine.start_cycles, dtype=np.int64)
    if np.any(start_cycles < 0):
        raise ValueError("TaskGraph: some tasks never became ready (predecessor ids must be smaller)")
    finish = start_cycles + tg.duration_cycles
    makespan = int(finish.max()) if tg.n_tasks else 0
    return Schedule(start_cycles=start_cycles, makespan_cycles=makespan, engine="simpy")
