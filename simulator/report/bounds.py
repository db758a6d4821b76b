"""Analytical lower bounds on latency and energy, computed from the graph, the mapping and the
hardware's peak rates only, never from the task graph, so that every simulated figure can be
held against a floor it must not beat.

Latency terms (the bound is the largest; it "binds"):
- `dependency`: the longest chain of ops, each at its own floor on the resources it may use
  (an analog Linear: one MVM per token of a replica, one after another on a tile, or its
  busiest reduction core's share of the partial-sum additions if that is longer; a digital
  Linear: its MACs on its core group; any other digital op: its work spread over as many
  cores as the config lets it use (one without `digital.split_ops`; else attention one head
  per core, LayerNorm one token row per core, the rest every core); an embedding: the DRAM
  latency plus its bytes at full bandwidth; a KV access: its bytes through the SRAM ports of
  as many cores, by the same rule). Transfers cost nothing here. In prefill and
  encoder passes each op counts one token of each sequence (its share of the op's work),
  because the tokens can pipeline through the layers: the floor then holds for any
  chunking of the same pass.
- `tiles`: the busiest tile's MVMs plus its reprogrammings.
- `cores`: all digital work at every core's peak rate, perfectly balanced; without
  `digital.split_ops`, at least, on any core, the shortest chain to one of its unsplittable
  ops (each whole on the first core of the Linear it follows), all their work and the
  shortest chain after one of them.
- `sram`: the resident digital weights (once per pass) and the KV entries held in SRAM
  (every read), through every core's SRAM port at once.
- `dram`: the bytes that must cross the DRAM interface, at full bandwidth.
- `noc_dram_port`: the DRAM bytes through the links of the DRAM controller's node (a DRAM
  byte reaches a core or a tile over the network), as many as its grid neighbours.
- `noc_ejection`: the partial sums each reduction core must take in, through all its links
  (as many as its grid neighbours).
- `noc_bisection`: the partial sums that must cross the mesh's middle; on a bus, every byte
  that must move between nodes (tile inputs, partial sums, DRAM bytes) on the one link.

What must reach DRAM: the embedding rows; digital weights that the cores' SRAM cannot hold,
once per pass over the model (every decode step is a pass, a prefill is one pass in the best
order); the KV cache beyond the SRAM the resident weights leave free; the weights of every
reprogrammed tile. Energy terms are the dynamic energy of the same work at the config's
unit costs, plus the static power over the latency bound.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from simulator.analog import tile_cost
from simulator.engine.lower import DRAM_OPS, op_anchors
from simulator.hw.schema import HwConfig
from simulator.interconnect.mesh import build_topology
from simulator.ir.graph import Graph, Op, OpKind
from simulator.mapping.mapping import Mapping, Placement

LATENCY_TERMS = ("dependency", "tiles", "cores", "sram", "dram", "noc_dram_port", "noc_ejection",
                 "noc_bisection")


@dataclass(frozen=True)
class Bound:
    latency_ns: float
    latency_terms_ns: dict[str, float]
    binding: str  # the latency term that sets latency_ns
    energy_pj: float
    energy_terms_pj: dict[str, float]
    counts: dict[str, float]  # mvms, adc_conversions, dram_bytes, noc_partial_sum_bytes, ...

    def to_dict(self) -> dict:
        return {"latency_ns": self.latency_ns, "latency_terms_ns": dict(self.latency_terms_ns),
                "binding": self.binding, "energy_pj": self.energy_pj,
                "energy_terms_pj": dict(self.energy_terms_pj), "counts": dict(self.counts)}


@dataclass(frozen=True)
class _DigitalWork:
    cycles_one_core: float  # the op's work at one core's peak rate
    energy_pj: float


@dataclass
class _OpWork:
    """What one op adds to the resource and energy terms, and its own floor on the chain."""

    floor_ns: float = 0.0
    core_cycles: float = 0.0
    dram_bytes: float = 0.0
    bisection_bytes: float = 0.0
    energy_pj: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    tile_cycles: list = field(default_factory=list)  # (tiles, cycles each)
    reduce_bytes: dict = field(default_factory=dict)  # reduction core -> partial-sum bytes into it


def _signature(op: Op) -> tuple:
    """The fields an op's work depends on (not its id, name, chunk or deps)."""
    return (op.kind, op.projection, op.tokens, op.in_features, op.out_features, op.has_bias,
            op.macs, op.elements, op.dram_elements)


