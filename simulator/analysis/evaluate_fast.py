"""Placement of the search's candidate mappings, memoised per projection.

`place_targets` recomputes every analog projection's reduction cores (a nearest-core
search over the mesh per column group) for every candidate: on GPT-2's 49 projections
that was most of a candidate's placement time (benchmarks/mapping_eval.py). Under its
policy an analog projection's Placement is a function of (projection, first tile,
program round) alone (tiles contiguous in model order, rounds packed in model order),
so `MemoPlacer` computes each such Placement once and only walks the projections per
candidate. The result equals `place_targets` exactly (tests/test_evaluate_fast.py); any
candidate `place_targets` would reject is handed to it, so the error is its own.
Reusing the same Placement objects also makes the Lowerer's fragment-cache keys equal
by identity, which Python compares first.
"""
from __future__ import annotations

from simulator.hw.schema import HwConfig
from simulator.interconnect.mesh import build_topology
from simulator.ir.graph import Graph
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping, Placement
from simulator.mapping.place import block_grid, place_targets, reduction_cores


class MemoPlacer:
    """`place_targets(graph, hw, targets)` for sets of analog projection names, memoised."""

    def __init__(self, graph: Graph, hw: HwConfig):
        self.graph, self.hw = graph, hw
        self._topology = build_topology(hw)
        self._grids = [block_grid(p, hw.analog) for p in graph.projections]
        all_cores = tuple(range(hw.digital.cores))
        self._digital = [Placement(p.name, DIGITAL, cores=all_cores) for p in graph.projections]
        self._analog: dict[tuple[int, int, int], Placement] = {}

    def mapping(self, analog: frozenset[str], strategy: str = "explicit") -> Mapping:
        tiles = self.hw.analog.tiles
        placements, round_index, used, needed = [], 0, 0, 0
        for index, projection in enumerate(self.graph.projections):
            if projection.name not in analog:
                placements.append(self._digital[index])
                continue
            rows, cols = self._grids[index]
            blocks = rows * cols
            if blocks > tiles:  # fits no round
                return self._place_targets(analog, strategy)  # raises place.py's capacity error
            if used + blocks > tiles:  # the next programming round (place.py: _pack_rounds)
                round_index, used = round_index + 1, 0
            placements.append(self._analog_placement(index, used, round_index))
            used += blocks
            needed += blocks
        if needed > tiles and not self.hw.analog.allow_time_multiplexing:
            return self._place_targets(analog, strategy)  # raises place.py's capacity error
        rounds = round_index + 1 if needed else 1
        return Mapping(tuple(placements), strategy=strategy, program_rounds=rounds)

    def _analog_placement(self, index: int, first_tile: int, round_index: int) -> Placement:
        key = (index, first_tile, round_index)
        placement = self._analog.get(key)
        if placement is None:
            projection = self.graph.projections[index]
            rows, cols = self._grids[index]
            tiles = tuple(range(first_tile, first_tile + rows * cols))
            placement = self._analog[key] = Placement(
                projection.name, ANALOG,
                cores=reduction_cores(self._topology, tiles, rows, cols, 1, self.hw.analog.reduction_col_blocks),
                tiles=tiles, row_blocks=rows, col_blocks=cols, replicas=1, program_round=round_index)
        return placement

    def _place_targets(self, analog: frozenset[str], strategy: str) -> Mapping:
        targets = {p.name: ANALOG if p.name in analog else DIGITAL for p in self.graph.projections}
        return place_targets(self.graph, self.hw, targets, strategy=strategy)


class RunDefaultCost:
    """Latency and energy of a set of analog projections at `aimcsim run`'s default chunking
    (`--chunk-tokens auto`, simulator.run.choose_chunking), with one Lowerer per chunk size
    kept across mappings: what `aimcsim run --mapping` reports for the search's mapping.

    The search costs its candidates at one chunk (coarser, far fewer tasks); the mappings it
    returns are re-costed here before they are reported.
    """

    def __init__(self, workload: str, phase: str, hw: HwConfig, seq: int, batch: int = 1, new_tokens: int = 16):
        self.workload, self.phase, self.hw = workload, phase, hw
        self._graph_kw = dict(batch=batch, seq=seq, new_tokens=new_tokens)
        self._by_chunk: dict[int | None, tuple[Graph, object, MemoPlacer]] = {}

    def __call__(self, analog: frozenset[str]):
        """(Cost, chunk_tokens chosen; None: one chunk)."""
        from simulator.analysis.search import Cost, schedule_cost
        from simulator.engine import fast
        from simulator.run import AUTO_MIN_GAIN, AUTO_TASK_BUDGET, choose_chunking

        runs, costs = [], {}
        size: int | None = None
        while True:
            tg = self._lowered(size, frozenset(analog))
            schedule = fast.simulate(tg)
            runs.append((size, tg.n_tasks, schedule.makespan_cycles))
            costs[size] = schedule_cost(tg, schedule, self.hw.digital.sram_static_power_mw)
            if self.phase == "decode":
                break
            size = choose_chunking(runs, self._graph_kw["seq"], AUTO_TASK_BUDGET)
            if size is None:
                break
        best = runs[0]
        for run in runs[1:]:  # simulator.run._auto_chunk_tokens: the last clearly faster size
            if run[2] <= (1 - AUTO_MIN_GAIN) * best[2]:
                best = run
        chosen: Cost = costs[best[0]]
        return chosen, best[0]

    def _lowered(self, chunk_tokens: int | None, analog: frozenset[str]):
        from simulator.engine.lower import Lowerer
        from workloads.registry import build_graph

        if chunk_tokens not in self._by_chunk:
            graph = build_graph(self.workload, self.phase, chunk_tokens=chunk_tokens, **self._graph_kw)
            self._by_chunk[chunk_tokens] = (graph, Lowerer(graph, self.hw), MemoPlacer(graph, self.hw))
        _, lowerer, placer = self._by_chunk[chunk_tokens]
        return lowerer.lower(placer.mapping(analog))
