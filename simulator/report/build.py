"""The run report: what a schedule means in latency, energy and utilisation, and why.

Pure functions of (TaskGraph, Schedule, Graph, Mapping, HwConfig); the same schedule
always gives the same report, whichever engine produced it. Static energy is the
resources' static power (tiles, cores, their SRAM) drawn for the whole makespan, busy or
idle (mW x ns = pJ). Beside the figures the report carries what explains them: the
workload's shape, which projections fell back to digital and why, the critical path by
kind of work (the bottleneck), the programming share and the analytical lower bounds.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from simulator.engine.taskgraph import ENERGY_COMPONENTS, RESOURCE_KINDS, TASK_KINDS, Schedule, TaskGraph
from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph
from simulator.mapping.mapping import Mapping
from simulator.report.ops import achieved_tops, achieved_tops_per_w, workload_ops
from simulator.report.sequences import sequence_latency_summary
from simulator.mapping.place import block_grid
from simulator.report.bounds import lower_bound
from simulator.report.critical_path import critical_path

PROGRAMMING_WARN_SHARE = 0.5  # `aimcsim run` warns above this share of latency or energy


@dataclass(frozen=True)
class Report:
    workload: dict  # model, phase, batch, tokens, prompt_tokens, new_tokens, chunk_tokens, chunks
    hw: dict  # name, source
    engine: str
    n_tasks: int
    cycle_ns: float
    latency_cycles: int
    energy_breakdown_pj: dict  # component -> pJ; "program" only when nonzero
    tiles_used: int
    utilisation: dict  # resource kind -> count, busy_fraction, per_resource {label: fraction}
    mapping: dict  # projection -> "analog" | "digital"
    static_power_mw: dict = field(default_factory=dict)  # tiles, cores, sram, ...: drawn busy or idle
    fallbacks: dict = field(default_factory=dict)  # digital projection -> why it is not analog
    critical_path: dict = field(default_factory=dict)  # CriticalPath.to_dict()
    programming: dict = field(default_factory=dict)  # latency/energy share, tile programmings
    bound: dict = field(default_factory=dict)  # Bound.to_dict() plus the simulated/bound ratios
    memory: dict = field(default_factory=dict)  # bytes per level, SRAM occupancy (from the lowering)
    ops: int = 0  # 2 x MACs of the workload (simulator.report.ops)
    # per sequence of a batch, first MVM to last task (simulator.report.sequences): first, mean,
    # max and per_sequence in ns; empty for graphs that do not record their sequences
    sequence_latency_ns: dict = field(default_factory=dict)

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
            "static_power_mw": dict(self.static_power_mw),
            "fallbacks": dict(self.fallbacks),
            "critical_path": copy.deepcopy(self.critical_path),
            "programming": dict(self.programming),
            "bound": copy.deepcopy(self.bound),
            "memory": copy.deepcopy(self.memory),
            "sequence_latency_ns": copy.deepcopy(self.sequence_latency_ns),
        }

    def programming_warnings(self) -> list[str]:
        """One line per figure (latency, energy) of which programming takes more than half."""
        lines = []
        for figure in ("latency", "energy"):
            share = self.programming.get(f"{figure}_share", 0.0)
            if share > PROGRAMMING_WARN_SHARE:
                lines.append(f"warning: weight programming is {100 * share:.0f} % of the {figure} "
                             f"({self.programming.get('tile_programmings', 0):,} tile programmings); "
                             "more tiles, fewer analog projections or analog.multiplexing: "
                             "resident_subset avoid reprogramming")
        return lines


def static_power_mw(tg: TaskGraph, sram_static_power_mw_per_core: float = 0.0) -> dict[str, float]:
    """Static power drawn whether busy or idle, per part of the chip: tiles, cores, SRAM, links, DRAM.

    Tile and core (logic) power come from the task graph's resources; every core's SRAM
    leaks `sram_static_power_mw_per_core` on top (the lowering does not carry it).
    """
    by_kind = {}
    for kind_id, kind in enumerate(RESOURCE_KINDS):
        members = tg.resource_kind == kind_id
        if members.any():
            by_kind[f"{kind}s" if kind != "dram" else kind] = float(tg.static_power_mw[members].sum())
    n_cores = int(np.count_nonzero(tg.resource_kind == RESOURCE_KINDS.index("core")))
    by_kind["sram"] = n_cores * float(sram_static_power_mw_per_core)
    return by_kind


def energy_breakdown_pj(tg: TaskGraph, makespan_cycles: int,
                        sram_static_power_mw_per_core: float = 0.0) -> dict[str, float]:
    """Task energy per component plus static energy (idle resources included) over the makespan."""
    per_component = tg.energy_pj.sum(axis=0) if tg.n_tasks else np.zeros(len(ENERGY_COMPONENTS))
    breakdown = {name: float(per_component[i]) for i, name in enumerate(ENERGY_COMPONENTS)}
    static_mw = sum(static_power_mw(tg, sram_static_power_mw_per_core).values())
    breakdown["static"] = static_mw * makespan_cycles * tg.cycle_ns  # mW x ns = pJ
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


def workload_summary(graph: Graph) -> dict:
    """The workload's shape: what was run, over how many tokens, in how many chunks."""
    meta = graph.meta or {}
    chunk_tokens = meta.get("chunk_tokens")
    decode = graph.phase == "decode"
    return {
        "model": graph.model, "phase": graph.phase, "batch": graph.batch, "tokens": graph.tokens,
        "prompt_tokens": meta.get("seq"),
        "new_tokens": meta.get("new_tokens") if decode else 0,
        "chunk_tokens": None if decode else chunk_tokens,
        "chunks": len({op.chunk for op in graph.ops}) if not decode else None,
    }


