"""What adapters cost on the chip: inference overhead and the cost of adapting.

* Inference: the same workload and mapping simulated without and with the adapter ops
  (`simulator.adapt.graph`), end to end and per transformer layer (a layer's latency is
  the span from its first task's start to its last task's end; its energy the sum of its
  tasks' energies).
* Adaptation (switching task or compensating drift): LoRA loads the adapter bytes from
  DRAM into the SRAM of each adapted projection's reduction core (DRAM latency + channel
  streaming, then the NoC route to the core; DRAM, NoC and SRAM-write energy); AHWA
  reprograms every analog tile of the mapping (program_time_per_tile_us and
  program_energy_per_tile_nj per tile, tiles one after another; their weights streamed
  from DRAM too).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from simulator.adapt.graph import with_adapter_placements, with_adapters
from simulator.engine.lower import lower
from simulator.hw.schema import HwConfig
from simulator.interconnect.cost import hop_cost
from simulator.interconnect.mesh import build_topology
from simulator.mapping.mapping import Mapping
from simulator.mapping.place import map_workload
from simulator.memory.cost import dram_access_cost, dram_latency_cycles
from simulator.report.build import build_report
from simulator.run import ENGINES, default_phase
from workloads.registry import build_graph


@dataclass(frozen=True)
class AdaptationCost:
    """Time and energy to put a new adaptation on the chip."""

    method: str
    time_ns: float
    energy_pj: float
    nbytes: int  # bytes moved from DRAM
    tiles: int  # tiles reprogrammed (AHWA)

    def to_dict(self) -> dict:
        return asdict(self)


def adapter_bytes(ranks: dict[str, int], graph, weight_bytes: int) -> dict[str, int]:
    """Adapter weight bytes per projection: (r * in + out * r) * weight_bytes."""
    by_name = {p.name: p for p in graph.projections}
    return {name: (rank * by_name[name].in_features + by_name[name].out_features * rank) * weight_bytes
            for name, rank in ranks.items()}


def lora_load_cost(hw: HwConfig, mapping: Mapping, per_projection_bytes: dict[str, int]) -> AdaptationCost:
    """DRAM -> NoC -> SRAM of each adapter's core. The DRAM channel streams the adapters one
    after another in model order; each then crosses the NoC to its core (store and forward,
    per hop); the load is done when the last one arrives."""
    clock = hw.system.clock_ghz
    topology = build_topology(hw)
    total = int(sum(per_projection_bytes.values()))
    streamed_cycles, done_cycles, noc_pj = 0, 0, 0.0
    for placement in mapping.placements:
        nbytes = per_projection_bytes.get(placement.projection)
        if nbytes is None:
            continue
        streamed_cycles += dram_access_cost(hw.memory, clock, nbytes)[0]
        hops = len(topology.route(topology.dram_node, topology.core_node(placement.cores[0])))
        cycles, hop_energy = hop_cost(hw.interconnect, nbytes)
        noc_pj += hops * hop_energy["noc"]
        done_cycles = max(done_cycles, streamed_cycles + hops * cycles)
    cycles = dram_latency_cycles(hw.memory, clock) + done_cycles
    energy_pj = (dram_access_cost(hw.memory, clock, total)[1]["dram"] + noc_pj
                 + total * hw.digital.sram_energy_pj_per_byte)
    return AdaptationCost("lora", cycles * hw.system.cycle_ns, energy_pj, total, 0)


def reprogram_cost(hw: HwConfig, mapping: Mapping, graph) -> AdaptationCost:
    """Every analog tile of the mapping programmed again (one after another), new weights from DRAM."""
    tiles = sum(p.row_blocks * p.col_blocks * p.replicas for p in mapping.placements if p.is_analog)
    weights = sum(graph.projection(p.projection).weights for p in mapping.placements if p.is_analog)
    nbytes = weights * hw.digital.weight_bytes
    stream_cycles, energy = dram_access_cost(hw.memory, hw.system.clock_ghz, nbytes)
    analog = hw.analog
    time_ns = tiles * analog.program_time_per_tile_us * 1000.0
    time_ns = max(time_ns, (dram_latency_cycles(hw.memory, hw.system.clock_ghz) + stream_cycles) * hw.system.cycle_ns)
    energy_pj = tiles * analog.program_energy_per_tile_nj * 1000.0 + energy["dram"]
    return AdaptationCost("hwa", time_ns, energy_pj, nbytes, tiles)


@dataclass(frozen=True)
class LayerFigures:
    latency_ns: dict[int, float]
    energy_pj: dict[int, float]


def per_layer(tg, schedule, graph) -> LayerFigures:
    """Span and energy of each transformer layer's tasks (-1: outside blocks, e.g. lm_head)."""
    layer_of_op = np.array([op.layer for op in graph.ops], dtype=np.int64)
    on_op = tg.task_op >= 0
    layers = layer_of_op[tg.task_op[on_op]]
    start = schedule.start_cycles[on_op]
    end = start + tg.duration_cycles[on_op]
    energy = tg.energy_pj[on_op].sum(axis=1)
    latency, energies = {}, {}
    for layer in np.unique(layers).tolist():
        mine = layers == layer
        latency[layer] = float((end[mine].max() - start[mine].min()) * tg.cycle_ns)
        energies[layer] = float(energy[mine].sum())
    return LayerFigures(latency, energies)


