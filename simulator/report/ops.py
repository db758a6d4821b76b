"""Operations counted the way accelerator papers count them, so a run compares with a paper.

ops = 2 x MACs of the workload graph: every multiply-accumulate of the Linear projections
(analog or digital) and of the attention products QK^T and AV counts as two operations;
elementwise work (softmax, norms, activations, residual adds, partial-sum reduction) is
not counted. This is the convention of IBM's analog-fabric studies (Burr et al., IEDM 2023
and CICC 2025, whose Table 1 splits BERT-base's ops 97 % FC : 3 % attention, as 2 x MACs
does) and of the chip figures quoted in TOPS (Le Gallo et al. 2023). Achieved TOP/s divides
the ops by the run's makespan, TOPS/W by its total energy (dynamic and static).
"""
from __future__ import annotations

from simulator.ir.graph import Graph

OPS_PER_MAC = 2


def workload_ops(graph: Graph) -> int:
    """Operations of one pass of the graph: 2 x its MACs."""
    return OPS_PER_MAC * graph.total_macs


def achieved_tops(ops: int, latency_ns: float) -> float:
    """Tera-operations per second over `latency_ns` (ops per ns / 1000); 0 for no time."""
    return ops / latency_ns / 1e3 if latency_ns > 0 else 0.0


def achieved_tops_per_w(ops: int, energy_pj: float) -> float:
    """Tera-operations per joule = TOPS/W (ops per pJ); 0 for no energy."""
    return ops / energy_pj if energy_pj > 0 else 0.0
