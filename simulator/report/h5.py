"""HDF5 record of a run: the report and the per-task schedule, for later analysis.

Layout:
  attrs: report_json (the full Report.to_dict()), plus the headline scalars
         (latency_ns, latency_cycles, tokens_per_s, energy_pj, n_tasks, engine, ...)
  schedule/start_cycle, duration_cycles, resource, kind, op  (one row per task)
  schedule/energy_pj  [n_tasks, n_components], attr `components` names the columns
  resources/label, resources/kind, resources/static_power_mw
  attrs of schedule/kind and resources/kind list the names the integers index.
"""
from __future__ import annotations

import json

import h5py
import numpy as np

from simulator.engine.taskgraph import ENERGY_COMPONENTS, RESOURCE_KINDS, TASK_KINDS, Schedule, TaskGraph
from simulator.atomic import atomic_output
from simulator.report.build import Report

_SCALAR_ATTRS = ("latency_ns", "latency_cycles", "cycle_ns", "tokens_per_s", "energy_pj",
                 "energy_per_token_pj", "tiles_used", "n_tasks", "engine")


def write_run_h5(report: Report, tg: TaskGraph, schedule: Schedule, path) -> None:
    """Write the report and the schedule atomically (temp file, then rename)."""
    summary = report.to_dict()
    with atomic_output(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["report_json"] = json.dumps(summary)
        for key in _SCALAR_ATTRS:
            f.attrs[key] = summary[key]
        tasks = f.create_group("schedule")
        tasks.create_dataset("start_cycle", data=schedule.start_cycles, compression="gzip")
        tasks.create_dataset("duration_cycles", data=tg.duration_cycles, compression="gzip")
        tasks.create_dataset("resource", data=tg.resource, compression="gzip")
        tasks.create_dataset("kind", data=tg.task_kind, compression="gzip").attrs["names"] = list(TASK_KINDS)
        tasks.create_dataset("op", data=tg.task_op, compression="gzip")
        energy = tasks.create_dataset("energy_pj", data=tg.energy_pj, compression="gzip")
        energy.attrs["components"] = list(ENERGY_COMPONENTS)
        resources = f.create_group("resources")
        resources.create_dataset("label", data=np.array(tg.resource_label, dtype=h5py.string_dtype()))
        resources.create_dataset("kind", data=tg.resource_kind).attrs["names"] = list(RESOURCE_KINDS)
        resources.create_dataset("static_power_mw", data=tg.static_power_mw)