def fallback_reasons(graph: Graph, mapping: Mapping, hw: HwConfig) -> dict[str, str]:
    """Why each digital projection is not analog, in the terms of the capacity rule that decided it."""
    reasons = {}
    analog = hw.analog
    used_before = 0  # tiles taken by the analog projections earlier in model order (one round)
    for projection in graph.projections:
        placement = mapping.placement(projection.name)
        rows, cols = block_grid(projection, analog)
        blocks = rows * cols
        if placement.is_analog:
            used_before += len(placement.tiles)
            continue
        if mapping.strategy == "all-digital":
            reasons[projection.name] = "all-digital mapping"
        elif mapping.strategy != "all-analog":
            reasons[projection.name] = f"the {mapping.strategy} mapping places it digital"
        elif analog.tiles == 0:
            reasons[projection.name] = "no analog tiles (analog.tiles=0)"
        elif blocks > analog.tiles:
            reasons[projection.name] = (f"needs {blocks} tiles of {analog.rows}x{analog.cols}, "
                                        f"more than the chip's {analog.tiles}")
        elif not analog.allow_time_multiplexing:
            reasons[projection.name] = (f"needs {blocks} tiles, {max(0, analog.tiles - used_before)} "
                                        "free after the analog projections before it "
                                        "(analog.allow_time_multiplexing: false)")
        elif getattr(analog, "multiplexing", "") == "resident_subset":
            reasons[projection.name] = (f"needs {blocks} tiles, {max(0, analog.tiles - used_before)} "
                                        "free after the analog projections before it "
                                        "(analog.multiplexing: resident_subset never reprograms)")
        else:
            reasons[projection.name] = "not placed analog by the mapping"
    return reasons