def _op_work(op: Op, graph: Graph, placements: dict, hw: HwConfig, topology, mvm_cycles: int,
             pipelined: bool, kv_excess: float) -> _OpWork:
    d, mem, f = hw.digital, hw.memory, hw.system.clock_ghz
    act = d.activation_bytes
    share = graph.batch / op.tokens if pipelined and op.tokens > graph.batch else 1.0
    w = _OpWork()
    if op.kind == OpKind.LINEAR:
        p = placements[op.projection]
        if p.is_analog:
            w.floor_ns, w.core_cycles = _analog_linear(op, p, hw, mvm_cycles, w)
            if pipelined:  # one token per sequence through one tile
                busiest_share = _busiest_reduction_share(op, p, hw.analog)
                w.floor_ns = max(math.ceil(graph.batch / p.replicas) * mvm_cycles,
                                 w.core_cycles * share * busiest_share) / f
            w.reduce_bytes, w.bisection_bytes = _partial_sum_traffic(op, p, hw, topology)
            w.counts["noc_partial_sum_bytes"] = sum(w.reduce_bytes.values())
        else:
            bias_ops = op.tokens * op.out_features if op.has_bias else 0
            w.core_cycles = op.macs / d.macs_per_cycle + bias_ops / d.simd_lanes
            w.floor_ns = w.core_cycles * share / len(p.cores) / f
            w.energy_pj["digital_mac"] = op.macs * d.mac_energy_pj + bias_ops * d.simd_op_energy_pj
            w.counts["digital_macs"] = op.macs
    elif op.kind == OpKind.EMBEDDING:
        w.dram_bytes = op.dram_elements * act
        w.floor_ns = mem.dram_latency_ns + w.dram_bytes * share / mem.dram_bandwidth_gb_s
    elif op.kind in (OpKind.KV_READ, OpKind.KV_WRITE):
        # on the chain at SRAM speed: which entries spill is a placement choice (the bytes
        # beyond the SRAM are in the dram term)
        w.floor_ns = op.dram_elements * act * share / (_cores_for(op, hw, share) * d.sram_bytes_per_cycle) / f
        if op.kind == OpKind.KV_READ and not kv_excess:
            w.counts["sram_kv_bytes"] = op.dram_elements * act
    else:
        work = _digital_work(op, hw)
        w.core_cycles = work.cycles_one_core
        w.floor_ns = work.cycles_one_core * share / _cores_for(op, hw, share) / f
        component = "special_function" if op.kind in (OpKind.SOFTMAX, OpKind.LAYERNORM, OpKind.GELU) \
            else "digital_mac"
        w.energy_pj[component] = work.energy_pj
        if op.kind == OpKind.MATMUL:
            w.counts["digital_macs"] = op.macs
    return w


def _unsplit_core_ns(graph: Graph, placements: dict, hw: HwConfig, works: dict, floor_ns: np.ndarray,
                     head_ns: np.ndarray) -> float:
    """Without `digital.split_ops` each non-Linear digital op runs whole on one core, the
    first core of the Linear it follows (the lowering's rule, `op_anchors`); a digital
    Linear's MACs are split evenly over its core group. A core can start none of its ops
    before the shortest chain that reaches one of them (`head_ns`), and after its last piece
    of work the rest of the chain from that op still runs: per core, the shortest head + all
    its work + the shortest tail, at most over the cores. 0 with split ops."""
    if hw.digital.split_ops:
        return 0.0
    f = hw.system.clock_ghz
    tail = np.zeros(len(graph.ops))
    for op in reversed(graph.ops):
        for dep in op.deps:
            tail[dep] = max(tail[dep], floor_ns[op.id] + tail[op.id])
    anchor = op_anchors(graph)
    load = np.zeros(hw.digital.cores)
    first = np.full(hw.digital.cores, np.inf)
    last = np.full(hw.digital.cores, np.inf)
    for op in graph.ops:
        if op.kind == OpKind.LINEAR:
            p = placements[op.projection]
            if p.is_analog:
                continue
            cores = list(p.cores)  # a digital Linear's MACs are split evenly over its group
            share = works[_signature(op)].core_cycles / len(cores) / f
        elif op.kind not in DRAM_OPS:  # whole on the first core of its anchor (none: core 0)
            cores = [placements[graph.ops[anchor[op.id]].projection].cores[0] if anchor[op.id] >= 0 else 0]
            share = works[_signature(op)].core_cycles / f
        else:
            continue
        load[cores] += share
        first[cores] = np.minimum(first[cores], head_ns[op.id])
        last[cores] = np.minimum(last[cores], tail[op.id])
    used = load > 0
    return float((first[used] + load[used] + last[used]).max(initial=0.0))


