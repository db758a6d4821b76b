"""Lowering: (Graph, Mapping, HwConfig) -> TaskGraph.

Every op becomes a *fragment*: its tasks with fragment-local ids, the transfers that
bring its inputs to where it runs included. Predecessors outside the fragment are
*imports* (position of the producer in op.deps, producer-local task id), resolved to
global ids when the fragments are concatenated. A fragment depends only on the op's
work (not its id, name, chunk or deps), its placement and where its inputs come from,
so `Lowerer` builds it once and reuses it for every token chunk with the same work
and for every mapping that places the op alike; assembly is a handful of numpy
concatenations and offset arithmetic. That keeps a mapping search cheap and makes
one-token chunks of a long sequence cost a dictionary lookup per op.

Policies (formulas in docs/timing_model.md):
- A digital non-Linear op runs on the reduction core (`cores[0]`) of the Linear its
  latest non-DRAM producer chain leads to (`_anchor_linear`), so it sits where its input
  was reduced; core 0 if there is none. Embedding and KV-cache ops run at the DRAM
  controller node.
- Data stays where it was delivered: a single-node consumer (any op but Linear) whose
  input an earlier op on the same node already received (K/V of earlier chunks in
  attention) gets no new transfer; it waits for that earlier consumer instead, so a
  layer's attention chains chunk to chunk (O(chunks) edges, not O(chunks^2)).
- A consumer receives the whole output of each dependency (its share of it when the
  consumer is split over tiles or token replicas) as one multicast tree per output
  piece: one transfer task per tree link, each slice carried once per link.
- Analog Linear: inputs to every tile of its blocks, one MVM task per block and replica
  (tokens sequential MVMs), partial sums gathered to the reduction core `cores[0]` (one
  task per link of the merged routes, carrying every partial sum that crosses it), one
  reduce task (scale, accumulate row blocks, bias) whose output is the op's output.
- Digital Linear on a core group: one task per core, each computing a slice of the output
  columns; weights from DRAM also hold the DRAM channel (see `_digital_linear`).
- Time multiplexing (`program_rounds > 1`): see `_program_tasks`; projections split over
  rounds are lowered as their parts (`simulator.engine.split`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple
from collections import Counter
from itertools import chain

import numpy as np
from numba import njit

from simulator.analog import tile_cost
from simulator.digital import cost as digital_cost
from simulator.engine.taskgraph import (
    ENERGY_COMPONENTS, RESOURCE_KINDS, TASK_KINDS, TaskGraph, lag_csr, successors_from_predecessors,
)
from simulator.errors import UserError
from simulator.hw.schema import HwConfig
from simulator.interconnect.cost import forward_lags, hop_cycles_many
from simulator.interconnect.mesh import MergedRoutes, build_topology
from simulator.ir.graph import Graph, Op, OpKind
from simulator.mapping.mapping import Mapping, Placement
from simulator.engine.memory_plan import MemoryTraffic, plan_weights, split_evenly
from simulator.engine.programming import ProgramUnits, program_units
from simulator.engine import split
from simulator.memory.cost import dram_latency_cycles, dram_stream_cycles, ns_to_cycles

_ENERGY = {name: i for i, name in enumerate(ENERGY_COMPONENTS)}
_KIND = {name: i for i, name in enumerate(TASK_KINDS)}
_NO_RESOURCE = -1
_FRAGMENT_CACHE_LIMIT = 200_000  # entries; the cache restarts empty beyond this
_WIRING_CACHE_LIMIT = 64  # distinct reduction-core choices kept (a search revisits few)

_SPECIAL_COSTS = {  # op kind -> (cost function of elements, task kind)
    OpKind.SOFTMAX: (digital_cost.softmax_cost, "special"),
    OpKind.LAYERNORM: (digital_cost.layernorm_cost, "special"),
    OpKind.GELU: (digital_cost.gelu_cost, "special"),
    OpKind.NONORM: (digital_cost.nonorm_cost, "elementwise"),
    OpKind.RELU: (digital_cost.relu_cost, "elementwise"),
    OpKind.ADD: (digital_cost.add_cost, "elementwise"),
}
DRAM_OPS = (OpKind.EMBEDDING, OpKind.KV_READ, OpKind.KV_WRITE)
_ELEMENTWISE = (OpKind.GELU, OpKind.RELU, OpKind.ADD, OpKind.NONORM)
_TOKEN_FEEDBACK_BYTES = 8  # per token: the sampled id and its score go back to the embedding
# what a fragment depends on: every Op field but its identity and wiring
_WORK_FIELDS = tuple(f.name for f in fields(Op) if f.name not in ("id", "name", "deps", "chunk"))


# Axes along which an output piece holds part of its op's output (or a consumer slice needs
# part of its input): the whole of it, output columns (features), token rows, attention heads.
WHOLE, COLS, ROWS, HEADS = 0, 1, 2, 3


class OutputPiece(NamedTuple):
    """Part of an op's output: where it sits, its size, the local tasks that produce it,
    and which part it is: [lo, hi) of `total` along `axis` (WHOLE: all of it). A named
    tuple: lowering makes tens of thousands, and they key the fragment caches."""

    node: int
    nbytes: int
    ready: tuple[int, ...]
    axis: int = WHOLE
    lo: int = 0
    hi: int = 1
    total: int = 1


@dataclass(frozen=True)
class Slices:
    """Where a digital non-Linear op runs: slice j on `cores[j]`, covering [bounds[j],
    bounds[j + 1]) of `total` along `axis` (heads, token rows or output columns)."""

    cores: tuple[int, ...]
    axis: int = WHOLE
    bounds: tuple[int, ...] = (0, 1)
    total: int = 1

    @property
    def count(self) -> int:
        return len(self.cores)


@dataclass(frozen=True)
class _Need:
    """What each destination needs of every input piece: [lo, hi) of `total` along `axis`,
    times tok_num / tok_den of the tokens (one entry per destination)."""

    axis: int
    lo: np.ndarray
    hi: np.ndarray
    total: int
    tok_num: np.ndarray
    tok_den: int

    @classmethod
    def whole(cls, n: int, tok_num: int = 1, tok_den: int = 1) -> _Need:
        return cls(WHOLE, np.zeros(n, np.int64), np.ones(n, np.int64), 1, np.full(n, tok_num, np.int64), tok_den)

    @classmethod
    def of_slices(cls, slices: Slices) -> _Need:
        bounds = np.array(slices.bounds, dtype=np.int64)
        return cls(slices.axis, bounds[:-1], bounds[1:], slices.total, np.ones(slices.count, np.int64), 1)

    def bytes_of_pieces(self, pieces) -> np.ndarray:
        """[piece, destination] bytes each destination needs of each piece, rounded up. Parts
        along the same axis take their overlap (heads convert to columns when the columns
        are whole heads); otherwise a destination takes its fraction of every piece. One
        vector pass over all pieces: lowering asks this for tens of thousands of pieces."""
        axis = np.array([p.axis for p in pieces], dtype=np.int64)
        lo = np.array([p.lo for p in pieces], dtype=np.int64)
        hi = np.array([p.hi for p in pieces], dtype=np.int64)
        total = np.array([p.total for p in pieces], dtype=np.int64)
        nbytes = np.array([p.nbytes for p in pieces], dtype=np.int64)[:, None]
        heads_as_cols = (axis == HEADS) & (self.axis == COLS) & (self.total % total == 0)
        scale = np.where(heads_as_cols, self.total // total, 1)
        axis = np.where(heads_as_cols, COLS, axis)
        lo, hi, total = lo * scale, hi * scale, np.where(heads_as_cols, self.total, total)
        same_axis = (axis == self.axis) & (axis != WHOLE) & (total == self.total)
        overlap = np.maximum(0, np.minimum(self.hi[None, :], hi[:, None]) - np.maximum(self.lo[None, :], lo[:, None]))
        num = np.where(same_axis[:, None], overlap, (self.hi - self.lo)[None, :]) * self.tok_num[None, :]
        den = np.where(same_axis, hi - lo, self.total)[:, None] * self.tok_den
        return -(-(nbytes * num) // den)


@dataclass(frozen=True)
class Fragment:
    """The tasks of one op. edge_pred >= 0 is a local id; -(k+1) is import k, the task
    import_task[k] of the fragment of op.deps[import_dep[k]]. Edges are sorted by edge_task."""

    resource: np.ndarray  # int32, global resource ids
    duration_cycles: np.ndarray  # int64
    energy_pj: np.ndarray  # float64 [n, len(ENERGY_COMPONENTS)]
    task_kind: np.ndarray  # int8
    edge_task: np.ndarray  # int64 local id of the waiting task
    edge_pred: np.ndarray  # int64 local id or encoded import
    import_dep: np.ndarray  # int64 position of the producer in op.deps per import
    import_task: np.ndarray  # int64 producer-local task id per import
    outputs: tuple[OutputPiece, ...]
    entries: tuple[int, ...]  # per slice of a sliced op, the local task that waits for its inputs
    mvm_tasks: np.ndarray  # int64 local ids of MVM tasks (for reprogramming order)
    mvm_tiles: np.ndarray  # int64 tile of each MVM task
    mvm_cells: np.ndarray  # int64 weights (active rows x columns) on the tile of each MVM task
    lag_task: np.ndarray  # int64 local id of a task that may start lag_cycles after ...
    lag_pred: np.ndarray  # int64 ... this local task started (start-to-start edges)
    lag_cycles: np.ndarray  # int64
    bytes_moved: tuple[int, int, int]  # (SRAM, DRAM, NoC byte-hops) of the fragment's tasks

    def with_costs(self, duration_cycles: np.ndarray, energy_pj: np.ndarray,
                   outputs: tuple[OutputPiece, ...], lag_cycles: np.ndarray | None,
                   bytes_moved: tuple[int, int, int]) -> Fragment:
        """The same tasks and edges with other durations, energies, lags and output sizes."""
        return Fragment(self.resource, duration_cycles, energy_pj, self.task_kind, self.edge_task, self.edge_pred,
                        self.import_dep, self.import_task, outputs, self.entries, self.mvm_tasks, self.mvm_tiles,
                        self.mvm_cells, self.lag_task, self.lag_pred, self.lag_cycles if lag_cycles is None else lag_cycles,
                        bytes_moved)


def _energy_rows(n: int, **components) -> np.ndarray:
    rows = np.zeros((n, len(ENERGY_COMPONENTS)))
    for name, value in components.items():
        rows[:, _ENERGY[name]] = value
    return rows


class _FragmentBuilder:
    """Accumulates one fragment's tasks and edges as numpy chunks."""

    def __init__(self):
        self._resource, self._duration, self._energy, self._kind = [], [], [], []
        self._edge_task, self._edge_pred = [], []
        self._lag_task, self._lag_pred, self._lag_cycles = [], [], []
        self._imports: dict[tuple[int, int], int] = {}
        self.n_tasks = 0
        self.sram_bytes = self.dram_bytes = self.noc_byte_hops = 0

    def add_tasks(self, resource, duration_cycles, energy_rows: np.ndarray, kind: str) -> np.ndarray:
        n = energy_rows.shape[0]
        self._resource.append(np.broadcast_to(np.asarray(resource, dtype=np.int32), (n,)))
        self._duration.append(np.broadcast_to(np.asarray(duration_cycles, dtype=np.int64), (n,)))
        self._energy.append(energy_rows)
        self._kind.append(np.full(n, _KIND[kind], dtype=np.int8))
        ids = np.arange(self.n_tasks, self.n_tasks + n, dtype=np.int64)
        self.n_tasks += n
        return ids

    def durations(self, tasks) -> np.ndarray:
        """Durations of local tasks added so far."""
        return np.concatenate(self._duration)[np.asarray(tasks, dtype=np.int64)]

    def add_task(self, resource: int, duration_cycles: int, energy: dict[str, float], kind: str) -> int:
        return int(self.add_tasks(resource, duration_cycles, _energy_rows(1, **energy), kind)[0])

    def add_edges(self, tasks, preds) -> None:
        tasks, preds = np.broadcast_arrays(np.asarray(tasks, dtype=np.int64), np.asarray(preds, dtype=np.int64))
        self._edge_task.append(tasks.ravel())
        self._edge_pred.append(preds.ravel())

    def add_lag_edges(self, tasks, preds, lag_cycles) -> None:
        """Start-to-start edges between local tasks: a task may start `lag` after its pred started."""
        tasks, preds, lag_cycles = np.broadcast_arrays(np.asarray(tasks, dtype=np.int64),
                                                       np.asarray(preds, dtype=np.int64),
                                                       np.asarray(lag_cycles, dtype=np.int64))
        self._lag_task.append(tasks.ravel())
        self._lag_pred.append(preds.ravel())
        self._lag_cycles.append(lag_cycles.ravel())

    def import_ref(self, dep_position: int, producer_task: int) -> int:
        key = (dep_position, producer_task)
        if key not in self._imports:
            self._imports[key] = len(self._imports)
        return -(self._imports[key] + 1)

    def build(self, outputs: tuple[OutputPiece, ...], entries: tuple[int, ...] = (), mvm_tasks=(), mvm_tiles=(),
              mvm_cells=()) -> Fragment:
        imports = np.array(list(self._imports), dtype=np.int64).reshape(-1, 2)
        cat = lambda chunks, dtype: np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype)
        edge_task = cat(self._edge_task, np.int64)
        by_task = np.argsort(edge_task, kind="stable")  # edges by waiting task, as Fragment promises
        return Fragment(
            resource=cat(self._resource, np.int32), duration_cycles=cat(self._duration, np.int64),
            energy_pj=np.concatenate(self._energy) if self._energy else np.zeros((0, len(ENERGY_COMPONENTS))),
            task_kind=cat(self._kind, np.int8),
            edge_task=edge_task[by_task], edge_pred=cat(self._edge_pred, np.int64)[by_task],
            import_dep=imports[:, 0].copy(), import_task=imports[:, 1].copy(), outputs=outputs,
            entries=tuple(int(e) for e in entries),
            mvm_tasks=np.asarray(mvm_tasks, dtype=np.int64), mvm_tiles=np.asarray(mvm_tiles, dtype=np.int64),
            mvm_cells=np.asarray(mvm_cells, dtype=np.int64),
            lag_task=cat(self._lag_task, np.int64), lag_pred=cat(self._lag_pred, np.int64),
            lag_cycles=cat(self._lag_cycles, np.int64),
            bytes_moved=(int(self.sram_bytes), int(self.dram_bytes), int(self.noc_byte_hops)))


