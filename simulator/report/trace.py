"""Chrome trace-event JSON of a schedule: one timeline row per resource, opens in Perfetto.

Each task is a complete ("X") event in microseconds on the thread of its resource, its
task kind as category and, when the Graph is given, its op name in args. Tasks without
a resource (pure delays, e.g. DRAM latency) share one extra row. Real graphs run to
millions of tasks, which no viewer opens comfortably, so at most `max_events` tasks are
written: the earliest by start cycle (a prefix of the timeline, not a thinned sample).
`otherData` records how many tasks there were and how many were written.
"""
from __future__ import annotations

import json

import numpy as np

from simulator.engine.taskgraph import TASK_KINDS, Schedule, TaskGraph
from simulator.ir.graph import Graph
from simulator import __version__
from simulator.atomic import atomic_output

DEFAULT_MAX_EVENTS = 200_000  # about 30 MB of JSON
_PID = 0


def trace_events(tg: TaskGraph, schedule: Schedule, graph: Graph | None = None,
                 max_events: int = DEFAULT_MAX_EVENTS) -> list[dict]:
    """Metadata events naming each row, then one "X" event per written task."""
    delay_row = tg.n_resources
    events = [{"ph": "M", "pid": _PID, "name": "process_name", "args": {"name": "aimcsim"}}]
    for row, label in enumerate(tg.resource_label + ("delays (no resource)",)):
        events.append({"ph": "M", "pid": _PID, "tid": row, "name": "thread_name", "args": {"name": label}})
        events.append({"ph": "M", "pid": _PID, "tid": row, "name": "thread_sort_index",
                       "args": {"sort_index": row}})
    written = np.argsort(schedule.start_cycles, kind="stable")[:max_events]
    us_per_cycle = tg.cycle_ns / 1000.0
    for task, start, duration, resource, kind, op in zip(
            written.tolist(), schedule.start_cycles[written].tolist(), tg.duration_cycles[written].tolist(),
            tg.resource[written].tolist(), tg.task_kind[written].tolist(), tg.task_op[written].tolist()):
        args = {"task": task, "op": op}
        if graph is not None and op >= 0:
            args["op_name"] = graph.ops[op].name
        events.append({"ph": "X", "pid": _PID, "tid": resource if resource >= 0 else delay_row,
                       "name": args.get("op_name", TASK_KINDS[kind]), "cat": TASK_KINDS[kind],
                       "ts": start * us_per_cycle, "dur": duration * us_per_cycle, "args": args})
    return events


def write_chrome_trace(tg: TaskGraph, schedule: Schedule, path, *, graph: Graph | None = None,
                       max_events: int = DEFAULT_MAX_EVENTS) -> None:
    """Write the timeline atomically; see the module docstring for the event cap."""
    payload = {
        "traceEvents": trace_events(tg, schedule, graph, max_events),
        "displayTimeUnit": "ns",
        "otherData": {"engine": schedule.engine, "tasks": tg.n_tasks,
                      "tasks_written": min(tg.n_tasks, max_events), "cycle_ns": tg.cycle_ns,
                      "created_by": f"aimcsim {__version__}", "command_line": _command_line()},
    }
    with atomic_output(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(payload, f, separators=(",", ":"))


def _command_line() -> str:
    import shlex
    import sys

    from simulator import cli
    argv = cli.current_argv if cli.current_argv is not None else sys.argv[1:]
    return shlex.join(["aimcsim", *map(str, argv)])
