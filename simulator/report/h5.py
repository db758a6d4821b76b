"""HDF5 record of a run: the report and the per-task schedule, readable without the source.

Layout (docs/outputs.md has an h5py example):
  attrs: report_json (the full Report.to_dict()), hw_config_json (the resolved hardware
         config), command_line, created_by, description, plus the headline scalars
         (latency_ns, latency_cycles, tokens_per_s, energy_pj, n_tasks, engine, ...)
  schedule/start_cycle, duration_cycles, resource, kind, op  (one row per task)
  schedule/energy_pj  [n_tasks, n_components], attr `components` names the columns
  ops/name, ops/kind, ops/projection, ops/layer  (one row per graph op; schedule/op indexes it)
  resources/label, resources/kind, resources/static_power_mw  (schedule/resource indexes it)
Every dataset has `axes` (the name of each dimension), `units` where it has a unit, and
`names` on integer codes (the name each code stands for).
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import sys

import h5py
import numpy as np

from simulator import __version__
from simulator.atomic import atomic_output
from simulator.engine.taskgraph import ENERGY_COMPONENTS, RESOURCE_KINDS, TASK_KINDS, Schedule, TaskGraph
from simulator.report.build import Report

_SCALAR_ATTRS = ("latency_ns", "latency_cycles", "cycle_ns", "tokens_per_s", "energy_pj",
                 "energy_per_token_pj", "tiles_used", "n_tasks", "engine")


def describe_file(f: h5py.File, description: str, hw=None) -> None:
    """Provenance attributes every aimcsim HDF5 file carries."""
    f.attrs["description"] = description
    f.attrs["created_by"] = f"aimcsim {__version__}"
    from simulator import cli
    argv = cli.current_argv if cli.current_argv is not None else sys.argv[1:]
    f.attrs["command_line"] = shlex.join(["aimcsim", *map(str, argv)])
    if hw is not None:
        f.attrs["hw_config_json"] = json.dumps(dataclasses.asdict(hw))


def label_axes(group: h5py.Group, axes: dict[str, tuple[str, ...]],
               units: dict[str, str] | None = None) -> None:
    """Set `axes` (one name per dimension) and `units` on the named datasets of `group`."""
    for name, names in axes.items():
        if name in group:
            group[name].attrs["axes"] = list(names)
    for name, unit in (units or {}).items():
        if name in group:
            group[name].attrs["units"] = unit


def write_run_h5(report: Report, tg: TaskGraph, schedule: Schedule, path, *, graph=None,
                 hw=None) -> None:
    """Write the report and the schedule atomically (temp file, then rename)."""
    summary = report.to_dict()
    with atomic_output(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        describe_file(f, "aimcsim run: report and per-task schedule", hw)
        f.attrs["report_json"] = json.dumps(summary)
        for key in _SCALAR_ATTRS:
            if key in summary:
                f.attrs[key] = summary[key]
        tasks = f.create_group("schedule")
        tasks.create_dataset("start_cycle", data=schedule.start_cycles, compression="gzip")
        tasks.create_dataset("duration_cycles", data=tg.duration_cycles, compression="gzip")
        tasks.create_dataset("resource", data=tg.resource, compression="gzip").attrs["index_of"] = \
            "resources (-1: no resource, a pure delay)"
        tasks.create_dataset("kind", data=tg.task_kind, compression="gzip").attrs["names"] = list(TASK_KINDS)
        tasks.create_dataset("op", data=tg.task_op, compression="gzip").attrs["index_of"] = "ops (-1: none)"
        energy = tasks.create_dataset("energy_pj", data=tg.energy_pj, compression="gzip")
        energy.attrs["components"] = list(ENERGY_COMPONENTS)
        label_axes(tasks, {"start_cycle": ("task",), "duration_cycles": ("task",), "resource": ("task",),
                           "kind": ("task",), "op": ("task",), "energy_pj": ("task", "component")},
                   units={"start_cycle": "cycle", "duration_cycles": "cycle", "energy_pj": "pJ"})
        tasks.attrs["cycle_ns"] = tg.cycle_ns
        resources = f.create_group("resources")
        resources.create_dataset("label", data=np.array(tg.resource_label, dtype=h5py.string_dtype()))
        resources.create_dataset("kind", data=tg.resource_kind).attrs["names"] = list(RESOURCE_KINDS)
        resources.create_dataset("static_power_mw", data=tg.static_power_mw)
        label_axes(resources, dict.fromkeys(("label", "kind", "static_power_mw"), ("resource",)),
                   units={"static_power_mw": "mW"})
        if graph is not None:
            _write_ops(f.create_group("ops"), graph)


def _write_ops(ops: h5py.Group, graph) -> None:
    """The op table `schedule/op` indexes: name, kind, projection (LINEAR ops), layer."""
    kinds = sorted({op.kind for op in graph.ops})
    code = {kind: i for i, kind in enumerate(kinds)}
    strings = h5py.string_dtype()
    ops.create_dataset("name", data=np.array([op.name for op in graph.ops], dtype=strings),
                       compression="gzip")
    ops.create_dataset("kind", data=np.array([code[op.kind] for op in graph.ops], dtype=np.int8),
                       compression="gzip").attrs["names"] = kinds
    ops.create_dataset("projection", data=np.array([op.projection for op in graph.ops], dtype=strings),
                       compression="gzip")
    ops.create_dataset("layer", data=np.array([op.layer for op in graph.ops], dtype=np.int32),
                       compression="gzip").attrs["note"] = "transformer block, -1 outside blocks"
    label_axes(ops, dict.fromkeys(("name", "kind", "projection", "layer"), ("op",)))