def _cores_for(op: Op, hw: HwConfig, share: float) -> int:
    """The most cores a non-Linear digital op (or a KV access, through their SRAM ports) can
    be split over, by the config's own rule, for its `share` of the tokens: one without
    `digital.split_ops`; with it, attention and the KV cache one head per core at most,
    LayerNorm one token row per core at most, anything else every core."""
    cores = hw.digital.cores
    if not hw.digital.split_ops:
        return 1
    if op.heads > 0:
        return min(op.heads, cores)
    if op.kind == OpKind.LAYERNORM:
        return max(1, min(math.ceil(op.tokens * share), cores))
    return cores


def _digital_work(op: Op, hw: HwConfig) -> _DigitalWork:
    """Work of a non-Linear digital op at one core's peak rates (continuous cycles)."""
    d = hw.digital
    n = op.elements
    if op.kind == OpKind.MATMUL:
        return _DigitalWork(op.macs / d.macs_per_cycle, op.macs * d.mac_energy_pj)
    if op.kind == OpKind.SOFTMAX:
        return _DigitalWork(n / d.exp_per_cycle + 4 * n / d.simd_lanes,
                            n * d.special_function_energy_pj + 4 * n * d.simd_op_energy_pj)
    if op.kind == OpKind.LAYERNORM:
        return _DigitalWork(n / d.layernorm_elems_per_cycle, n * d.special_function_energy_pj)
    if op.kind == OpKind.GELU:
        return _DigitalWork(n / d.gelu_per_cycle, n * d.special_function_energy_pj)
    if op.kind == OpKind.NONORM:
        return _DigitalWork(2 * n / d.simd_lanes, 2 * n * d.simd_op_energy_pj)
    if op.kind in (OpKind.ADD, OpKind.RELU):
        return _DigitalWork(n / d.simd_lanes, n * d.simd_op_energy_pj)
    return _DigitalWork(0.0, 0.0)


def _block_shapes(size: int, block: int) -> list[int]:
    """Sizes of the blocks a dimension of `size` splits into (the last one ragged)."""
    full, rest = divmod(size, block)
    return [block] * full + ([rest] if rest else [])


def _reprogrammings_per_tile(mapping: Mapping, passes: int, n_tiles: int) -> np.ndarray:
    """Times each tile is written when every pass runs the programming rounds in order.

    At time 0 a tile holds its round-0 weights; a tile that serves rounds S is rewritten at
    every change of round, so |S| times per pass when |S| > 1 (one fewer if it starts in
    round 0 already), and once if it serves one round other than 0.
    """
    rounds_of_tile: list[set[int]] = [set() for _ in range(n_tiles)]
    for p in mapping.placements:
        if p.is_analog:
            for tile, tile_round in zip(p.tiles, p.tile_rounds()):  # per block: a split projection spans rounds
                rounds_of_tile[tile].add(tile_round)
    counts = np.zeros(n_tiles)
    for tile, rounds in enumerate(rounds_of_tile):
        if len(rounds) > 1:
            counts[tile] = passes * len(rounds) - (1 if 0 in rounds else 0)
        elif rounds and 0 not in rounds:
            counts[tile] = 1
    return counts


