"""One timing run end to end: workload graph -> mapping -> task graph -> schedule -> report.

This is the glue every front end shares (`aimcsim run`, `compare`, `sweep`, the
regression benchmark), so that they all compute a figure the same way.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from simulator.engine import des, fast
from simulator.engine.taskgraph import Schedule, TaskGraph
from simulator.engine.lower import lower
from simulator.report.sequences import with_sequence_priority
from simulator.errors import UserError
from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph
from simulator.mapping.mapping import Mapping
from simulator.mapping.place import map_workload
from simulator.report.build import Report, build_report
from workloads.registry import build_graph, model_config

ENGINES = {"fast": fast.simulate, "des": des.simulate, "simpy": des.simulate}  # des = simpy
AUTO = "auto"  # chunk_tokens: pick the chunk size (choose_chunking)
AUTO_TASK_BUDGET = 300_000  # tasks per candidate run the auto chunking may simulate (~1 s each)
AUTO_MIN_GAIN = 0.01  # a smaller chunk must be 1 % faster than the best so far to be taken


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
                      mapping_strategy="all-analog", *, engine: str = "fast", batch: int = 1,
                      seq: int = 128, new_tokens: int = 16,
                      chunk_tokens: int | str | None = None,
                      task_budget: int = AUTO_TASK_BUDGET) -> SimulationRun:
    """Simulate `workload` on `hw` with the given mapping strategy (see map_workload).

    `chunk_tokens`: tokens per prefill/encoder chunk; None is one chunk (no pipelining),
    "auto" the chunk size that minimises latency within `task_budget` tasks per candidate
    (see `choose_chunking`; searched on the fast engine). Decode runs one token per step.
    """
    if engine not in ENGINES:
        raise UserError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    phase = phase or default_phase(workload)
    kw = dict(batch=batch, seq=seq, new_tokens=new_tokens)
    chunk_tokens, chunking = preset_chunk_tokens(hw, phase, chunk_tokens)
    if chunk_tokens == AUTO:
        chunk_tokens, tried = _auto_chunk_tokens(hw, workload, phase, mapping_strategy, task_budget, **kw)
        chunking = f"auto (tried {', '.join(map(str, tried))} tokens per chunk)" if tried else "auto"
    elif chunk_tokens is not None and (isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int)):
        raise UserError(f"--chunk-tokens: expected a positive integer or {AUTO}, got {chunk_tokens!r}")
    graph, mapping, tg = _lowered(hw, workload, phase, mapping_strategy, chunk_tokens, **kw)
    schedule = ENGINES[engine](tg)
    report = build_report(tg, schedule, graph, mapping, hw)
    if chunking:
        report = dataclasses.replace(report, workload=dict(report.workload, chunking=chunking))
    return SimulationRun(report, graph, mapping, tg, schedule)


def preset_chunk_tokens(hw: HwConfig, phase: str, chunk_tokens) -> tuple[int | str | None, str | None]:
    """(chunk_tokens, how it was chosen): `auto` becomes the preset's `system.chunk_tokens`
    where it sets one (a fabric that streams tokens one by one), for passes that chunk."""
    if chunk_tokens == AUTO and hw.system.chunk_tokens and phase != "decode":
        return hw.system.chunk_tokens, f"system.chunk_tokens: {hw.system.chunk_tokens} (the preset's granularity)"
    return chunk_tokens, None


def _lowered(hw: HwConfig, workload: str, phase: str, mapping_strategy, chunk_tokens: int | None,
             **graph_kw) -> tuple[Graph, Mapping, TaskGraph]:
    graph = build_graph(workload, phase, chunk_tokens=chunk_tokens, **graph_kw)
    mapping = map_workload(graph, hw, mapping_strategy)
    tg = lower(graph, mapping, hw)
    if hw.system.dispatch == "sequence_first" and graph.meta.get("sequence_op_start") is not None:
        tg = with_sequence_priority(tg, graph)  # a graph whose ops serve the whole batch: fifo
    return graph, mapping, tg


def _auto_chunk_tokens(hw: HwConfig, workload: str, phase: str, mapping_strategy, task_budget: int,
                       **graph_kw) -> tuple[int | None, list[int]]:
    """(chosen chunk_tokens, chunk sizes tried): the fastest on the fast engine within the budget."""
    if phase == "decode":
        return None, []
    seq = graph_kw["seq"]
    runs: list[tuple[int | None, int, int]] = []
    size: int | None = None
    while True:
        _, _, tg = _lowered(hw, workload, phase, mapping_strategy, size, **graph_kw)
        runs.append((size, tg.n_tasks, fast.simulate(tg).makespan_cycles))
        size = choose_chunking(runs, seq, task_budget)
        if size is None:
            break
    best = runs[0]
    for run in runs[1:]:  # the last size that was clearly faster than every larger one
        if run[2] <= (1 - AUTO_MIN_GAIN) * best[2]:
            best = run
    return best[0], [chunk or seq for chunk, _, _ in runs]


def chunk_candidates(seq: int) -> list[int | None]:
    """One chunk, then chunk sizes halving down to one token: 128 -> None, 64, 32, ..., 1."""
    sizes: list[int | None] = [None]
    size = seq
    while size > 1:
        size = math.ceil(size / 2)
        sizes.append(size)
    return sizes


def choose_chunking(runs: list[tuple[int | None, int, int]], seq: int, task_budget: int) -> int | None:
    """The next chunk size to try after `runs` [(chunk_tokens, tasks, latency_cycles)], or None to stop.

    Halve the chunk while latency improves by at least AUTO_MIN_GAIN and the task count,
    estimated as one chunk's tasks times the number of chunks, stays within the budget.
    Pipelining helps until per-chunk overheads (weights re-streamed per chunk, more
    transfers) win, so the first size that is not clearly faster ends the search.
    """
    tried = [chunk for chunk, _, _ in runs]
    if len(runs) >= 2 and runs[-1][2] > (1 - AUTO_MIN_GAIN) * min(latency for _, _, latency in runs[:-1]):
        return None
    one_chunk_tasks = runs[0][1]
    for size in chunk_candidates(seq)[1:]:
        if size in tried:
            continue
        chunks = math.ceil(seq / size)
        return size if one_chunk_tasks * chunks <= task_budget else None
    return None
