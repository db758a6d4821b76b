"""One timing run end to end: workload graph -> mapping -> task graph -> schedule -> report.

This is the glue every front end shares (`aimcsim run`, `compare`, `sweep`, the
regression benchmark), so that they all compute a figure the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.engine import des, fast
from simulator.engine.taskgraph import Schedule, TaskGraph
from simulator.engine.lower import lower
from simulator.errors import UserError
from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph
from simulator.mapping.mapping import Mapping
from simulator.mapping.place import map_workload
from simulator.report.build import Report, build_report
from workloads.registry import build_graph, model_config

ENGINES = {"simpy": des.simulate, "fast": fast.simulate}


@dataclass(frozen=True)
class SimulationRun:
    """Everything one timing run produced, for reports, traces and follow-up analysis."""

    report: Report
    graph: Graph
    mapping: Mapping
    task_graph: TaskGraph
    schedule: Schedule


def default_phase(workload: str) -> str:
    """Decoders default to prefill, encoders to their single pass."""
    family, _ = model_config(workload)
    return "prefill" if family == "gpt2" else "encoder"


def simulate_workload(hw: HwConfig, workload: str, phase: str | None = None,
                      mapping_strategy="all-analog", *, engine: str = "simpy", batch: int = 1,
                      seq: int = 128, new_tokens: int = 16,
                      chunk_tokens: int | None = None) -> SimulationRun:
    """Simulate `workload` on `hw` with the given mapping strategy (see map_workload)."""
    if engine not in ENGINES:
        raise UserError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    phase = phase or default_phase(workload)
    graph = build_graph(workload, phase, batch=batch, seq=seq, new_tokens=new_tokens,
                        chunk_tokens=chunk_tokens)
    mapping = map_workload(graph, hw, mapping_strategy)
    tg = lower(graph, mapping, hw)
    schedule = ENGINES[engine](tg)
    report = build_report(tg, schedule, graph, mapping, hw)
    return SimulationRun(report, graph, mapping, tg, schedule)
