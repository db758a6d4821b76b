"""Accuracy-cost Pareto front of the mapping search: sweep the accuracy budget.

Each budget gets the MILP's choice on the calibrated proxy; with `verify` its
degradation is measured by a full functional run (the point says which it is). Points
not dominated in (degradation, latency, energy) form the front.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from simulator.analysis.search import (CostFn, MeasureFn, Problem, projections_of, proxy_delta,
                                       solve_milp)


@dataclass(frozen=True)
class ParetoPoint:
    budget: float
    delta: float
    delta_kind: str  # "verified" (functional run) | "proxy" (calibrated profile sum)
    latency_ns: float
    energy_pj: float
    analog_projections: tuple[str, ...]
    on_front: bool = False

    def to_dict(self) -> dict:
        return {"budget": self.budget, "delta": self.delta, "delta_kind": self.delta_kind,
                "latency_ns": self.latency_ns, "energy_pj": self.energy_pj,
                "analog_projections": list(self.analog_projections), "on_front": self.on_front}


def pareto_sweep(problem: Problem, cost: CostFn, measure: MeasureFn | None, gains: np.ndarray,
                 calibration: float, budgets: Sequence[float]) -> list[ParetoPoint]:
    """One point per budget (measure=None: proxy degradations only), front flagged."""
    points = []
    for budget in budgets:
        groups = solve_milp(problem, gains, calibration, budget)
        projections = projections_of(problem, groups)
        point_cost = cost(projections)
        if measure is None:
            delta, kind = proxy_delta(problem, groups, calibration), "proxy"
        else:
            delta, kind = float(measure(projections)), "verified"
        points.append(ParetoPoint(float(budget), delta, kind, point_cost.latency_ns,
                                  point_cost.energy_pj, tuple(sorted(projections))))
    front = non_dominated([(p.delta, p.latency_ns, p.energy_pj) for p in points])
    return [replace(p, on_front=i in front) for i, p in enumerate(points)]


def non_dominated(points: Sequence[tuple[float, ...]]) -> set[int]:
    """Indices of points no other point beats or ties in every coordinate (minimisation).

    Of identical points only the first is kept.
    """
    keep = set()
    for i, p in enumerate(points):
        dominated = any(all(q_k <= p_k for q_k, p_k in zip(q, p)) and (q != p or j < i)
                        for j, q in enumerate(points) if j != i)
        if not dominated:
            keep.add(i)
    return keep