def _even_slices(cores: tuple[int, ...], axis: int, total: int) -> Slices:
    """`total` units (heads, rows) split as evenly as possible over at most len(cores) cores."""
    if total < 2 or len(cores) < 2:
        return Slices(cores[:1])
    count = min(len(cores), total)
    sizes = split_evenly(total, count)
    return Slices(cores[:count], axis, tuple(np.concatenate([[0], np.cumsum(sizes)]).tolist()), total)


class _SliceWork(NamedTuple):
    """One slice's share of a digital op's work and traffic."""
    macs: int
    elements: int
    elements_in: int
    elements_out: int


def _slice_work(op: Op, num: int, den: int) -> _SliceWork:
    """The share num/den of a digital op's work and traffic (one slice of it), rounded up
    (a tuple, not a copy of the Op: lowering asks for tens of thousands)."""
    if num == den:
        return _SliceWork(op.macs, op.elements, op.elements_in, op.elements_out)
    return _SliceWork(-(-op.macs * num // den), -(-op.elements * num // den),
                      -(-op.elements_in * num // den), -(-op.elements_out * num // den))


def _stream_lag(pred_cycles, succ_cycles):
    """Start-to-start lag that lets a consumer overlap a stream it reads but finish no
    earlier than the stream: max(1, pred - succ)."""
    return np.maximum(1, np.asarray(pred_cycles, dtype=np.int64) - np.asarray(succ_cycles, dtype=np.int64))


class Lowerer:
    """Lowers one graph on one hardware config for many mappings.

    Everything that does not depend on the mapping (resource layout, topology, unit
    costs) is computed once; op fragments are cached by (op's work, placement, input pieces).
    """

    def __init__(self, graph: Graph, hw: HwConfig, input_rows: dict[int, tuple[int, int, int]] | None = None):
        """`input_rows`: op id -> (first, stop, features) of its input a row part reads (split.py)."""
        self.graph, self.hw = graph, hw
        self._input_rows = input_rows or {}
        self._split = split.SplitLowering(graph, hw, self._expanded_lowerer)
        self.topology = build_topology(hw)
        self.clock_ghz = hw.system.clock_ghz
        n_tiles, n_cores, n_links = hw.analog.tiles, hw.digital.cores, self.topology.n_links
        self.core_base, self.link_base = n_tiles, n_tiles + n_cores
        self.dram_resource = n_tiles + n_cores + n_links
        self.resource_kind = np.repeat(np.arange(len(RESOURCE_KINDS), dtype=np.int8), [n_tiles, n_cores, n_links, 1])
        self.resource_label = (tuple(f"tile{t}" for t in range(n_tiles)) + tuple(f"core{c}" for c in range(n_cores))
                               + self.topology.link_labels() + ("dram",))
        self.static_power_mw = np.concatenate([
            np.full(n_tiles, tile_cost.tile_static_power_mw(hw.analog) if n_tiles else 0.0),
            np.full(n_cores, hw.digital.static_power_mw), np.zeros(n_links + 1)])
        # tasks on a resource last at least one cycle, even for a zero-latency config
        self.mvm_cycles = max(1, ns_to_cycles(tile_cost.mvm_latency_ns(hw.analog), self.clock_ghz)) if n_tiles else 0
        self.dram_latency_cycles = dram_latency_cycles(hw.memory, self.clock_ghz)
        self._cache: dict = {}
        self._node_op_layouts: dict = {}  # single-node op fragments by task layout (see _build_fragment)
        self._op_work = [tuple(getattr(op, name) for name in _WORK_FIELDS) for op in graph.ops]
        ops = graph.ops
        dep_counts = np.array([len(op.deps) for op in ops], dtype=np.int64)
        self._dep_consumer = np.repeat(np.arange(len(ops)), dep_counts)
        self._dep_producer = np.fromiter(chain.from_iterable(op.deps for op in ops), dtype=np.int64,
                                         count=int(dep_counts.sum()))
        self._is_dram_op = np.array([op.kind in DRAM_OPS for op in ops], dtype=bool)
        projection_index = {p.name: i for i, p in enumerate(graph.projections)}
        self._op_projection = np.array([projection_index.get(op.projection, -1) for op in ops], dtype=np.int64)
        is_linear = np.array([op.kind == OpKind.LINEAR for op in ops], dtype=bool)
        anchor = _anchor_linear(self._dep_consumer, self._dep_producer, is_linear, self._is_dram_op)
        self._anchor_projection = np.where(anchor >= 0, self._op_projection[anchor], -1)
        self._kv_ref = self._kv_anchor_ops()
        self._uses = Counter(op.projection for op in ops if op.kind == OpKind.LINEAR)  # ops per projection
        self._buffers: dict[tuple, np.ndarray] = {}  # activation buffer per core, by placements
        self._wirings: dict[bytes, _Wiring] = {}  # by op cores: one per distinct choice of reduction cores
        self._checked: set[tuple[Placement, int]] = set()
        self._head_core_sets: dict[tuple, tuple[int, ...]] = {}  # see _head_cores
        self._slice_cost_memo: dict[tuple, tuple] = {}  # see _slice_costs

    def _expanded_lowerer(self, graph: Graph, hw: HwConfig, input_rows: dict) -> Lowerer:
        """A Lowerer for split.py's expanded graph, sharing this one's fragment caches
        (fragments depend on the op's work, placement and inputs, not on the graph)."""
        lowerer = Lowerer(graph, hw, input_rows)
        lowerer._cache, lowerer._node_op_layouts = self._cache, self._node_op_layouts
        return lowerer

    def _kv_anchor_ops(self) -> dict[int, int]:
        """KV op -> the op whose core holds its cache: a write's latest producer (the K/V
        Linear), a read's first consumer (the attention that uses it); a KV op with
        neither: itself (core 0, as for any DRAM op). Vectorised over the dep pairs, which
        number O(chunks^2) in chunked prefill."""
        kinds = np.array([op.kind for op in self.graph.ops], dtype=object)
        is_write, is_read = kinds == OpKind.KV_WRITE, kinds == OpKind.KV_READ
        ref = np.where(is_write | is_read, np.arange(len(kinds)), -1)
        consumer, producer = self._dep_consumer, self._dep_producer
        writes = is_write[consumer]
        latest = np.full(len(kinds), -1, dtype=np.int64)
        np.maximum.at(latest, consumer[writes], producer[writes])
        ref = np.where(latest >= 0, latest, ref)
        reads = np.flatnonzero(is_read[producer])
        readers, first = np.unique(producer[reads], return_index=True)  # first consumer in op order
        ref[readers] = consumer[reads[first]]
        kv = np.flatnonzero(ref >= 0)
        return dict(zip(kv.tolist(), ref[kv].tolist()))

    def _wiring(self, placements: dict[str, Placement]) -> _Wiring:
        """Where single-node ops run under these placements, and their deps split into fresh
        ones (delivered by the op's fragment) and resident ones (already on its node). A
        resident dep becomes an edge, added at assembly, to the earlier consumer on the node
        that has it (see `_new_waits`)."""
        groups = [self._column_groups(p, placements[p.name]) for p in self.graph.projections]
        key = tuple(groups)
        wiring = self._wirings.get(key)
        if wiring is not None:
            return wiring
        op_slices = self._op_slices(groups)
        n_nodes = self.topology.n_nodes
        sites: dict[Slices, int] = {}
        op_node = np.full(len(self.graph.ops), -1, dtype=np.int64)  # site: a node, or a set of cores
        for op_id, slices in enumerate(op_slices):
            if self._is_dram_op[op_id]:
                op_node[op_id] = self.topology.dram_node
            elif slices is not None:
                op_node[op_id] = (self.topology.core_node(slices.cores[0]) if slices.count == 1
                                  else sites.setdefault(slices, n_nodes + len(sites)))
        consumer, producer = self._dep_consumer, self._dep_producer
        earlier = _earlier_consumer(consumer, producer, op_node[consumer], len(self.graph.ops),
                                    n_nodes + len(sites))
        resident = earlier >= 0
        fresh_counts = np.bincount(consumer[~resident], minlength=len(self.graph.ops))
        dep_start = np.cumsum(fresh_counts) - fresh_counts  # fresh deps of op i, flat
        dep_flat = producer[~resident]
        fresh = dep_flat.tolist()
        fresh_deps = [tuple(fresh[start:start + count]) for start, count in zip(dep_start.tolist(), fresh_counts.tolist())]
        if len(self._wirings) >= _WIRING_CACHE_LIMIT:
            self._wirings.clear()
        chain = _new_waits(consumer, producer, earlier, len(self.graph.ops))
        wiring = self._wirings[key] = _Wiring(op_slices, fresh_deps, dep_start, dep_flat,
                                              consumer[chain], earlier[chain], self._kv_slices(op_slices, groups))
        return wiring

    def _column_groups(self, projection, placement: Placement) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(cores, column bounds) of a Linear's output pieces: one per reduction group
        (analog) or per core of the group (digital), in output-column order."""
        if placement.is_analog:
            per_group = -(-placement.col_blocks // len(placement.cores))
            n_groups = -(-placement.col_blocks // per_group)
            bounds = [min(g * per_group * self.hw.analog.cols, projection.out_features) for g in range(n_groups + 1)]
            return tuple(placement.cores[:n_groups]), tuple(bounds)
        widths = split_evenly(projection.out_features, len(placement.cores))
        keep = widths > 0
        return (tuple(np.array(placement.cores)[keep].tolist()),
                tuple(np.concatenate([[0], np.cumsum(widths[keep])]).tolist()))

    def _op_slices(self, groups) -> list[Slices | None]:
        """How each digital non-Linear op is split over the cores of the Linear it is
        anchored to (None: Linear and DRAM ops). Attention ops: by heads, over the distinct
        reduction cores; LayerNorm: by token rows; elementwise ops as wide as the Linear's
        output: by its output pieces (each slice on its piece's core: no transfer); the
        rest: one slice on the first reduction core. Ops with no Linear anchor: core 0."""
        memo: dict = {}
        out: list[Slices | None] = []
        for op, anchor in zip(self.graph.ops, self._anchor_projection.tolist()):
            if op.kind == OpKind.LINEAR or op.kind in DRAM_OPS:
                out.append(None)
                continue
            key = (op.kind, anchor, op.heads, op.tokens, op.elements)
            slices = memo.get(key)
            if slices is None:
                slices = memo[key] = self._slices_for(op, groups[anchor] if anchor >= 0 else ((0,), (0, 1)),
                                                      self.graph.projections[anchor].out_features if anchor >= 0 else 0)
            out.append(slices)
        return out

    def _slices_for(self, op: Op, group: tuple[tuple[int, ...], tuple[int, ...]], width: int) -> Slices:
        cores, col_bounds = group
        distinct = tuple(dict.fromkeys(cores))
        if not self.hw.digital.split_ops:
            return Slices((cores[0],))
        if op.heads > 0:
            return _even_slices(self._head_cores(distinct, op.heads), HEADS, op.heads)
        if op.kind == OpKind.LAYERNORM:
            return _even_slices(distinct, ROWS, op.tokens)
        if op.kind in _ELEMENTWISE and width and op.elements == op.tokens * width and len(cores) > 1:
            return Slices(cores, COLS, col_bounds, width)
        return Slices((cores[0],))

    def _head_cores(self, cores: tuple[int, ...], heads: int) -> tuple[int, ...]:
        """The cores an attention's heads are split over: its K/V Linear's distinct reduction
        cores, and with `digital.attention_cores: per_head` as many more of the cores nearest
        to them (Manhattan distance from their centroid, ties to the lowest id) as it takes
        to give each head a core of its own, where there are enough cores."""
        want = min(heads, self.hw.digital.cores)
        if self.hw.digital.attention_cores != "per_head" or len(cores) >= want:
            return cores
        key = (cores, want)
        spread = self._head_core_sets.get(key)
        if spread is None:
            distance = self.topology.core_distances([self.topology.core_node(c) for c in cores])
            nearest = [c for c in np.lexsort((np.arange(len(distance)), distance)).tolist() if c not in cores]
            spread = self._head_core_sets[key] = cores + tuple(nearest[:want - len(cores)])
        return spread

    def _kv_slices(self, op_slices: list[Slices | None], groups) -> dict[int, Slices]:
        """KV op -> how its cache is split: by heads like the attention that uses it."""
        kv = {}
        for op_id, ref in self._kv_ref.items():
            op = self.graph.ops[op_id]
            anchor = int(self._anchor_projection[ref])
            if ref != op_id and op_slices[ref] is not None:
                cores = op_slices[ref].cores  # a read: its attention's slices
            else:
                cores = groups[anchor][0] if anchor >= 0 else (0,)
            distinct = tuple(dict.fromkeys(cores))
            kv[op_id] = (_even_slices(self._head_cores(distinct, op.heads), HEADS, op.heads)
                         if op.heads > 0 and self.hw.digital.split_ops else Slices((distinct[0],)))
        return kv

    # ---- assembly -------------------------------------------------------------------

    def lower(self, mapping: Mapping) -> TaskGraph:
        if mapping.has_split:  # a projection over several programming rounds: lower its parts
            return self._split.lower(mapping)
        placements = self._placements(mapping)
        wiring = self._wiring(placements)
        plan = self._memory_plan(placements, wiring)
        outputs: dict[int, tuple[OutputPiece, ...]] = {}
        fragments, stages = [], np.full(len(self.graph.ops), -1, dtype=np.int64)
        for op, slices, fresh_deps in zip(self.graph.ops, wiring.op_slices, wiring.fresh_deps):
            placement = placements[op.projection] if op.kind == OpKind.LINEAR else None
            inputs = tuple(outputs[dep] for dep in fresh_deps)
            if op.kind == OpKind.EMBEDDING:  # token feedback: only the sampled token's id and score move
                feedback = op.tokens * _TOKEN_FEEDBACK_BYTES
                inputs = tuple(tuple(OutputPiece(p.node, min(p.nbytes, feedback), p.ready) for p in pieces)
                               for pieces in inputs)
            if op.id in self._input_rows:  # a row part of a split projection reads its rows' share
                inputs = split.row_inputs(inputs, *self._input_rows[op.id])
            if placement is not None and not placement.is_analog:
                memory = plan.weight_resident[op.projection]
            else:
                memory = plan.kv_split.get(op.id)
            fragment = self._fragment(op, placement, slices, inputs, memory)
            outputs[op.id] = fragment.outputs
            fragments.append(fragment)
            if mapping.program_rounds > 1:
                stages[op.id] = self._stage(op, placement, mapping.program_rounds, stages)
        order = np.lexsort((np.arange(len(fragments)), stages))
        program = _program_tasks(fragments, stages, mapping.program_rounds) if mapping.program_rounds > 1 else None
        return self._assemble([fragments[i] for i in order], order, stages[order], program, wiring, plan)

    def _memory_plan(self, placements: dict[str, Placement], wiring: _Wiring) -> _MemoryPlan:
        """Digital weights first-fit per core, then each layer's share of the SRAM they
        leave on its attention cores for the KV cache (each core holds its heads' part),
        split op by op into a resident (SRAM) and a spilled (DRAM) part in position order
        (see memory_plan)."""
        digital = self.hw.digital
        capacity = digital.sram_kib * 1024
        buffer = np.minimum(self._activation_buffer(placements, wiring), capacity)  # memoised per mapping
        weight_resident, weight_used = plan_weights(self.graph.projections, placements, buffer, capacity,
                                                    digital.weight_bytes)
        layers_on_core: dict[int, set[int]] = {}
        for op_id, slices in wiring.kv_slices.items():
            for core in slices.cores:
                layers_on_core.setdefault(core, set()).add(self.graph.ops[op_id].layer)
        share = {core: max(0, capacity - int(buffer[core]) - int(weight_used[core])) // len(layers)
                 for core, layers in layers_on_core.items()}
        cached: dict[tuple[int, int], int] = {}  # (layer, core) -> bytes in its part of the cache so far
        kv_split, kv_peak = {}, np.zeros(digital.cores, dtype=np.int64)
        for op_id, slices in wiring.kv_slices.items():
            op = self.graph.ops[op_id]
            total = op.dram_elements * self._act_bytes
            parts = []
            for j, core in enumerate(slices.cores):
                nbytes = -(-total * (slices.bounds[j + 1] - slices.bounds[j]) // slices.total)
                held = cached.get((op.layer, core), 0)
                room = share[core]
                if op.kind == OpKind.KV_READ:
                    held = max(held, nbytes)  # the cache holds at least what is read (a decode's prompt)
                    in_sram = min(nbytes, room)
                else:
                    in_sram = min(nbytes, max(0, room - held))
                    held += nbytes
                cached[(op.layer, core)] = held
                parts.append((core, slices.bounds[j], slices.bounds[j + 1], slices.total, in_sram, nbytes - in_sram))
            kv_split[op_id] = tuple(parts)
        for (layer, core), held in cached.items():
            kv_peak[core] += min(held, share[core])
        return _MemoryPlan(weight_resident, weight_used, kv_split, kv_peak, capacity, buffer)

    def _activation_buffer(self, placements: dict[str, Placement], wiring: _Wiring) -> np.ndarray:
        """Per core, the largest working set of one op slice that runs there: inputs and
        outputs of a core op's slice or a digital Linear's slice; partial sums and output of
        an analog reduction group. Computed once per distinct (op work, where it runs)."""
        key = tuple(placements[p.name] for p in self.graph.projections)
        if key in self._buffers:
            return self._buffers[key]
        if len(self._buffers) >= _WIRING_CACHE_LIMIT:
            self._buffers.clear()
        act, cores = self._act_bytes, self.hw.digital.cores
        buffer = self._buffers[key] = np.zeros(cores, dtype=np.int64)
        seen: set = set()
        for op, slices in zip(self.graph.ops, wiring.op_slices):
            placement = placements.get(op.projection) if op.kind == OpKind.LINEAR else None
            key = (self._op_work[op.id], slices, placement)
            if key in seen or (slices is None and placement is None):
                continue
            seen.add(key)
            if slices is not None:  # each slice's share of the inputs and outputs, rounded up as _slice_work
                sizes = np.diff(np.array(slices.bounds, dtype=np.int64))
                span = slices.bounds[-1] - slices.bounds[0]
                held = (-(-op.elements_in * sizes // span) - (-op.elements_out * sizes // span)) * act
                cores = list(slices.cores)
                buffer[cores] = np.maximum(buffer[cores], held)
                continue
            projection = self.graph.projections[int(self._op_projection[op.id])]
            group_cores, bounds = self._column_groups(projection, placement)
            row_blocks = placement.row_blocks if placement.is_analog else 0
            for core, lo, hi in zip(group_cores, bounds[:-1], bounds[1:]):
                held = op.tokens * (hi - lo) * (row_blocks + 1) if placement.is_analog else \
                    op.tokens * (op.in_features + hi - lo)
                buffer[core] = max(buffer[core], held * act)
        return buffer

    def _stage(self, op: Op, placement: Placement | None, rounds: int, stages: np.ndarray) -> int:
        """Programming epoch an op runs in: (decode step, round) flattened; deps bound it below."""
        inherited = max((int(stages[d]) for d in op.deps), default=-1)
        if placement is None or not placement.is_analog:
            return inherited
        step = op.chunk if self.graph.phase == "decode" else 0
        epoch = step * rounds + placement.program_round
        if epoch < inherited:
            raise UserError(f"mapping: {op.projection}: program_round {placement.program_round} runs before a "
                            f"projection it depends on; program rounds must follow the model order")
        return epoch

    def _assemble(self, fragments: list[Fragment], op_order: np.ndarray, stages: np.ndarray,
                  program: _ProgramTasks | None, wiring: _Wiring, plan: _MemoryPlan) -> TaskGraph:
        """Concatenate fragments (in `op_order`) and program tasks into one TaskGraph."""
        sizes = np.array([f.resource.shape[0] for f in fragments], dtype=np.int64)
        offsets = np.cumsum(sizes) - sizes
        units, unit_shift = None, np.zeros(0, dtype=np.int64)
        if program is not None:  # program units of epoch e go right before the first fragment of stage e
            units = program_units(program.tile, program.cells, self.hw, self.topology, self.link_base,
                                  self.dram_resource)
            offsets += units.unit_start[np.searchsorted(program.epoch, stages, side="right")]
            first_fragment = np.searchsorted(stages, program.epoch, side="left")
            unit_shift = np.concatenate([[0], np.cumsum(sizes)])[first_fragment]  # fragment tasks before unit k
        n_tasks = int(sizes.sum()) + (int(units.unit_start[-1]) if units is not None else 0)
        op_offset = np.zeros(len(self.graph.ops), dtype=np.int64)
        op_offset[op_order] = offsets
        blocks = self._ordered_blocks(fragments, op_order, stages, program, units)
        resource = np.concatenate([block.resource for block in blocks])
        duration = np.concatenate([block.duration_cycles for block in blocks])
        kind = np.concatenate([block.task_kind for block in blocks])
        energy = np.concatenate([block.energy_pj for block in blocks])
        task_op = np.repeat(np.array([block.op for block in blocks], dtype=np.int32),
                            [block.resource.shape[0] for block in blocks])

        # edges: local ids shift by their fragment's offset, imports resolve through op_offset
        edge_counts = np.array([f.edge_task.shape[0] for f in fragments], dtype=np.int64)
        import_counts = np.array([f.import_dep.shape[0] for f in fragments], dtype=np.int64)
        import_consumer = np.repeat(op_order, import_counts)
        import_producer = wiring.dep_flat[wiring.dep_start[import_consumer] + _concat([f.import_dep for f in fragments])]
        import_gid = np.concatenate([op_offset[import_producer] + _concat([f.import_task for f in fragments]), [0]])
        edge_pred = _concat([f.edge_pred for f in fragments])
        edge_offset = np.repeat(offsets, edge_counts)
        import_index = np.repeat(np.cumsum(import_counts) - import_counts, edge_counts) - edge_pred - 1
        local = edge_pred >= 0
        pred = np.where(local, edge_pred + edge_offset, import_gid[np.where(local, -1, import_index)])
        task = _concat([f.edge_task for f in fragments]) + edge_offset
        extra = [self._resident_edges(fragments, op_order, op_offset, wiring)]
        if units is not None:
            unit_global = lambda local: local + np.repeat(unit_shift, np.diff(units.unit_start))[local]
            extra.append(program.edges(unit_global(units.program), unit_global(units.entry), op_offset))
            extra.append((unit_global(units.edge_task), unit_global(units.edge_pred)))
        extra = [(t, p) for t, p in extra if t.shape[0]]
        if extra:  # fragment edges are already in task order; merge the others in
            task = np.concatenate([task] + [t for t, _ in extra])
            pred = np.concatenate([pred] + [p for _, p in extra])
        pred_ptr, pred_idx = _group_by_task(task, pred, n_tasks)
        succ_ptr, succ_idx = successors_from_predecessors(pred_ptr, pred_idx, n_tasks)
        lag_counts = np.array([f.lag_task.shape[0] for f in fragments], dtype=np.int64)
        lag_offset = np.repeat(offsets, lag_counts)
        lag_pred = [_concat([f.lag_pred for f in fragments]) + lag_offset]
        lag_task = [_concat([f.lag_task for f in fragments]) + lag_offset]
        lag_cycles = [_concat([f.lag_cycles for f in fragments])]
        if units is not None:
            lag_pred.append(unit_global(units.lag_pred))
            lag_task.append(unit_global(units.lag_task))
            lag_cycles.append(units.lag_cycles)
        lag_ptr, lag_succ, lag_cycles = lag_csr(np.concatenate(lag_pred), np.concatenate(lag_task),
                                                np.concatenate(lag_cycles), n_tasks)
        return TaskGraph(
            resource=resource, duration_cycles=duration, energy_pj=energy, pred_ptr=pred_ptr,
            pred_idx=pred_idx, succ_ptr=succ_ptr, succ_idx=succ_idx, task_kind=kind, task_op=task_op,
            resource_kind=self.resource_kind, resource_label=self.resource_label,
            static_power_mw=self.static_power_mw, cycle_ns=self.hw.system.cycle_ns, tokens=self.graph.tokens,
            lag_ptr=lag_ptr, lag_succ=lag_succ, lag_cycles=lag_cycles,
            memory=self._traffic(fragments, plan, units))

    def _traffic(self, fragments: list[Fragment], plan: _MemoryPlan, units: ProgramUnits | None) -> MemoryTraffic:
        """Occupancy from the plan, bytes moved summed over the fragments (one per op) and
        the program units."""
        moved = np.array([f.bytes_moved for f in fragments], dtype=np.int64).reshape(-1, 3).sum(axis=0)
        program_bytes = units.weight_bytes if units is not None else 0
        moved[1] += program_bytes
        moved[2] += units.noc_byte_hops if units is not None else 0
        weight_bytes = self.hw.digital.weight_bytes
        streamed = 0
        for projection in self.graph.projections:  # each use of a non-resident slice streams it
            flags = plan.weight_resident.get(projection.name)
            if flags and not all(flags):
                slices = split_evenly(projection.out_features, len(flags))
                per_use = sum(projection.in_features * int(c) * weight_bytes for c, f in zip(slices, flags) if not f)
                streamed += int(per_use) * self._uses[projection.name]
        return MemoryTraffic(sram_capacity_bytes=plan.capacity_bytes,
                             weight_resident_bytes=tuple(int(b) for b in plan.weight_used),
                             kv_resident_bytes=tuple(int(b) for b in plan.kv_peak),
                             activation_bytes=tuple(int(b) for b in plan.activation_bytes),
                             weight_streamed_bytes=streamed,
                             sram_bytes=int(moved[0]), dram_bytes=int(moved[1]), noc_byte_hops=int(moved[2]),
                             program_bytes=int(program_bytes))

    def _resident_edges(self, fragments: list[Fragment], op_order: np.ndarray, op_offset: np.ndarray,
                        wiring: _Wiring) -> tuple[np.ndarray, np.ndarray]:
        """(task, pred) pairs: a consumer with resident deps waits, at the entry of each of
        its slices, for the ready tasks of the same slice of the earlier consumer on its
        cores that has them (see `_earlier_consumer`); for every one of them where the two
        are sliced differently."""
        fragment_of = np.empty(len(self.graph.ops), dtype=np.int64)
        fragment_of[op_order] = np.arange(len(fragments))
        tasks, preds = [], []
        for consumer, earlier in zip(wiring.resident_consumer.tolist(), wiring.resident_earlier.tolist()):
            entries = fragments[fragment_of[consumer]].entries
            pieces = fragments[fragment_of[earlier]].outputs
            if len(entries) == len(pieces):
                for entry, piece in zip(entries, pieces):
                    tasks += [entry + op_offset[consumer]] * len(piece.ready)
                    preds += [t + op_offset[earlier] for t in piece.ready]
            else:
                ready = [t + op_offset[earlier] for piece in pieces for t in piece.ready]
                for entry in entries:
                    tasks += [entry + op_offset[consumer]] * len(ready)
                    preds += ready
        return np.array(tasks, dtype=np.int64), np.array(preds, dtype=np.int64)

    def _ordered_blocks(self, fragments, op_order, stages, program: _ProgramTasks | None,
                        units: ProgramUnits | None) -> list[_TaskBlock]:
        """Fragments in task-id order, each preceded by the program units of its epoch."""
        if program is None:
            return [_TaskBlock(op, f.resource, f.duration_cycles, f.task_kind, f.energy_pj)
                    for op, f in zip(op_order.tolist(), fragments)]
        program_block = _TaskBlock(-1, units.resource, units.duration_cycles, units.task_kind, units.energy_pj)
        ends = np.searchsorted(program.epoch, stages, side="right").tolist()
        unit_start = units.unit_start.tolist()
        blocks, start = [], 0
        for op, f, end in zip(op_order.tolist(), fragments, ends):
            if end > start:
                blocks.append(program_block.slice(unit_start[start], unit_start[end]))
                start = end
            blocks.append(_TaskBlock(op, f.resource, f.duration_cycles, f.task_kind, f.energy_pj))
        return blocks

    # ---- fragments --------------------------------------------------------------------

    def _fragment(self, op: Op, placement: Placement | None, slices: Slices | None, inputs, memory=None) -> Fragment:
        """`slices`: where a digital non-Linear op runs (None for Linear and DRAM ops);
        `memory`: a digital Linear's resident flags per core, or a KV op's per-core
        (SRAM bytes, DRAM bytes) split (see `_memory_plan`)."""
        key = (self._op_work[op.id], placement, slices, inputs, memory)
        fragment = self._cache.get(key)
        if fragment is None:
            if len(self._cache) >= _FRAGMENT_CACHE_LIMIT:
                self._cache.clear()
                self._node_op_layouts.clear()
            fragment = self._cache[key] = self._build_fragment(op, placement, slices, inputs, memory)
        return fragment

    def _build_fragment(self, op: Op, placement: Placement | None, slices: Slices | None, inputs,
                        memory) -> Fragment:
        builder = _FragmentBuilder()
        if op.kind == OpKind.LINEAR and placement.is_analog:
            return self._analog_linear(builder, op, placement, inputs)
        if op.kind == OpKind.LINEAR:
            return self._digital_linear(builder, op, placement, inputs, memory)
        if op.kind in (OpKind.KV_READ, OpKind.KV_WRITE):
            return self._kv_op(builder, op, inputs, memory)
        if op.kind == OpKind.EMBEDDING:
            return self._dram_op(builder, op, inputs)
        # Core ops whose sizes change from chunk to chunk (attention over a growing
        # context) keep their task layout when their inputs move the same bytes: reuse it
        # with new durations and energies.
        layout_key = (op.kind, slices, self._moved_bytes(slices, inputs))
        layout = self._node_op_layouts.get(layout_key)
        if layout is not None:
            return self._resized(layout, op, slices)
        fragment = self._node_op_layouts[layout_key] = self._core_op(builder, op, slices, inputs)
        return fragment

    def _moved_bytes(self, slices: Slices, inputs) -> tuple:
        """What decides a core op's transfers and input edges: per piece, where it is, what it
        is part of, whether it is empty, and the bytes each slice on another node takes."""
        flat = [p for pieces in inputs for p in pieces]
        if not flat:
            return ()
        nodes = self.topology.core_node(np.array(slices.cores, dtype=np.int64))
        off_node = nodes[None, :] != np.array([p.node for p in flat])[:, None]
        moved = np.where(off_node, _Need.of_slices(slices).bytes_of_pieces(flat), 0)
        return (tuple(len(pieces) for pieces in inputs), moved.tobytes(),
                tuple((p.node, p.ready, p.axis, p.lo, p.hi, p.total, p.nbytes > 0) for p in flat))

    def _dram_op(self, builder: _FragmentBuilder, op: Op, inputs) -> Fragment:
        """The embedding: a latency delay (no resource), then the bytes on the DRAM channel,
        at the DRAM controller node."""
        node = self.topology.dram_node
        arrivals = self._deliver(builder, inputs, np.array([node]), _Need.whole(1), np.zeros(1, dtype=np.int64))
        nbytes = op.dram_elements * self._act_bytes
        builder.dram_bytes += nbytes
        entry = builder.add_task(_NO_RESOURCE, self.dram_latency_cycles, {}, "delay")
        last = builder.add_task(self.dram_resource, dram_stream_cycles(self.hw.memory, self.clock_ghz, nbytes),
                                {"dram": nbytes * self.hw.memory.dram_energy_pj_per_byte}, "dram")
        builder.add_edges(last, entry)
        self._connect(builder, np.array([entry]), arrivals)
        return builder.build((OutputPiece(node, op.elements_out * self._act_bytes, (int(last),)),), entries=(entry,))

    def _core_op(self, builder: _FragmentBuilder, op: Op, slices: Slices, inputs) -> Fragment:
        """Digital ops: one task per slice on its core, each receiving what its part of the
        work needs of every input piece (see `_Need.bytes_of_pieces`)."""
        nodes = self.topology.core_node(np.array(slices.cores, dtype=np.int64))
        arrivals = self._deliver(builder, inputs, nodes, _Need.of_slices(slices), np.arange(slices.count))
        kind = "matmul" if op.kind == OpKind.MATMUL else _SPECIAL_COSTS[op.kind][1]
        tasks = []
        for core, (cycles, energy, sram_bytes) in zip(slices.cores, self._slice_costs(op, slices)):
            builder.sram_bytes += sram_bytes
            tasks.append(builder.add_tasks(self.core_base + core, cycles, energy, kind)[0])
        tasks = np.array(tasks, dtype=np.int64)
        self._connect(builder, tasks, arrivals)
        return builder.build(self._slice_outputs(op, slices, nodes, tasks), entries=tuple(tasks.tolist()))

    def _slice_costs(self, op: Op, slices: Slices) -> list[tuple[int, np.ndarray, int]]:
        """(cycles, energy row, SRAM bytes) of each slice's task. A core op reads its inputs
        from and writes its output to the core's SRAM (energy only: the pipeline overlaps
        the accesses). Memoised per (kind, slice work): heads and layers mostly cost alike."""
        span = slices.bounds[-1] - slices.bounds[0]
        costs = []
        for j in range(slices.count):
            part = _slice_work(op, slices.bounds[j + 1] - slices.bounds[j], span)
            key = (op.kind, part)
            cost = self._slice_cost_memo.get(key)
            if cost is None:
                if op.kind == OpKind.MATMUL:
                    cycles, energy = digital_cost.matmul_cost(self.hw.digital, part.macs)
                else:
                    cycles, energy = _SPECIAL_COSTS[op.kind][0](self.hw.digital, part.elements)
                sram_bytes = (part.elements_in + part.elements_out) * self._act_bytes
                energy = dict(energy, sram=sram_bytes * self.hw.digital.sram_energy_pj_per_byte)
                cost = self._slice_cost_memo[key] = (cycles, _energy_rows(1, **energy), sram_bytes)
            costs.append(cost)
        return costs

    def _slice_outputs(self, op: Op, slices: Slices, nodes: np.ndarray, tasks: np.ndarray) -> tuple[OutputPiece, ...]:
        span = slices.bounds[-1] - slices.bounds[0]
        return tuple(OutputPiece(int(node), -(-op.elements_out * (hi - lo) // span) * self._act_bytes, (int(task),),
                                 slices.axis, lo, hi, slices.total)
                     for node, task, lo, hi in zip(nodes.tolist(), tasks.tolist(), slices.bounds[:-1], slices.bounds[1:]))

    def _resized(self, layout: Fragment, op: Op, slices: Slices) -> Fragment:
        """`layout`'s tasks and edges (its inputs move the same bytes) with `op`'s own costs:
        `_core_op` emits the transfers first, then one task per slice."""
        duration, energy = layout.duration_cycles.copy(), layout.energy_pj.copy()
        own = np.array(layout.entries, dtype=np.int64)
        sram_total = 0
        for task, (cycles, energy_row, sram_bytes) in zip(own, self._slice_costs(op, slices)):
            duration[task], energy[task] = cycles, energy_row[0]
            sram_total += sram_bytes
        nodes = self.topology.core_node(np.array(slices.cores, dtype=np.int64))
        moved = layout.bytes_moved
        return layout.with_costs(duration, energy, self._slice_outputs(op, slices, nodes, own), None,
                                 (sram_total, moved[1], moved[2]))

    def _kv_op(self, builder: _FragmentBuilder, op: Op, inputs, parts) -> Fragment:
        """A KV-cache read or write, per attention core holding its heads' part of the
        cache, split between that core's SRAM (the resident part: one core task at
        `sram_bytes_per_cycle`) and DRAM (the spilled part: latency delay, then the
        channel, at the DRAM controller node). A write's data comes from its producer
        (K/V) in the same proportions; a read's deps only order it (they deliver nothing).
        Outputs: each core's SRAM part on the core, its DRAM part at the DRAM node, both
        marked with the heads they hold, for the attention slices to fetch."""
        digital, dram_node = self.hw.digital, self.topology.dram_node
        is_write = op.kind == OpKind.KV_WRITE
        pieces, entries = [], []
        # (of all deps together: the parts of a split K/V Linear)
        produced = sum(p.nbytes for dep_pieces in inputs for p in dep_pieces) or 1
        one = np.zeros(1, np.int64)
        # A write's spilled parts: each input piece sends the spilled share of every core's
        # heads to the DRAM node in one message, which all the DRAM parts wait for. A
        # resident part only waits for the inputs: the K/V reach the core with the
        # attention's own inputs (the same heads), so they cross the mesh once.
        # Waiting without receiving moves nothing, so it is the same for every node.
        waits = self._deliver(builder, inputs, np.array([dram_node]), _Need.whole(1, 0, produced), one)
        spilled = sum(part[5] for part in parts) if is_write else 0
        spill_arrivals = (self._deliver(builder, inputs, np.array([dram_node]), _Need.whole(1, spilled, produced), one)
                          if spilled > 0 else waits)
        for core, lo, hi, heads, sram_bytes, dram_bytes in parts:
            core_node = self.topology.core_node(core)
            for node, nbytes in ((core_node, sram_bytes), (dram_node, dram_bytes)):
                if nbytes <= 0:
                    continue
                arrivals = spill_arrivals if node == dram_node else waits
                if node == core_node:
                    entry = last = builder.add_task(self.core_base + core,
                                                    digital_cost.ceil_div(nbytes, digital.sram_bytes_per_cycle),
                                                    {"sram": nbytes * digital.sram_energy_pj_per_byte}, "sram")
                    builder.sram_bytes += nbytes
                else:
                    entry = builder.add_task(_NO_RESOURCE, self.dram_latency_cycles, {}, "delay")
                    last = builder.add_task(self.dram_resource,
                                            dram_stream_cycles(self.hw.memory, self.clock_ghz, nbytes),
                                            {"dram": nbytes * self.hw.memory.dram_energy_pj_per_byte}, "dram")
                    builder.add_edges(last, entry)
                    builder.dram_bytes += nbytes
                self._connect(builder, np.array([entry]), arrivals)
                entries.append(entry)
                pieces.append(OutputPiece(node, 0 if is_write else nbytes, (int(last),), HEADS, lo, hi, heads))
        if not pieces:  # nothing to move (an empty cache): a one-cycle bookkeeping step on the core
            core = parts[0][0]
            entry = builder.add_task(self.core_base + core, 1, {}, "sram")
            self._connect(builder, np.array([entry]), waits)
            entries.append(entry)
            pieces.append(OutputPiece(self.topology.core_node(core), 0, (int(entry),)))
        return builder.build(tuple(pieces), entries=(entries[0],))

    def _digital_linear(self, builder: _FragmentBuilder, op: Op, placement: Placement, inputs,
                        resident: tuple[bool, ...]) -> Fragment:
        """One task per core of the group, each on a slice of the output columns.

        A slice resident in the core's SRAM (`resident`, from `plan_weights`) streams from
        there: the core task lasts max(compute, SRAM stream). A slice that is not resident
        streams from DRAM on every use: a latency delay, one task on the DRAM channel for
        all such slices (contention with other DRAM traffic, DRAM energy), then the slices
        over the NoC from the DRAM node (one tree, each link carrying the slices that cross
        it). The core task overlaps the stream but cannot finish before its slice's last
        link has (a start-to-start edge with lag max(1, stream - compute)).
        Every core reads its input and writes its output slice in SRAM (energy).
        """
        digital = self.hw.digital
        cores = np.array(placement.cores, dtype=np.int64)
        slices = split_evenly(op.out_features, cores.shape[0])
        keep = slices > 0
        cores, slices, resident = cores[keep], slices[keep], np.array(resident, dtype=bool)[keep]
        arrivals = self._deliver(builder, inputs, self.topology.core_node(cores), _Need.whole(cores.shape[0]),
                                 np.zeros_like(cores))  # every core gets the whole input
        weight_bytes = op.in_features * slices * digital.weight_bytes
        entries, pieces, tasks = [], [], []
        col_lo = 0
        for core, out_cols, in_sram, nbytes in zip(cores.tolist(), slices.tolist(), resident.tolist(),
                                                   weight_bytes.tolist()):
            compute, energy = digital_cost.linear_compute_cost(digital, op.tokens, op.in_features, out_cols,
                                                               op.has_bias)
            activation_bytes = op.tokens * (op.in_features + out_cols) * self._act_bytes
            sram_bytes = activation_bytes + (nbytes if in_sram else 0)
            energy["sram"] = sram_bytes * digital.sram_energy_pj_per_byte
            builder.sram_bytes += sram_bytes
            cycles = max(compute, digital_cost.ceil_div(nbytes, digital.sram_bytes_per_cycle)) if in_sram else compute
            task = builder.add_task(self.core_base + core, cycles, energy, "digital_linear")
            entries.append(task)
            tasks.append(task)
            pieces.append(OutputPiece(self.topology.core_node(core), op.tokens * out_cols * self._act_bytes, (task,),
                                      COLS, col_lo, col_lo + out_cols, op.out_features))
            col_lo += out_cols
        tasks = np.array(tasks, dtype=np.int64)
        streamed = ~resident
        if streamed.any():
            total = int(weight_bytes[streamed].sum())
            delay = builder.add_task(_NO_RESOURCE, self.dram_latency_cycles, {}, "delay")
            channel_cycles = dram_stream_cycles(self.hw.memory, self.clock_ghz, total)
            channel = builder.add_task(self.dram_resource, channel_cycles,
                                       {"dram": total * self.hw.memory.dram_energy_pj_per_byte}, "dram")
            builder.add_edges(channel, delay)
            builder.dram_bytes += total
            last = self._stream_from(builder, channel, channel_cycles, self.topology.core_node(cores[streamed]),
                                     weight_bytes[streamed])
            compute_tasks = tasks[streamed]
            builder.add_lag_edges(compute_tasks, last,
                                  _stream_lag(builder.durations(last), builder.durations(compute_tasks)))
        self._connect(builder, np.array(entries), arrivals)
        return builder.build(tuple(pieces))

    def _stream_from(self, builder: _FragmentBuilder, source: int, source_cycles: int, dst_nodes: np.ndarray,
                     nbytes: np.ndarray) -> np.ndarray:
        """Send distinct data (`nbytes` each) from the DRAM node to `dst_nodes` while the DRAM
        task `source` streams it out: the first links may start once the channel has started
        (finishing no earlier than it), later links follow by the flow control. Returns
        the last link task into each destination."""
        tree = self.topology.multicast(self.topology.dram_node, dst_nodes)
        links = self._merged_transfer(builder, tree, nbytes, np.arange(dst_nodes.shape[0]))
        first = links[np.unique(tree.first)]
        builder.add_lag_edges(first, source, _stream_lag(source_cycles, builder.durations(first)))
        return links[tree.last]

    def _analog_linear(self, builder: _FragmentBuilder, op: Op, placement: Placement, inputs) -> Fragment:
        analog, act = self.hw.analog, self._act_bytes
        row_sizes = np.minimum(analog.rows, op.in_features - analog.rows * np.arange(placement.row_blocks))
        col_sizes = np.minimum(analog.cols, op.out_features - analog.cols * np.arange(placement.col_blocks))
        replica_tokens = split_evenly(op.tokens, placement.replicas)
        # one entry per (replica, row block, col block), in Placement.tiles order
        rep, row, col = (a.ravel() for a in np.meshgrid(np.arange(placement.replicas), np.arange(placement.row_blocks),
                                                         np.arange(placement.col_blocks), indexing="ij"))
        tiles = np.array(placement.tiles, dtype=np.int64)
        used = replica_tokens[rep] > 0
        tiles, rows, cols, tokens = tiles[used], row_sizes[row[used]], col_sizes[col[used]], replica_tokens[rep[used]]
        tile_nodes = self.topology.tile_node(tiles)

        input_slice = (rep * placement.row_blocks + row)[used]  # tiles of one row block and replica share inputs
        row_lo = (analog.rows * row)[used]
        need = _Need(COLS, row_lo, row_lo + rows, op.in_features, tokens, op.tokens)  # inputs on rows
        arrivals = self._deliver(builder, inputs, tile_nodes, need, input_slice)
        per_mvm = {shape: tile_cost.mvm_energy_pj(analog, *shape)
                   for shape in set(zip(rows.tolist(), cols.tolist()))}
        energy = np.zeros((tiles.shape[0], len(ENERGY_COMPONENTS)))
        for (shape_rows, shape_cols), per_component in per_mvm.items():
            same_shape = (rows == shape_rows) & (cols == shape_cols)
            for component, pj in per_component.items():
                energy[same_shape, _ENERGY[component]] = tokens[same_shape] * pj
        mvms = builder.add_tasks(tiles, tokens * self.mvm_cycles, energy, "mvm")
        self._connect(builder, mvms, arrivals)

        # partial sums: column-block group g (of ceil(C / G) consecutive blocks) reduces on cores[g]
        per_group = -(-placement.col_blocks // len(placement.cores))
        tile_group = col[used] // per_group
        outputs = []
        for group in np.unique(tile_group).tolist():
            in_group = tile_group == group
            core = placement.cores[group]
            core_node = self.topology.core_node(core)
            moved = in_group & (tile_nodes != core_node)
            gather = self.topology.gather(tile_nodes[moved], core_node)
            # every tile's partial sums are distinct data: a merged link carries all that cross it
            links = self._merged_transfer(builder, gather, (tokens * cols * act)[moved], np.arange(int(moved.sum())))
            builder.add_edges(links[gather.first], mvms[moved])
            out_features = int(col_sizes[group * per_group:(group + 1) * per_group].sum())
            cycles, reduce_energy = digital_cost.reduce_cost(self.hw.digital, op.tokens, out_features,
                                                             placement.row_blocks, op.has_bias)
            # partial sums written to SRAM as they arrive and read by the reduction; output written
            sram_bytes = 2 * int((tokens * cols)[in_group].sum()) * act + op.tokens * out_features * act
            reduce_energy = dict(reduce_energy, sram=sram_bytes * self.hw.digital.sram_energy_pj_per_byte)
            builder.sram_bytes += sram_bytes
            reduce = builder.add_task(self.core_base + core, cycles, reduce_energy, "reduce")
            builder.add_edges(reduce, np.concatenate([np.unique(links[gather.last]), mvms[in_group & ~moved]]))
            col_lo = group * per_group * analog.cols
            outputs.append(OutputPiece(core_node, op.tokens * out_features * act, (reduce,), COLS, col_lo,
                                       col_lo + out_features, op.out_features))
        return builder.build(tuple(outputs), mvm_tasks=mvms, mvm_tiles=tiles, mvm_cells=rows * cols)

    # ---- data movement ----------------------------------------------------------------

    @property
    def _act_bytes(self) -> int:
        return self.hw.digital.activation_bytes

    def _merged_transfer(self, builder: _FragmentBuilder, routes: MergedRoutes, route_bytes: np.ndarray,
                         route_data: np.ndarray) -> np.ndarray:
        """One task per merged link, after the links that feed it (flow control: see
        `simulator.interconnect.cost`).

        Routes with equal `route_data` carry the same bytes, so a link carries each such
        datum once, however many routes through it need it. Returns task ids by merged index.
        """
        if route_bytes.shape[0] == 1:  # a plain route (the common case): skip the bookkeeping
            link_bytes = np.full(routes.links.shape[0], route_bytes[0], dtype=np.int64)
        else:
            n_data = int(route_data.max()) + 1 if route_data.shape[0] else 1
            _, carried = np.unique(routes.link_of_hop * n_data + route_data[routes.hop_route], return_index=True)
            link_bytes = np.bincount(routes.link_of_hop[carried], weights=route_bytes[routes.hop_route[carried]],
                                     minlength=routes.links.shape[0]).astype(np.int64)
        ic = self.hw.interconnect
        ids = builder.add_tasks(self.link_base + routes.links, hop_cycles_many(ic, link_bytes),
                                _energy_rows(link_bytes.shape[0], noc=link_bytes * ic.energy_pj_per_byte_hop),
                                "transfer")
        builder.noc_byte_hops += int(link_bytes.sum())
        lags = forward_lags(ic, link_bytes[routes.feeds_from])
        if lags is None:  # whole-message store-and-forward
            builder.add_edges(ids[routes.feeds_into], ids[routes.feeds_from])
        else:
            builder.add_lag_edges(ids[routes.feeds_into], ids[routes.feeds_from], lags)
        return ids

    def _deliver(self, builder: _FragmentBuilder, inputs, dst_nodes: np.ndarray, need: _Need,
                 dst_data: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Bring what each destination `need`s of each input piece along one multicast tree.

        Destinations with equal `dst_data` need the same slice of a piece. Returns
        arrivals: (destination index, pred id) pairs for `_connect`: the last link into a
        destination, or the producing tasks themselves when nothing needs to move.
        """
        arrivals = []
        for dep_position, pieces in enumerate(inputs):
            if not pieces:
                continue
            for piece, nbytes in zip(pieces, need.bytes_of_pieces(pieces)):
                ready = np.array([builder.import_ref(dep_position, t) for t in piece.ready], dtype=np.int64)
                moved = (nbytes > 0) & (dst_nodes != piece.node)
                tree = self.topology.multicast(piece.node, dst_nodes[moved])
                links = self._merged_transfer(builder, tree, nbytes[moved], dst_data[moved])
                builder.add_edges(links[np.unique(tree.first)][:, None], ready[None, :])
                arrivals.append((np.flatnonzero(moved), links[tree.last]))
                # a destination that needs none of a piece's bytes does not wait for it (an
                # ordering-only input, tok_num 0, or a zero-byte piece still orders it)
                unneeded = (nbytes == 0) & (need.tok_num > 0) & (piece.nbytes > 0)
                still = np.flatnonzero(~moved & ~unneeded)
                arrivals.append((np.repeat(still, ready.shape[0]), np.tile(ready, still.shape[0])))
        return arrivals

    @staticmethod
    def _connect(builder: _FragmentBuilder, consumers: np.ndarray, arrivals) -> None:
        for destination, pred in arrivals:
            builder.add_edges(consumers[destination], pred)

    # ---- mapping checks ---------------------------------------------------------------

    def _placements(self, mapping: Mapping) -> dict[str, Placement]:
        placements = {p.projection: p for p in mapping.placements}
        for projection in self.graph.projections:
            placement = placements.get(projection.name)
            if placement is None:
                raise UserError(f"mapping: no placement for projection {projection.name!r}")
            if (placement, mapping.program_rounds) not in self._checked:
                self._check_placement(projection, placement, mapping.program_rounds)
                self._checked.add((placement, mapping.program_rounds))
        return placements

    def _check_placement(self, projection, placement: Placement, program_rounds: int) -> None:
        where = f"mapping: {projection.name}"
        cores = self.hw.digital.cores
        if not placement.cores or any(not 0 <= c < cores for c in placement.cores):
            raise UserError(f"{where}: cores {list(placement.cores)} must be non-empty ids in 0..{cores - 1}")
        if not placement.is_analog:
            return
        if len(placement.cores) > placement.col_blocks:
            raise UserError(f"{where}: at most one reduction core per column block ({placement.col_blocks}), "
                            f"got {len(placement.cores)} cores")
        analog = self.hw.analog
        want = (-(-projection.in_features // analog.rows), -(-projection.out_features // analog.cols))
        if (placement.row_blocks, placement.col_blocks) != want:
            raise UserError(f"{where}: row_blocks x col_blocks must be {want[0]} x {want[1]} for "
                            f"{projection.in_features}x{projection.out_features} on {analog.rows}x{analog.cols} tiles")
        n_tiles = placement.row_blocks * placement.col_blocks * placement.replicas
        if placement.replicas < 1 or len(placement.tiles) != n_tiles:
            raise UserError(f"{where}: expected {n_tiles} tiles (blocks x replicas), got {len(placement.tiles)}")
        if any(not 0 <= t < analog.tiles for t in placement.tiles):
            raise UserError(f"{where}: tile ids must be in 0..{analog.tiles - 1}")
        if not 0 <= placement.program_round < program_rounds:
            raise UserError(f"{where}: program_round must be in 0..{program_rounds - 1}")


@dataclass(frozen=True)
class _TaskBlock:
    """Consecutive tasks of one op (or of no op: program tasks) during assembly."""

    op: int
    resource: np.ndarray
    duration_cycles: np.ndarray
    task_kind: np.ndarray
    energy_pj: np.ndarray

    def slice(self, start: int, end: int) -> _TaskBlock:
        return _TaskBlock(self.op, self.resource[start:end], self.duration_cycles[start:end],
                          self.task_kind[start:end], self.energy_pj[start:end])


@dataclass(frozen=True)
class _MemoryPlan:
    """What is resident where under one mapping (see `Lowerer._memory_plan`)."""

    weight_resident: dict[str, tuple[bool, ...]]  # digital projection -> resident per core of its group
    weight_used: np.ndarray  # weight bytes resident per core
    kv_split: dict[int, tuple]  # KV op id -> per core: (core, lo, hi, heads, SRAM bytes, DRAM bytes)
    kv_peak: np.ndarray  # KV-cache bytes resident per core at the end
    capacity_bytes: int
    activation_bytes: np.ndarray  # working buffer per core, reserved first


@dataclass(frozen=True)
class _Wiring:
    """Mapping-dependent op placement and dependency split (see `Lowerer._wiring`)."""

    op_slices: list[Slices | None]  # where each digital non-Linear op runs (None: Linear, DRAM op)
    fresh_deps: list[tuple[int, ...]]  # deps each op's fragment delivers
    dep_start: np.ndarray  # fresh deps of op i are dep_flat[dep_start[i]:...]
    dep_flat: np.ndarray
    resident_consumer: np.ndarray  # (consumer, earlier consumer) pairs: the earlier one, on the
    resident_earlier: np.ndarray  # same cores, already received a dep of the consumer
    kv_slices: dict[int, Slices]  # KV op -> the cores (and heads) holding its cache


def op_anchors(graph: Graph) -> np.ndarray:
    """For each op of `graph`, the Linear op whose reduction cores it runs on (-1: none, core
    0): the rule of `_anchor_linear`, for users outside the lowering (the analytical bound)."""
    deps = [len(op.deps) for op in graph.ops]
    consumer = np.repeat(np.arange(len(graph.ops)), deps)
    producer = np.fromiter(chain.from_iterable(op.deps for op in graph.ops), dtype=np.int64, count=sum(deps))
    is_linear = np.array([op.kind == OpKind.LINEAR for op in graph.ops], dtype=bool)
    is_dram_op = np.array([op.kind in DRAM_OPS for op in graph.ops], dtype=bool)
    return _anchor_linear(consumer, producer, is_linear, is_dram_op)


def _anchor_linear(consumer: np.ndarray, producer: np.ndarray, is_linear: np.ndarray,
                   is_dram_op: np.ndarray) -> np.ndarray:
    """The Linear op whose reduction core each op runs on (-1: none, core 0).

    A Linear anchors itself; a digital single-node op follows its latest producer that
    is not a DRAM op (highest op id: in a chunk-major graph the current chunk's, not an
    earlier chunk's K/V), so chains like qk -> softmax -> av or add -> LayerNorm stay on
    the node where their input was reduced and hand-offs need no transfer. DRAM ops run
    at the DRAM controller and anchor nothing. (consumer, producer): every dep, in
    consumer order. Chains are followed by pointer doubling, a few vector passes.
    """
    n_ops = is_linear.shape[0]
    latest = np.full(n_ops, -1, dtype=np.int64)
    if consumer.shape[0]:
        counts = np.bincount(consumer, minlength=n_ops)
        has_deps = counts > 0
        on_cores = np.where(is_dram_op[producer], -1, producer)
        latest[has_deps] = np.maximum.reduceat(on_cores, (np.cumsum(counts) - counts)[has_deps])
    anchor = np.where(is_linear, np.arange(n_ops), np.where(is_dram_op, -1, latest))
    while True:
        pending = np.flatnonzero((anchor >= 0) & ~is_linear[np.maximum(anchor, 0)])
        if not pending.shape[0]:
            return anchor
        anchor[pending] = anchor[anchor[pending]]


@njit(cache=True)
def _earlier_consumer(consumer: np.ndarray, producer: np.ndarray, node: np.ndarray, n_ops: int,
                      n_nodes: int) -> np.ndarray:
    """Per (consumer, producer) pair, listed in consumer order: the latest earlier consumer
    on the same node (node >= 0) of the same producer, whose input is therefore already
    there; -1 where the output must be delivered.

    Waiting for that consumer rather than the producer models a node that uses resident
    data in op order (attention of chunk c after chunk c-1's, which had the K/V of every
    chunk before): the producer stays in the dependency closure, and chunk c's attention
    needs one edge instead of c. Linear time: a stable counting sort groups the pairs by
    producer (consumer order kept inside a group); per node, the latest consumer of the
    current producer.
    """
    n_pairs = producer.shape[0]
    group_start = np.zeros(n_ops + 1, dtype=np.int64)
    for i in range(n_pairs):
        group_start[producer[i] + 1] += 1
    for p in range(n_ops):
        group_start[p + 1] += group_start[p]
    by_producer = np.empty(n_pairs, dtype=np.int64)
    for i in range(n_pairs):
        by_producer[group_start[producer[i]]] = i
        group_start[producer[i]] += 1
    reached_by = np.full(n_nodes, -1, dtype=np.int64)
    latest_consumer = np.full(n_nodes, -1, dtype=np.int64)
    earlier = np.full(n_pairs, -1, dtype=np.int64)
    for i in by_producer:
        if node[i] >= 0:
            if reached_by[node[i]] == producer[i]:
                earlier[i] = latest_consumer[node[i]]
            reached_by[node[i]] = producer[i]
            latest_consumer[node[i]] = consumer[i]
    return earlier


@njit(cache=True)
def _new_waits(consumer: np.ndarray, producer: np.ndarray, earlier: np.ndarray, n_ops: int) -> np.ndarray:
    """Mask over (consumer, producer) pairs in consumer order: the pairs whose earlier
    consumer (`_earlier_consumer`) the consumer must wait for. One per distinct earlier
    consumer, none when it is already a dep of the consumer (that dep implies it).
    Linear: one stamp per op."""
    seen_by = np.full(n_ops, -1, dtype=np.int64)
    waits = np.zeros(consumer.shape[0], dtype=np.bool_)
    start = 0
    while start < consumer.shape[0]:
        end = start
        while end < consumer.shape[0] and consumer[end] == consumer[start]:
            seen_by[producer[end]] = consumer[end]
            end += 1
        for i in range(start, end):
            if earlier[i] >= 0 and seen_by[earlier[i]] != consumer[i]:
                waits[i] = True
                seen_by[earlier[i]] = consumer[i]
        start = end
    return waits


@njit(cache=True)
def _group_by_task(task: np.ndarray, pred: np.ndarray, n_tasks: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (pred_ptr, pred_idx) of (task, pred) edges, each task's preds in input order:
    a stable counting sort, linear where an argsort of millions of edges is not."""
    pred_ptr = np.zeros(n_tasks + 1, dtype=np.int64)
    for t in task:
        pred_ptr[t + 1] += 1
    for t in range(n_tasks):
        pred_ptr[t + 1] += pred_ptr[t]
    fill = pred_ptr[:-1].copy()
    pred_idx = np.empty(task.shape[0], dtype=np.int32)
    for i in range(task.shape[0]):
        pred_idx[fill[task[i]]] = pred[i]
        fill[task[i]] += 1
    return pred_ptr, pred_idx


def _concat(chunks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class _ProgramTasks:
    """Reprogramming tasks of a time-multiplexed mapping, sorted by epoch.

    MVM references are (op id, fragment-local task id); `edges` turns them into global ids.
    """

    epoch: np.ndarray  # epoch of each program task, ascending
    tile: np.ndarray  # tile (= resource id) of each program task
    cells: np.ndarray  # weights (active rows x columns) each program task writes
    wait_program: np.ndarray  # program task index an MVM waits for ...
    wait_op: np.ndarray  # ... that MVM's op id ...
    wait_task: np.ndarray  # ... and its local task id
    drain_program: np.ndarray  # program task index that waits for an MVM ...
    drain_op: np.ndarray
    drain_task: np.ndarray

    def edges(self, program_id: np.ndarray, entry_id: np.ndarray, op_offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(task, pred) global id pairs: MVMs after their program task, a program unit's
        entry (its DRAM read) after the MVMs that used the tile's previous contents."""
        waiting_mvm = op_offset[self.wait_op] + self.wait_task
        drained_mvm = op_offset[self.drain_op] + self.drain_task
        return (np.concatenate([waiting_mvm, entry_id[self.drain_program]]),
                np.concatenate([program_id[self.wait_program], drained_mvm]))


def _program_tasks(fragments: list[Fragment], stages: np.ndarray, rounds: int) -> _ProgramTasks:
    """Where tiles must be reprogrammed, and the ordering that reprogramming imposes.

    Epochs run in order (decode step, then program round). The run starts with every
    tile holding its round-0 weights (programmed before time 0, like a mapping without
    time multiplexing). A tile is reprogrammed when an epoch uses it for a different
    round than the one it holds: the program task waits for every MVM since the tile's
    previous programming, and every MVM of the new contents waits for the program task.
    """
    op_of_mvm = np.repeat(np.arange(len(fragments)), [f.mvm_tasks.shape[0] for f in fragments])
    local = _concat([f.mvm_tasks for f in fragments])
    tile = _concat([f.mvm_tiles for f in fragments])
    cells = _concat([f.mvm_cells for f in fragments])
    epoch = stages[op_of_mvm]
    order = np.lexsort((epoch, tile))
    op_of_mvm, local, tile, epoch, cells = op_of_mvm[order], local[order], tile[order], epoch[order], cells[order]
    held_round = epoch % rounds
    new_tile = np.ones(tile.shape[0], dtype=bool)
    new_tile[1:] = tile[1:] != tile[:-1]
    previous_round = np.where(new_tile, 0, np.concatenate([[0], held_round[:-1]]))
    programs_here = held_round != previous_round  # only true at the first MVM of an epoch
    segment = np.cumsum(new_tile | programs_here) - 1  # runs of MVMs on one tile's contents
    n_segments = int(segment[-1]) + 1 if segment.shape[0] else 0
    segment_program = np.full(n_segments + 1, -1, dtype=np.int64)  # +1: sentinel for "no next"
    segment_program[segment[programs_here]] = np.arange(int(programs_here.sum()))
    # sort program tasks by epoch (stable keeps tile order) and renumber
    program_epoch, program_tile = epoch[programs_here], tile[programs_here]
    by_epoch = np.argsort(program_epoch, kind="stable")
    rank = np.empty_like(by_epoch)
    rank[by_epoch] = np.arange(by_epoch.shape[0])
    segment_program[:-1] = np.where(segment_program[:-1] >= 0, rank[np.maximum(segment_program[:-1], 0)], -1)
    segment_starts_tile = np.concatenate([new_tile[new_tile | programs_here], [True]])
    waits = segment_program[segment] >= 0
    next_program = segment_program[segment + 1]
    drains = (next_program >= 0) & ~segment_starts_tile[segment + 1]  # next contents, same tile
    return _ProgramTasks(
        epoch=program_epoch[by_epoch], tile=program_tile[by_epoch], cells=cells[programs_here][by_epoch],
        wait_program=segment_program[segment[waits]], wait_op=op_of_mvm[waits], wait_task=local[waits],
        drain_program=next_program[drains], drain_op=op_of_mvm[drains], drain_task=local[drains])


def lower(graph: Graph, mapping: Mapping, hw: HwConfig) -> TaskGraph:
    """Lower one mapping; use `Lowerer` directly to lower many mappings of one graph."""
    return Lowerer(graph, hw).lower(mapping)