def lower_bound(graph: Graph, mapping: Mapping, hw: HwConfig) -> Bound:
    """The floors of the module docstring for one (graph, mapping, hw)."""
    a, d, mem = hw.analog, hw.digital, hw.memory
    f = hw.system.clock_ghz
    placements = {p.projection: p for p in mapping.placements}
    mvm_cycles = max(1, math.ceil(round(tile_cost.mvm_latency_ns(a) * f, 6))) if a.tiles else 0
    dram_bytes_per_ns = mem.dram_bandwidth_gb_s  # GB/s = bytes/ns
    act = d.activation_bytes
    passes = max(1, len({op.chunk for op in graph.ops})) if graph.phase == "decode" else 1

    digital_weight_bytes = sum(pr.weights for pr in graph.projections
                               if not placements[pr.name].is_analog) * d.weight_bytes
    sram_bytes = d.cores * d.sram_kib * 1024
    streamed_weight_bytes = max(0, digital_weight_bytes - sram_bytes)
    free_sram_bytes = max(0, sram_bytes - digital_weight_bytes)
    kv_excess = _kv_bytes_beyond_sram(graph, act, free_sram_bytes)

    tile_busy_cycles = np.zeros(max(a.tiles, 1))
    core_cycles = 0.0  # all digital work at one core's rate
    energy = dict.fromkeys(("array", "dac", "adc", "digital_mac", "special_function", "sram", "dram",
                            "noc", "program", "static"), 0.0)
    counts = dict.fromkeys(("mvms", "adc_conversions", "digital_macs", "dram_bytes", "sram_kv_bytes",
                            "noc_partial_sum_bytes", "tile_programmings"), 0.0)
    reduce_bytes_into_core = np.zeros(d.cores)
    bisection_bytes = 0.0
    topology = build_topology(hw)
    floor_ns = np.zeros(len(graph.ops))  # each op's own floor, for the dependency chain
    dram_bytes = streamed_weight_bytes * passes + kv_excess
    energy["sram"] += (digital_weight_bytes - streamed_weight_bytes) * passes * d.sram_energy_pj_per_byte

    pipelined = graph.phase != "decode"
    works: dict[tuple, _OpWork] = {}
    multiplicity: dict[tuple, int] = {}
    for op in graph.ops:
        key = _signature(op)
        if key not in works:
            works[key] = _op_work(op, graph, placements, hw, topology, mvm_cycles, pipelined, kv_excess)
        multiplicity[key] = multiplicity.get(key, 0) + 1
        floor_ns[op.id] = works[key].floor_ns
    for key, work in works.items():
        n = multiplicity[key]
        core_cycles += n * work.core_cycles
        dram_bytes += n * work.dram_bytes
        bisection_bytes += n * work.bisection_bytes
        for name, pj in work.energy_pj.items():
            energy[name] += n * pj
        for name, value in work.counts.items():
            counts[name] += n * value
        for tiles, cycles in work.tile_cycles:
            tile_busy_cycles[list(tiles)] += n * cycles
        for core, nbytes in work.reduce_bytes.items():
            reduce_bytes_into_core[core] += n * nbytes

    program_counts = _reprogrammings_per_tile(mapping, passes, a.tiles) if a.tiles else np.zeros(1)
    program_cycles = max(1, math.ceil(round(a.program_time_per_tile_us * 1000 * f, 6)))
    tile_busy_cycles = tile_busy_cycles + program_counts * (program_cycles if program_counts.any() else 0)
    programmings = float(program_counts.sum())
    counts["tile_programmings"] = programmings
    energy["program"] = programmings * a.program_energy_per_tile_nj * 1000.0
    dram_bytes += programmings * a.rows * a.cols * d.weight_bytes
    counts["dram_bytes"] = float(dram_bytes)
    energy["dram"] = dram_bytes * mem.dram_energy_pj_per_byte

    head_ns = _chain_heads_ns(graph, floor_ns)
    terms = {
        "dependency": float((head_ns + floor_ns).max(initial=0.0)),
        "tiles": float(tile_busy_cycles.max()) / f if a.tiles else 0.0,
        "cores": max(core_cycles / d.cores / f, _unsplit_core_ns(graph, placements, hw, works, floor_ns, head_ns)),
        "sram": ((digital_weight_bytes - streamed_weight_bytes) * passes + counts["sram_kv_bytes"])
        / (d.cores * d.sram_bytes_per_cycle) / f,
        "dram": dram_bytes / dram_bytes_per_ns,
        "noc_dram_port": dram_bytes / (_node_links(topology, [topology.dram_node])[0]
                                       * hw.interconnect.link_bytes_per_cycle) / f,
        "noc_ejection": _ejection_ns(reduce_bytes_into_core, hw, topology),
        "noc_bisection": _bisection_ns(bisection_bytes, counts["noc_partial_sum_bytes"] + dram_bytes,
                                       graph, placements, hw),
    }
    binding = max(LATENCY_TERMS, key=lambda name: terms[name])
    latency_ns = terms[binding]
    static_mw = (a.tiles * tile_cost.tile_static_power_mw(a)
                 + d.cores * (d.static_power_mw + d.sram_static_power_mw))
    energy["static"] = static_mw * latency_ns
    energy["noc"] += _input_noc_energy_pj(graph, placements, hw)
    return Bound(latency_ns, terms, binding, float(sum(energy.values())), energy, counts)


