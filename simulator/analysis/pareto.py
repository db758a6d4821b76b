"""Accuracy-cost Pareto front of the mapping search.

Two parts:
* `budget_sweep`: more points for the front, one per accuracy budget. Each budget gets
  the MILP's choice on the marginal proxy refitted to every verified run (the profile's
  alone deltas only as a weak prior), so budgets that the joint runs tell apart give
  distinct mappings; with `measure` the choice is verified and, if it exceeds its budget,
  tightened once (proxy budget x budget / measured, the refuted set cut off); a mapping
  the search already verified within the budget replaces it when its objective is better,
  so a budget's point is never worse than what the search found at that budget.
* `verified_front`: every mapping the search measured (profile singletons, greedy's
  trials, MILP rounds, local-search moves, all analog, all digital, the budget sweep),
  each costed by the engine, flagged when no other verified mapping is at least as good
  in degradation and latency (`on_latency_front`), in degradation and energy
  (`on_energy_front`), or in degradation and the objective (`on_front`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from simulator.analysis.search import (CostFn, MeasureFn, Problem, SearchOutcome, fit_marginal_proxy, fits_capacity,
                                       greedy_trials, local_search_points, projections_of, solve_milp)

# Rounds per budget: the first choice, and one tightened retry when it exceeds the budget.
BUDGET_ROUNDS = 2


@dataclass(frozen=True)
class BudgetPoint:
    """The budget sweep's mapping for one budget."""

    budget: float
    delta: float
    delta_kind: str  # "verified" (functional run) | "proxy" (fitted marginal degradations)
    latency_ns: float
    energy_pj: float
    analog_projections: tuple[str, ...]
    within_budget: bool
    source: str = "milp"  # "milp" | "best_verified" (a mapping the search verified, better than the MILP's)

    def to_dict(self) -> dict:
        return {"budget": self.budget, "delta": self.delta, "delta_kind": self.delta_kind,
                "latency_ns": self.latency_ns, "energy_pj": self.energy_pj,
                "analog_projections": list(self.analog_projections), "within_budget": self.within_budget,
                "source": self.source}


def budget_sweep(problem: Problem, cost: CostFn, measure: MeasureFn | None, gains: np.ndarray,
                 points: Sequence[tuple[frozenset[str], float]], budgets: Sequence[float]) -> list[BudgetPoint]:
    """One mapping per budget from the MILP on the marginal proxy fitted to `points`
    ((group set, measured delta) of every verified run); measure=None: proxy deltas only."""
    known = dict(points)
    result = []
    for budget in budgets:
        proxy = fit_marginal_proxy(problem, list(known.items()), min_sigma=0.0)
        weights = np.array([proxy.weights[g.name] for g in problem.groups])
        proxy_budget, refuted = float(budget), []
        for _ in range(BUDGET_ROUNDS if measure is not None else 1):
            groups = solve_milp(problem, gains, 1.0, proxy_budget, refuted, deltas=weights)
            projections = projections_of(problem, groups)
            if measure is None:
                delta, kind = float(np.maximum(weights, 0.0) @ [g.name in groups for g in problem.groups]), "proxy"
            else:
                delta, kind = float(measure(projections)), "verified"
                known[groups] = delta
            if delta <= budget or not groups:
                break
            refuted.append(groups)
            proxy_budget *= budget / max(delta, 1e-12)
        point_cost, source = cost(projections), "milp"
        if measure is not None:  # never worse than a mapping already verified within this budget
            best = _best_verified(problem, cost, known, budget)
            if best is not None and (delta > budget or best[1].objective(problem.objective)
                                     < point_cost.objective(problem.objective)):
                groups, point_cost = best
                projections, delta, source = projections_of(problem, groups), known[groups], "best_verified"
        result.append(BudgetPoint(float(budget), delta, kind, point_cost.latency_ns, point_cost.energy_pj,
                                  tuple(sorted(projections)), delta <= budget, source))
    return result


def _best_verified(problem: Problem, cost: CostFn, known: dict[frozenset[str], float], budget: float):
    """(group set, Cost) of the verified mapping within `budget` with the best objective, or None."""
    within = [(groups, cost(projections_of(problem, groups))) for groups, delta in known.items()
              if delta <= budget and fits_capacity(problem, groups)]
    return min(within, key=lambda item: (item[1].objective(problem.objective), sorted(item[0])), default=None)


