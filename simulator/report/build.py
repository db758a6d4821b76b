"""The run report: what a schedule means in latency, energy and utilisation.

Pure functions of (TaskGraph, Schedule, Graph, Mapping, HwConfig); the same schedule
always gives the same report, whichever engine produced it. Static energy is the
resources' static power drawn for the whole makespan (mW x ns = pJ).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from simulator.engine.taskgraph import ENERGY_COMPONENTS, RESOURCE_KINDS, Schedule, TaskGraph
from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph
from simulator.mapping.mapping import Mapping
from simulator.report.ops import achieved_tops, achieved_tops_per_w, workload_ops


@dataclass(frozen=True)
class Report:
    workload: dict  # model, phase, batch, tokens
    hw: dict  # name, source
    engine: str
    n_tasks: int
    cycle_ns: float
    latency_cycles: int
    energy_breakdown_pj: dict  # component -> pJ; "program" only when nonzero
    tiles_used: int
    utilisation: dict  # resource kind -> count, busy_fraction, per_resource {label: fraction}
    mapping: dict  # projection -> "analog" | "digital"
    ops: int = 0  # 2 x MACs of the workload (simulator.report.ops)

    @property
    def latency_ns(self) -> float:
        return self.latency_cycles * self.cycle_ns

    @property
    def tokens_per_s(self) -> float:
        """Throughput of the phase; 0 for an empty schedule (no time, no rate)."""
        return self.workload["tokens"] / (self.latency_ns * 1e-9) if self.latency_cycles else 0.0

    @property
    def energy_pj(self) -> float:
        return float(sum(self.energy_breakdown_pj.values()))

    def to_dict(self) -> dict:
        """A JSON-ready copy: every figure of the report, derived ones included."""
        return {
            "latency_ns": self.latency_ns,
            "latency_cycles": self.latency_cycles,
            "cycle_ns": self.cycle_ns,
            "tokens_per_s": self.tokens_per_s,
            "energy_pj": self.energy_pj,
            "energy_per_token_pj": self.energy_pj / self.workload["tokens"] if self.workload["tokens"] else 0.0,
            "energy_breakdown_pj": dict(self.energy_breakdown_pj),
            "achieved_tops": achieved_tops(self.ops, self.latency_ns),
            "achieved_tops_per_w": achieved_tops_per_w(self.ops, self.energy_pj),
            "tiles_used": self.tiles_used,
            "utilisation": copy.deepcopy(self.utilisation),
            "mapping": dict(self.mapping),
            "n_tasks": self.n_tasks,
            "engine": self.engine,
            "workload": dict(self.workload),
            "hw": dict(self.hw),
        }


def energy_breakdown_pj(tg: TaskGraph, makespan_cycles: int) -> dict[str, float]:
    """Task energy per component plus static energy over the makespan."""
    per_component = tg.energy_pj.sum(axis=0) if tg.n_tasks else np.zeros(len(ENERGY_COMPONENTS))
    breakdown = {name: float(per_component[i]) for i, name in enumerate(ENERGY_COMPONENTS)}
    breakdown["static"] = float(tg.static_power_mw.sum()) * makespan_cycles * tg.cycle_ns
    if breakdown["program"] == 0.0:  # only time-multiplexed mappings reprogram tiles
        del breakdown["program"]
    return breakdown


def busy_cycles(tg: TaskGraph) -> np.ndarray:
    """Cycles each resource spends running tasks (the schedule cannot change this, only spread it)."""
    on_resource = tg.resource >= 0
    return np.bincount(tg.resource[on_resource], weights=tg.duration_cycles[on_resource],
                       minlength=tg.n_resources)


def utilisation(tg: TaskGraph, makespan_cycles: int) -> dict:
    """Per resource kind: busy cycles / (count x makespan), and the same per resource."""
    busy = busy_cycles(tg)
    result = {}
    for kind_id, kind in enumerate(RESOURCE_KINDS):
        members = np.flatnonzero(tg.resource_kind == kind_id)
        if members.size == 0:
            continue
        fraction = busy[members] / makespan_cycles if makespan_cycles else np.zeros(members.size)
        result[kind] = {
            "count": int(members.size),
            "busy_fraction": float(fraction.mean()),
            "per_resource": {tg.resource_label[r]: float(f) for r, f in zip(members, fraction)},
        }
    return result


def build_report(tg: TaskGraph, schedule: Schedule, graph: Graph, mapping: Mapping, hw: HwConfig) -> Report:
    """Summarise one timing run for tables, JSON, HDF5 and comparisons."""
    analog_tiles = {tile for p in mapping.placements if p.is_analog for tile in p.tiles}
    return Report(
        workload={"model": graph.model, "phase": graph.phase, "batch": graph.batch, "tokens": graph.tokens},
        hw={"name": hw.name, "source": hw.source},
        engine=schedule.engine,
        n_tasks=tg.n_tasks,
        cycle_ns=tg.cycle_ns,
        latency_cycles=schedule.makespan_cycles,
        energy_breakdown_pj=energy_breakdown_pj(tg, schedule.makespan_cycles),
        tiles_used=len(analog_tiles),
        utilisation=utilisation(tg, schedule.makespan_cycles),
        mapping=mapping.targets(),
        ops=workload_ops(graph),
    )