def _analog_linear(op: Op, p: Placement, hw: HwConfig, mvm_cycles: int, w: _OpWork) -> tuple[float, float]:
    """One analog Linear's MVMs on its tiles, energy and reduction; (its floor in ns, reduction cycles)."""
    a, d = hw.analog, hw.digital
    per_replica = math.ceil(op.tokens / p.replicas)
    n_rows = math.ceil(op.in_features / a.rows)
    blocks = n_rows * math.ceil(op.out_features / a.cols)
    for k in range(p.replicas):
        tokens_k = min(per_replica, max(0, op.tokens - k * per_replica))
        w.tile_cycles.append((tuple(p.tiles[k * blocks:(k + 1) * blocks]), tokens_k * mvm_cycles))
    for name, pj in _mvm_energy_per_token_pj(a, op.in_features, op.out_features).items():
        w.energy_pj[name] = op.tokens * pj
    w.counts["mvms"] = op.tokens * blocks
    w.counts["adc_conversions"] = op.tokens * n_rows * op.out_features
    reduce_ops = op.tokens * op.out_features * (n_rows + (1 if op.has_bias else 0))
    w.energy_pj["digital_mac"] = reduce_ops * d.simd_op_energy_pj
    reduce_cycles = reduce_ops / d.simd_lanes
    # the busiest reduction core takes its column blocks' share of the reduction
    busiest_share = _busiest_reduction_share(op, p, a)
    t_ns = max(per_replica * mvm_cycles, reduce_cycles * busiest_share) / hw.system.clock_ghz
    return t_ns, reduce_cycles


def _busiest_reduction_share(op: Op, p: Placement, a) -> float:
    """Fraction of the projection's outputs its busiest reduction core reduces."""
    outputs = _outputs_per_reduction_core(op, p, a)
    return max(outputs.values()) / op.out_features if outputs else 0.0