@dataclass(frozen=True)
class FrontPoint:
    """One verified mapping: its measured degradation, engine cost and where it came from."""

    delta: float
    latency_ns: float
    energy_pj: float
    analog_projections: tuple[str, ...]
    sources: tuple[str, ...]
    on_front: bool = False  # non-dominated in (delta, objective)
    on_latency_front: bool = False
    on_energy_front: bool = False
    chosen: bool = False

    def to_dict(self) -> dict:
        return {"delta": self.delta, "latency_ns": self.latency_ns, "energy_pj": self.energy_pj,
                "analog": len(self.analog_projections), "analog_projections": list(self.analog_projections),
                "sources": list(self.sources), "on_front": self.on_front,
                "on_latency_front": self.on_latency_front, "on_energy_front": self.on_energy_front,
                "chosen": self.chosen}


def verified_mappings(outcome: SearchOutcome, profiled: Sequence[tuple[frozenset[str], float]],
                      sweep: Sequence[BudgetPoint]) -> dict[frozenset[str], tuple[float, list[str]]]:
    """Analog projection set -> (measured delta, stages that measured it), over the whole search.

    `profiled`: (projection set, delta) of the profile's analog-alone runs. Sweep points
    only count when verified.
    """
    problem = outcome.problem
    found: dict[frozenset[str], tuple[float, list[str]]] = {}

    def add(projections, delta: float, source: str) -> None:
        _, sources = found.setdefault(frozenset(projections), (float(delta), []))
        if source not in sources:
            sources.append(source)

    for projections, delta in profiled:
        add(projections, delta, "profile")
    for groups, delta in greedy_trials(outcome.greedy):
        add(projections_of(problem, groups), delta, "greedy")
    for round_ in outcome.optimised.rounds:
        add(projections_of(problem, round_.groups), round_.measured_delta, "milp")
    for groups, delta in local_search_points(outcome):
        add(projections_of(problem, groups), delta, "local_search")
    if outcome.all_analog is not None:
        add(outcome.all_analog.projections, outcome.all_analog.delta, "all_analog")
    add(outcome.all_digital.projections, outcome.all_digital.delta, "all_digital")
    for point in sweep:
        if point.delta_kind == "verified":
            add(point.analog_projections, point.delta, "budget_sweep")
    return found


def verified_front(mappings: dict[frozenset[str], tuple[float, list[str]]], cost: CostFn, objective: str,
                   chosen: frozenset[str]) -> list[FrontPoint]:
    """Every verified mapping costed and flagged, by degradation then latency."""
    points = []
    for projections, (delta, sources) in mappings.items():
        point_cost = cost(projections)
        points.append((delta, point_cost, projections, sources))
    coordinates = {
        "on_latency_front": [(d, c.latency_ns) for d, c, _, _ in points],
        "on_energy_front": [(d, c.energy_pj) for d, c, _, _ in points],
        "on_front": [(d, c.objective(objective)) for d, c, _, _ in points],
    }
    fronts = {key: non_dominated(values) for key, values in coordinates.items()}
    result = [FrontPoint(delta, c.latency_ns, c.energy_pj, tuple(sorted(projections)), tuple(sources),
                         chosen=projections == chosen, **{key: i in front for key, front in fronts.items()})
              for i, (delta, c, projections, sources) in enumerate(points)]
    return sorted(result, key=lambda p: (p.delta, p.latency_ns))


def non_dominated(points: Sequence[tuple[float, ...]]) -> set[int]:
    """Indices of points no other point beats or ties in every coordinate (minimisation).

    Of identical points only the first is kept; NaN coordinates are never on the front.
    """
    keep = set()
    for i, p in enumerate(points):
        if any(math.isnan(v) for v in p):
            continue
        dominated = any(all(q_k <= p_k for q_k, p_k in zip(q, p)) and (q != p or j < i)
                        for j, q in enumerate(points) if j != i)
        if not dominated:
            keep.add(i)
    return keep