def programming_summary(tg: TaskGraph, path: dict, breakdown_pj: dict, makespan_cycles: int,
                        hw: HwConfig) -> dict:
    """How much of the latency (critical path) and energy is weight programming, and the wear.

    One run is one inference; a tile programming writes each of its devices once, so the
    most-programmed tile's count is the write cycles per device per inference. With
    `analog.device.endurance_cycles` set, the inferences until that device wears out.
    """
    is_program = tg.task_kind == TASK_KINDS.index("program")
    total_pj = sum(breakdown_pj.values())
    program_cycles = path.get("by_task_kind", {}).get("program", 0)
    per_tile = np.bincount(tg.resource[is_program & (tg.resource >= 0)], minlength=tg.n_resources)
    writes_per_device = int(per_tile.max(initial=0))
    endurance = getattr(hw.analog.device, "endurance_cycles", None)
    return {
        "tile_programmings": int(np.count_nonzero(is_program)),
        "latency_share": program_cycles / makespan_cycles if makespan_cycles else 0.0,
        "energy_share": breakdown_pj.get("program", 0.0) / total_pj if total_pj else 0.0,
        "energy_pj": breakdown_pj.get("program", 0.0),
        "writes_per_device_per_inference": writes_per_device,
        "endurance_cycles": endurance,
        "inferences_to_wear_out": (endurance / writes_per_device if endurance and writes_per_device else None),
    }


def memory_summary(tg: TaskGraph) -> dict:
    """Bytes per level and SRAM occupancy per core, when the lowering records them (`TaskGraph.memory`)."""
    memory = getattr(tg, "memory", None)
    if memory is None:
        return {}
    core_labels = [label for label, kind in zip(tg.resource_label, tg.resource_kind)
                   if kind == RESOURCE_KINDS.index("core")]
    resident = list(memory.resident_bytes)
    return {
        "bytes_per_level": {"sram": int(memory.sram_bytes), "dram": int(memory.dram_bytes),
                            "noc_byte_hops": int(memory.noc_byte_hops)},
        "sram_capacity_bytes": int(memory.sram_capacity_bytes),
        "sram_resident_bytes_per_core": dict(zip(core_labels, (int(b) for b in resident))),
        "sram_weight_bytes_per_core": dict(zip(core_labels, (int(b) for b in memory.weight_resident_bytes))),
        "sram_kv_bytes_per_core": dict(zip(core_labels, (int(b) for b in memory.kv_resident_bytes))),
        "sram_activation_bytes_per_core": dict(zip(core_labels, (int(b) for b in memory.activation_bytes))),
        "weight_streamed_bytes": int(memory.weight_streamed_bytes),
        "program_bytes": int(getattr(memory, "program_bytes", 0)),
    }


def build_report(tg: TaskGraph, schedule: Schedule, graph: Graph, mapping: Mapping, hw: HwConfig,
                 *, with_bound: bool = True) -> Report:
    """Summarise one timing run for tables, JSON, HDF5 and comparisons."""
    analog_tiles = {tile for p in mapping.placements if p.is_analog for tile in p.tiles}
    makespan = schedule.makespan_cycles
    sram_mw = hw.digital.sram_static_power_mw
    breakdown = energy_breakdown_pj(tg, makespan, sram_mw)
    path = critical_path(tg, schedule, graph, frozenset(mapping.analog_projections())).to_dict()
    bound = {}
    if with_bound:
        bound = lower_bound(graph, mapping, hw).to_dict()
        latency_ns = makespan * tg.cycle_ns
        bound["latency_ratio"] = latency_ns / bound["latency_ns"] if bound["latency_ns"] else None
        energy_pj = sum(breakdown.values())
        bound["energy_ratio"] = energy_pj / bound["energy_pj"] if bound["energy_pj"] else None
    return Report(
        workload=workload_summary(graph),
        hw={"name": hw.name, "source": hw.source},
        engine=schedule.engine,
        n_tasks=tg.n_tasks,
        cycle_ns=tg.cycle_ns,
        latency_cycles=makespan,
        energy_breakdown_pj=breakdown,
        tiles_used=len(analog_tiles),
        utilisation=utilisation(tg, makespan),
        mapping=mapping.targets(),
        static_power_mw=static_power_mw(tg, sram_mw),
        fallbacks=fallback_reasons(graph, mapping, hw),
        critical_path=path,
        programming=programming_summary(tg, path, breakdown, makespan, hw),
        bound=bound,
        memory=memory_summary(tg),
        ops=workload_ops(graph),
        sequence_latency_ns=sequence_latency_summary(tg, schedule, graph),
    )