def simulate_with_adapters(hw: HwConfig, workload: str, ranks: dict[str, int], phase: str | None = None,
                           mapping_strategy="all-analog", *, engine: str = "simpy", **graph_args) -> dict:
    """Timing of `workload` on `hw` without and with adapters on the same mapping, the overhead
    end to end and per layer, and the adaptation cost of LoRA (adapter load) and AHWA (reprogram)."""
    phase = phase or default_phase(workload)
    graph = build_graph(workload, phase, **graph_args)
    mapping = map_workload(graph, hw, mapping_strategy)
    adapted_graph = with_adapters(graph, ranks)
    adapted_mapping = with_adapter_placements(mapping, adapted_graph)
    runs = {}
    for label, g, m in (("without", graph, mapping), ("with", adapted_graph, adapted_mapping)):
        tg = lower(g, m, hw)
        schedule = ENGINES[engine](tg)
        report = build_report(tg, schedule, g, m, hw)
        runs[label] = (report, per_layer(tg, schedule, g))
    base, adapted = runs["without"][0], runs["with"][0]
    layers = sorted(runs["without"][1].latency_ns)
    overhead = {str(layer): {
        "latency_ns": runs["without"][1].latency_ns[layer],
        "latency_with_ns": runs["with"][1].latency_ns[layer],
        "latency_overhead": runs["with"][1].latency_ns[layer] / runs["without"][1].latency_ns[layer] - 1.0,
        "energy_pj": runs["without"][1].energy_pj[layer],
        "energy_with_pj": runs["with"][1].energy_pj[layer],
        "energy_overhead": runs["with"][1].energy_pj[layer] / runs["without"][1].energy_pj[layer] - 1.0,
    } for layer in layers}
    per_bytes = adapter_bytes(ranks, graph, hw.digital.weight_bytes)
    block_layers = [v for k, v in overhead.items() if int(k) >= 0]
    return {
        "workload": workload, "phase": phase, "hw": hw.name,
        "adapted_projections": len(ranks), "adapter_bytes": int(sum(per_bytes.values())),
        "without": base.to_dict(), "with": adapted.to_dict(),
        "latency_overhead": adapted.latency_ns / base.latency_ns - 1.0,
        "energy_overhead": adapted.energy_pj / base.energy_pj - 1.0,
        "per_layer": overhead,
        "median_block_latency_overhead": float(np.median([v["latency_overhead"] for v in block_layers]))
        if block_layers else 0.0,
        "adaptation_cost": {"lora": lora_load_cost(hw, adapted_mapping, per_bytes).to_dict(),
                            "hwa": reprogram_cost(hw, mapping, graph).to_dict()},
    }


def adapter_ranks(adapters) -> dict[str, int]:
    """projection -> rank of a LoRA AdapterFile ({} for AHWA: nothing extra at inference)."""
    if adapters.method != "lora":
        return {}
    return {name: int(adapters.tensors[f"{name}.lora_A"].shape[1]) for name in adapters.projections()}


def check_adapter_shapes(adapters, graph) -> None:
    """LoRA tensors must fit the graph's projections: one-line UserError naming the first misfit."""
    from simulator.adapt.graph import check_adapters_fit
    from simulator.errors import UserError
    ranks = adapter_ranks(adapters)
    check_adapters_fit(graph, ranks, adapters.path)
    for name in ranks:
        p = graph.projection(name)
        a, b = adapters.tensors[f"{name}.lora_A"], adapters.tensors[f"{name}.lora_B"]
        if a.dim() != 3 or b.dim() != 3 or a.shape[2] != p.in_features or b.shape[1] != p.out_features \
                or b.shape[2] != a.shape[1]:
            raise UserError(f"{adapters.path}: {name}: adapter shapes A {tuple(a.shape)}, B {tuple(b.shape)} do not "
                            f"fit the {p.in_features} -> {p.out_features} projection of {graph.model}")


def format_overhead(result: dict) -> str:
    """The adapter overhead and adaptation cost, as printed by `aimcsim run --adapters`."""
    without, with_ = result["without"], result["with"]
    lines = [f"\nadapters: {result['adapted_projections']} projection(s), {result['adapter_bytes']} bytes in SRAM",
             f"{'':>12}  {'latency us':>12}  {'energy uJ':>12}",
             f"{'without':>12}  {without['latency_ns'] / 1e3:>12.3f}  {without['energy_pj'] / 1e6:>12.3f}",
             f"{'with':>12}  {with_['latency_ns'] / 1e3:>12.3f}  {with_['energy_pj'] / 1e6:>12.3f}",
             f"{'overhead':>12}  {100 * result['latency_overhead']:>+11.2f}%  {100 * result['energy_overhead']:>+11.2f}%"]
    blocks = [(int(k), v) for k, v in result["per_layer"].items() if int(k) >= 0]
    if blocks:
        latency = [v["latency_overhead"] for _, v in blocks]
        energy = [v["energy_overhead"] for _, v in blocks]
        lines.append(f"per block ({len(blocks)}): latency overhead median {100 * float(np.median(latency)):+.2f}% "
                     f"(range {100 * min(latency):+.2f}..{100 * max(latency):+.2f}%), energy median "
                     f"{100 * float(np.median(energy)):+.2f}%")
    lora, hwa = result["adaptation_cost"]["lora"], result["adaptation_cost"]["hwa"]
    lines += ["adaptation cost (switch task / compensate drift):",
              f"  LoRA: load {lora['nbytes']} adapter bytes into SRAM: {lora['time_ns'] / 1e3:.2f} us, "
              f"{lora['energy_pj'] / 1e6:.3f} uJ",
              f"  AHWA: reprogram {hwa['tiles']} analog tiles: {hwa['time_ns'] / 1e6:.2f} ms, "
              f"{hwa['energy_pj'] / 1e6:.1f} uJ"]
    if lora["time_ns"] > 0 and lora["energy_pj"] > 0:
        lines.append(f"  AHWA / LoRA: {hwa['time_ns'] / lora['time_ns']:.3g}x time, "
                     f"{hwa['energy_pj'] / lora['energy_pj']:.3g}x energy")
    return "\n".join(lines)