def _outputs_per_reduction_core(op: Op, p: Placement, a) -> dict[int, int]:
    """Output columns each reduction core reduces: column block c belongs to group
    c // ceil(col_blocks / len(cores)), reduced on cores[group] (mapping.py)."""
    cols = _block_shapes(op.out_features, a.cols)
    per_group = math.ceil(len(cols) / len(p.cores))
    outputs: dict[int, int] = {}
    for c, width in enumerate(cols):
        core = p.cores[c // per_group]
        outputs[core] = outputs.get(core, 0) + width
    return outputs


@functools.lru_cache(maxsize=4096)
def _mvm_energy_per_token_pj(a, in_features: int, out_features: int) -> dict[str, float]:
    """MVM energy of one token through every block of an in x out projection."""
    total: dict[str, float] = {}
    for r in _block_shapes(in_features, a.rows):
        for c in _block_shapes(out_features, a.cols):
            for name, pj in tile_cost.mvm_energy_pj(a, r, c).items():
                total[name] = total.get(name, 0.0) + pj
    return total


def _partial_sum_traffic(op: Op, p: Placement, hw: HwConfig, topology) -> tuple[dict[int, float], float]:
    """(partial-sum bytes into each reduction core, bytes of them crossing the mesh middle)."""
    a, act = hw.analog, hw.digital.activation_bytes
    cols = _block_shapes(op.out_features, a.cols)
    n_rows = math.ceil(op.in_features / a.rows)
    blocks = n_rows * len(cols)
    per_group = math.ceil(len(cols) / len(p.cores))
    block_core = [p.cores[(i % len(cols)) // per_group] for i in range(blocks)]  # row-block major
    per_replica = math.ceil(op.tokens / p.replicas)
    into: dict[int, float] = {}
    crossing = 0.0
    mesh = hw.interconnect.topology == "mesh"
    if mesh:
        width, height = _mesh_shape(topology)
        cx, cy = topology.node_xy([topology.core_node(c) for c in block_core])
    for k in range(p.replicas):
        tokens_k = min(per_replica, max(0, op.tokens - k * per_replica))
        block_bytes = np.array([tokens_k * cols[i % len(cols)] * act for i in range(blocks)], dtype=float)
        for core, nbytes in zip(block_core, block_bytes):
            into[core] = into.get(core, 0.0) + float(nbytes)
        if mesh:
            tiles = p.tiles[k * blocks:(k + 1) * blocks]
            tx, ty = topology.node_xy([topology.tile_node(t) for t in tiles])
            crosses = ((tx < width / 2) != (cx < width / 2)) | ((ty < height / 2) != (cy < height / 2))
            crossing += float(block_bytes[crosses].sum())
    return into, crossing


def _mesh_shape(topology) -> tuple[int, int]:
    x, y = topology.node_xy(list(range(topology.n_nodes)))
    return int(x.max()) + 1, int(y.max()) + 1


def _node_links(topology, nodes) -> np.ndarray:
    """Links into (equally, out of) each node: its grid neighbours on a mesh (2 at a corner,
    3 on an edge, 4 inside; every grid position is a router), the one link of a bus."""
    if topology.kind != "mesh":
        return np.ones(len(nodes))
    x, y = topology.node_xy(nodes)
    return ((x > 0).astype(int) + (x < topology.cols - 1) + (y > 0) + (y < topology.rows - 1)).astype(float)


def _ejection_ns(bytes_into_core: np.ndarray, hw: HwConfig, topology) -> float:
    """Partial sums into each reduction core through all its input links at once: the slowest."""
    links = _node_links(topology, [topology.core_node(c) for c in range(len(bytes_into_core))])
    return float((bytes_into_core / links).max(initial=0.0)) / hw.interconnect.link_bytes_per_cycle \
        / hw.system.clock_ghz


def _bisection_ns(crossing_bytes: float, bus_bytes: float, graph: Graph, placements: dict,
                  hw: HwConfig) -> float:
    """Bytes over the mesh middle at the links that cut it (both directions), or on a bus
    `bus_bytes` (partial sums and DRAM bytes) plus the tiles' inputs on the one link."""
    ic, f = hw.interconnect, hw.system.clock_ghz
    if ic.topology == "bus":
        inputs = sum(op.tokens * op.in_features for op in graph.ops if op.kind == OpKind.LINEAR
                     and placements[op.projection].is_analog) * hw.digital.activation_bytes
        return (bus_bytes + inputs) / ic.link_bytes_per_cycle / f
    width, height = _mesh_shape(build_topology(hw))
    # a vertical and a horizontal cut, both directions: 2 * (height + width) links in all
    cut_links = 2 * (height + width)
    return crossing_bytes / (cut_links * ic.link_bytes_per_cycle) / f


def _input_noc_energy_pj(graph: Graph, placements: dict, hw: HwConfig) -> float:
    """Every tile takes its input slice over at least one link (and every partial sum at least one hop)."""
    a, act = hw.analog, hw.digital.activation_bytes
    pj = 0.0
    for op in graph.ops:
        if op.kind != OpKind.LINEAR or not placements[op.projection].is_analog:
            continue
        n_cols = math.ceil(op.out_features / a.cols)
        n_rows = math.ceil(op.in_features / a.rows)
        pj += op.tokens * (op.in_features * n_cols + op.out_features * n_rows) * act
    return pj * hw.interconnect.energy_pj_per_byte_hop


def _kv_bytes_beyond_sram(graph: Graph, act: int, free_sram_bytes: int) -> float:
    """KV bytes that must reach DRAM: each step's cache reads beyond the free SRAM, and the
    writes that push the cache past it."""
    by_step: dict[int, list[float]] = {}
    for op in graph.ops:
        if op.kind in (OpKind.KV_READ, OpKind.KV_WRITE):
            row = by_step.setdefault(op.chunk, [0.0, 0.0])
            row[op.kind == OpKind.KV_WRITE] += op.dram_elements * act
    total, cache = 0.0, 0.0
    for step in sorted(by_step):
        reads, writes = by_step[step]
        cache = max(cache, reads)
        total += max(0.0, reads - free_sram_bytes)
        total += max(0.0, cache + writes - free_sram_bytes) - max(0.0, cache - free_sram_bytes)
        cache += writes
    return total


def _chain_heads_ns(graph: Graph, floor_ns: np.ndarray) -> np.ndarray:
    """Each op's earliest start on the dependency chain of per-op floors (ops in topological order)."""
    head = np.zeros(len(graph.ops))
    for op in graph.ops:
        head[op.id] = max((head[dep] + floor_ns[dep] for dep in op.deps), default=0.0)
    return head
