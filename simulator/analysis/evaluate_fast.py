"""Placement of the search's candidate mappings, memoised per set of analog projections.

A projection's placement depends on the others: tiles are packed in model order (a
projection larger than a round's free tiles is split over rounds) and the balanced
reduction cores weigh the work earlier projections put on each core, so `MemoPlacer`
memoises whole mappings, keyed by the set of analog projections: a search revisits many
(greedy trials, local-search moves, MILP rounds). The result is `place_targets`'s own
(tests/test_evaluate_fast.py), errors included. Reusing the same Placement objects also
makes the Lowerer's fragment-cache keys equal by identity, which Python compares first.
"""
from __future__ import annotations

from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping
from simulator.mapping.place import place_targets

_MEMO_LIMIT = 4096  # mappings kept; the memo restarts empty beyond this


class MemoPlacer:
    """`place_targets(graph, hw, targets)` for sets of analog projection names, memoised."""

    def __init__(self, graph: Graph, hw: HwConfig):
        self.graph, self.hw = graph, hw
        self._memo: dict[frozenset[str], Mapping] = {}

    def mapping(self, analog: frozenset[str], strategy: str = "explicit") -> Mapping:
        analog = frozenset(analog)
        mapping = self._memo.get(analog)
        if mapping is None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            targets = {p.name: ANALOG if p.name in analog else DIGITAL for p in self.graph.projections}
            mapping = self._memo[analog] = place_targets(self.graph, self.hw, targets, strategy="explicit")
        return mapping if mapping.strategy == strategy else Mapping(mapping.placements, strategy=strategy,
                                                                    program_rounds=mapping.program_rounds)


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
