"""Accuracy-constrained analog/digital mapping search.

The decision unit is a group of projections (one projection, one block, or one
projection type across blocks). Two searchers share one problem statement:

* `greedy_search`: the LionHeart baseline (Lammie et al.): groups by MACs, largest
  first, each tried once and kept if the *measured* degradation of the accepted set
  stays within the budget (and the tiles still fit).
* `optimise`: a MILP over binary x_g (scipy.optimize.milp). Gains come from the timing
  engine (each group's marginal gain around greedy's mapping), accuracy from a proxy: the profile's
  analog-alone degradations, summed and scaled by a calibration factor fitted to full
  runs. The MILP choice is verified by a full functional run; on a miss the proxy budget
  is tightened by measured/predicted and that exact set is cut off, a bounded number of
  times. The result is never worse than greedy: if it is, greedy's mapping is returned
  and the result says so.
* `local_search`: starts from the best verified mapping of the two and tries moves
  (add one group, drop one, or swap one analog group for one or two digital ones). The proxy is
  refitted to every verified point after each run; a move is costed exactly by the
  engine and verified only if it improves the objective, most promising first
  (improvement x probability of staying within budget). Only verified, improving moves
  are accepted, so it never ends worse than where it started.

Costs and measurements are callables, so the algorithms run on synthetic numbers in
tests and on (Lowerer + fast engine, functional probe) in `aimcsim search`.
"""
from __future__ import annotations

import itertools
import math

from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from simulator.analysis.evaluate_fast import MemoPlacer
from simulator.analysis.profile import projection_layer, projection_type
from simulator.engine import fast
from simulator.engine.lower import Lowerer
from simulator.engine.taskgraph import Schedule, TaskGraph
from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph
from simulator.mapping.mapping import Mapping
from simulator.mapping.resolve import tile_capacity, tiles_needed
from simulator.report.build import energy_breakdown_pj

OBJECTIVES = ("latency", "energy", "edp")
GRANULARITIES = ("projection", "layer", "type")


@dataclass(frozen=True)
class Cost:
    latency_ns: float
    energy_pj: float

    def objective(self, name: str) -> float:
        if name == "latency":
            return self.latency_ns
        if name == "energy":
            return self.energy_pj
        return self.latency_ns * self.energy_pj  # edp in ns*pJ


@dataclass(frozen=True)
class Group:
    """A unit of the analog/digital decision."""

    name: str
    projections: tuple[str, ...]
    macs: int  # per forward, for the greedy order
    tiles: int  # tile blocks when analog
    delta: float  # profile analog-alone degradation at the horizon, summed over members


@dataclass(frozen=True)
class Problem:
    groups: tuple[Group, ...]
    objective: str
    budget: float  # allowed degradation at the horizon
    tile_capacity: int | None  # None: the hardware time-multiplexes, capacity is in the cost


@dataclass(frozen=True)
class Candidate:
    groups: frozenset[str]
    projections: frozenset[str]
    cost: Cost
    delta: float
    verified: bool  # delta measured by a functional run (else the calibrated proxy)


@dataclass(frozen=True)
class OptimiseRound:
    proxy_budget: float
    predicted_delta: float
    measured_delta: float
    objective: float
    groups: tuple[str, ...]


@dataclass(frozen=True)
class OptimiseResult:
    chosen: Candidate
    calibration: float
    rounds: tuple[OptimiseRound, ...]
    fell_back_to_greedy: bool
    note: str = ""


@dataclass(frozen=True)
class GreedyResult:
    chosen: Candidate
    tried: tuple[tuple[str, bool, float], ...] = field(default=())  # (group, accepted, measured)


CostFn = Callable[[frozenset[str]], Cost]  # analog projection names -> cost
MeasureFn = Callable[[frozenset[str]], float]  # analog projection names -> mean degradation


def schedule_cost(tg: TaskGraph, schedule: Schedule, sram_static_power_mw_per_core: float = 0.0) -> Cost:
    """Makespan and total energy as `aimcsim run` reports them: task energies plus static
    power (resources and every core's SRAM) over the makespan."""
    breakdown = energy_breakdown_pj(tg, schedule.makespan_cycles, sram_static_power_mw_per_core)
    return Cost(schedule.makespan_cycles * tg.cycle_ns, float(sum(breakdown.values())))


class CachedCost:
    """A cost function memoised by analog set: greedy, the MILP rounds, the local search, the
    budget sweep and the front all re-cost mappings another stage has already costed."""

    def __init__(self, cost: CostFn):
        self._cost = cost
        self._known: dict[frozenset[str], Cost] = {}

    def __call__(self, analog: frozenset[str]) -> Cost:
        analog = frozenset(analog)
        if analog not in self._known:
            self._known[analog] = self._cost(analog)
        return self._known[analog]

    @property
    def evaluations(self) -> int:
        return len(self._known)


class EngineCost:
    """Cost of a set of analog projections on one graph and config: place, lower, fast engine.

    The Lowerer and the placements are built once and reused (evaluate_fast.MemoPlacer), so
    one evaluation costs milliseconds (benchmarks/mapping_eval.py).
    """

    def __init__(self, graph: Graph, hw: HwConfig):
        self.graph, self.hw = graph, hw
        self.lowerer = Lowerer(graph, hw)
        self.placer = MemoPlacer(graph, hw)

    def mapping(self, analog: frozenset[str], strategy: str = "explicit") -> Mapping:
        return self.placer.mapping(frozenset(analog), strategy)

    def tiles(self, projection_name: str) -> int:
        return tiles_needed(self.graph.projection(projection_name), self.hw.analog)

    def tile_capacity(self) -> int | None:  # the one capacity rule (mapping/resolve.py)
        return tile_capacity(self.hw)

    def __call__(self, analog: frozenset[str]) -> Cost:
        tg = self.lowerer.lower(self.mapping(analog))
        return schedule_cost(tg, fast.simulate(tg), self.hw.digital.sram_static_power_mw)


def make_groups(projections: Sequence[tuple[str, int, int]], deltas: dict[str, float],
                granularity: str) -> tuple[Group, ...]:
    """Groups from (name, macs, tiles) triples in model order; deltas are per projection."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    key = {"projection": lambda n: n,
           "layer": lambda n: f"block {projection_layer(n)}" if projection_layer(n) >= 0 else n,
           "type": projection_type}[granularity]
    members: dict[str, list[tuple[str, int, int]]] = {}
    for entry in projections:
        members.setdefault(key(entry[0]), []).append(entry)
    return tuple(Group(name=g, projections=tuple(n for n, _, _ in items),
                       macs=sum(m for _, m, _ in items), tiles=sum(t for _, _, t in items),
                       delta=sum(deltas[n] for n, _, _ in items))
                 for g, items in members.items())


def projections_of(problem: Problem, group_names) -> frozenset[str]:
    chosen = set(group_names)
    return frozenset(p for g in problem.groups if g.name in chosen for p in g.projections)


def fits_capacity(problem: Problem, group_names) -> bool:
    if problem.tile_capacity is None:
        return True
    chosen = set(group_names)
    return sum(g.tiles for g in problem.groups if g.name in chosen) <= problem.tile_capacity


def greedy_search(problem: Problem, cost: CostFn, measure: MeasureFn) -> GreedyResult:
    """LionHeart: largest MACs first, each group tried once, kept if measured within budget."""
    accepted: list[str] = []
    accepted_delta = 0.0
    tried = []
    for group in sorted(problem.groups, key=lambda g: (-g.macs, g.name)):
        trial = accepted + [group.name]
        if not fits_capacity(problem, trial):
            tried.append((group.name, False, float("nan")))
            continue
        measured = float(measure(projections_of(problem, trial)))
        keep = measured <= problem.budget
        tried.append((group.name, keep, measured))
        if keep:
            accepted, accepted_delta = trial, measured
    projections = projections_of(problem, accepted)
    chosen = Candidate(frozenset(accepted), projections, cost(projections), accepted_delta, True)
    return GreedyResult(chosen, tuple(tried))


def group_gains(problem: Problem, cost: CostFn, reference: frozenset[str] = frozenset()) -> tuple[Cost, np.ndarray]:
    """The reference mapping's cost and, per group, the objective gain of that group being
    analog with every other group as in `reference` (a set of group names): the first-order
    expansion of the objective around the reference that the MILP maximises.

    Around all digital (the default) a group's gain is all-digital minus the group alone
    analog. On a weight-stationary fabric that has the wrong sign for most groups: one
    analog projection among digital ones adds transfers to and from its tiles on the
    critical path, while many analog projections stream from tile to tile and free the
    cores (docs/analysis.md), so the search expands around greedy's verified mapping. A
    group whose addition would not fit the tiles keeps its all-digital gain (the capacity
    constraint rules it out anyway). For `edp` the gain is the first-order change of
    log(EDP), dL/L_ref + dE/E_ref, so the MILP objective stays linear.
    """
    base = cost(projections_of(problem, reference))
    gains = []
    for group in problem.groups:
        if group.name in reference:
            analog, digital = base, cost(projections_of(problem, reference - {group.name}))
        elif fits_capacity(problem, reference | {group.name}):
            analog, digital = cost(projections_of(problem, reference | {group.name})), base
        else:
            analog, digital = cost(frozenset(group.projections)), cost(frozenset())
        if problem.objective == "edp":
            gains.append((digital.latency_ns - analog.latency_ns) / base.latency_ns
                         + (digital.energy_pj - analog.energy_pj) / base.energy_pj)
        else:
            gains.append(digital.objective(problem.objective) - analog.objective(problem.objective))
    return base, np.array(gains)


def solve_milp(problem: Problem, gains: np.ndarray, calibration: float, proxy_budget: float,
               excluded: Sequence[frozenset[str]] = (), deltas: np.ndarray | None = None) -> frozenset[str]:
    """Groups maximising the summed gain with calibration * sum(delta) <= proxy_budget.

    `deltas`: per-group degradations (default: the profile's). Negative ones (noise that
    happened to help) count as zero, so no group can buy budget for another. `excluded`
    are exact sets already refuted by verification.
    """
    n = len(problem.groups)
    deltas = np.array([g.delta for g in problem.groups]) if deltas is None else np.asarray(deltas, dtype=float)
    deltas = np.maximum(deltas, 0.0) * calibration
    rows, upper = [deltas], [proxy_budget]
    if problem.tile_capacity is not None:
        rows.append(np.array([g.tiles for g in problem.groups], dtype=float))
        upper.append(problem.tile_capacity)
    names = [g.name for g in problem.groups]
    for refuted in excluded:
        rows.append(np.array([1.0 if name in refuted else 0.0 for name in names]))
        upper.append(len(refuted) - 1)
    result = milp(c=-gains, integrality=np.ones(n), bounds=Bounds(0, 1),
                  constraints=LinearConstraint(np.vstack(rows), -np.inf, np.array(upper, dtype=float)))
    if result.x is None:  # only possible when every set is excluded; all digital is always feasible
        return frozenset()
    return frozenset(name for name, x in zip(names, result.x) if x > 0.5 and gains[names.index(name)] > 0)


def fit_calibration(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares factor c with measured ~= c * summed profile delta, through the origin.

    `points` are (summed delta, measured delta) of full runs. With no informative point,
    or a non-positive fit, it is 1.0: the profile deltas are then used as they are.
    """
    informative = [(s, m) for s, m in points if s > 0]
    if not informative:
        return 1.0
    s, m = np.array(informative).T
    return max(float(np.dot(s, m) / np.dot(s, s)), 0.0) or 1.0


def proxy_delta(problem: Problem, group_names, calibration: float) -> float:
    chosen = set(group_names)
    return calibration * sum(max(g.delta, 0.0) for g in problem.groups if g.name in chosen)


def optimise(problem: Problem, cost: CostFn, measure: MeasureFn, greedy: GreedyResult,
             calibration: float, max_rounds: int = 6) -> OptimiseResult:
    """MILP on the calibrated proxy, verified by `measure`, never worse than greedy.

    The proxy budget is searched, not fixed: a verified mapping with slack relaxes it (scaled
    by budget / measured), a refuted one tightens it and is cut off; once both a verifying and
    a refuted proxy budget are known, the next one lies between them. The best verified
    mapping of all rounds is kept. Stops when the MILP repeats itself or after max_rounds.
    """
    _, gains = group_gains(problem, cost, greedy.chosen.groups)
    proxy_budget, refuted, rounds, seen = problem.budget, [], [], set()
    verified_at, refuted_at = 0.0, math.inf  # proxy budgets known to verify / to fail
    best: Candidate | None = None
    for _ in range(max_rounds):
        groups = solve_milp(problem, gains, calibration, proxy_budget, refuted)
        if groups in seen:
            break
        seen.add(groups)
        projections = projections_of(problem, groups)
        predicted = proxy_delta(problem, groups, calibration)
        measured = float(measure(projections))
        candidate = Candidate(groups, projections, cost(projections), measured, True)
        rounds.append(OptimiseRound(proxy_budget, predicted, measured,
                                    candidate.cost.objective(problem.objective), tuple(sorted(groups))))
        if measured <= problem.budget:
            verified_at = max(verified_at, proxy_budget)
            if best is None or (candidate.cost.objective(problem.objective)
                                < best.cost.objective(problem.objective)):
                best = candidate
        else:
            refuted.append(groups)
            refuted_at = min(refuted_at, proxy_budget)
        proxy_budget = _next_proxy_budget(min(proxy_budget, predicted) if measured > problem.budget
                                          else proxy_budget, problem.budget / max(measured, 1e-12),
                                          verified_at, refuted_at)
    greedy_objective = greedy.chosen.cost.objective(problem.objective)
    if best is None:
        return OptimiseResult(greedy.chosen, calibration, tuple(rounds), True,
                              f"no MILP mapping verified within budget in {len(rounds)} rounds")
    if best.cost.objective(problem.objective) > greedy_objective:
        return OptimiseResult(greedy.chosen, calibration, tuple(rounds), True,
                              "verified MILP mapping was worse than greedy")
    return OptimiseResult(best, calibration, tuple(rounds), False)


def _next_proxy_budget(current: float, scale: float, verified_at: float, refuted_at: float) -> float:
    """Scale the proxy budget by budget / measured, kept strictly between the known bounds."""
    proposal = current * scale
    if refuted_at < math.inf and not verified_at < proposal < refuted_at:
        proposal = (verified_at + refuted_at) / 2
    return proposal


# The proxy's error std never drops below this fraction of the budget: a fit through few
# points can be exact without the next measurement being so.
MIN_SIGMA_FRACTION_OF_BUDGET = 0.02


@dataclass(frozen=True)
class MarginalProxy:
    """Additive per-group degradations fitted to measured sets.

    `sigma` is the RMS misfit on the measured sets: how far a prediction may be off.
    """

    weights: dict[str, float]
    sigma: float

    def move_delta(self, measured_delta: float, removed, added) -> float:
        """Degradation after a move, anchored at the measured degradation of its start."""
        return (measured_delta + sum(self.weights[g] for g in added)
                - sum(self.weights[g] for g in removed))


def fit_marginal_proxy(problem: Problem, points: Sequence[tuple[frozenset[str], float]],
                       min_sigma: float, prior_weight: float = 0.1) -> MarginalProxy:
    """Weighted least squares over every verified set plus the profile's group deltas.

    The verified sets (greedy's trials, the MILP rounds, all-analog, local moves) measure a
    group among others, which is what a move changes; the profile measures it alone. The
    profile rows therefore enter with `prior_weight`: they decide groups no verified set
    separates, and yield where joint runs disagree with them.
    """
    names = [g.name for g in problem.groups]
    n = len(names)
    set_rows = np.array([[1.0 if name in groups else 0.0 for name in names] for groups, _ in points]
                        ).reshape(len(points), n)
    set_targets = np.array([measured for _, measured in points], dtype=float)
    rows = np.vstack([prior_weight * np.eye(n), set_rows])
    targets = np.concatenate([prior_weight * np.array([g.delta for g in problem.groups]), set_targets])
    weights = np.linalg.lstsq(rows, targets, rcond=None)[0]
    misfit = set_rows @ weights - set_targets
    rms = float(np.sqrt(np.mean(misfit ** 2))) if len(points) else 0.0
    return MarginalProxy(dict(zip(names, weights.tolist())), max(rms, min_sigma))


def within_budget_probability(predicted: float, budget: float, sigma: float) -> float:
    """P(measured <= budget) for a Gaussian error of std sigma around the prediction."""
    if sigma <= 0:
        return float(predicted <= budget)
    return 0.5 * (1.0 + math.erf((budget - predicted) / (sigma * math.sqrt(2.0))))


def neighbourhood(problem: Problem, state: frozenset[str]) -> Iterator[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(removed, added) moves: add one digital group; drop one analog group (it can be the
    slower side for latency) or swap it for one or two digital groups."""
    inside = sorted(state)
    outside = sorted(g.name for g in problem.groups if g.name not in state)
    for group in outside:
        yield (), (group,)
    for removed in inside:
        yield (removed,), ()
        for group in outside:
            yield (removed,), (group,)
        for pair in itertools.combinations(outside, 2):
            yield (removed,), pair


@dataclass(frozen=True)
class LocalStep:
    """One verified move of the local search."""

    removed: tuple[str, ...]
    added: tuple[str, ...]
    predicted_delta: float
    within_budget_probability: float
    measured_delta: float
    objective: float
    accepted: bool


@dataclass(frozen=True)
class LocalSearchResult:
    chosen: Candidate
    steps: tuple[LocalStep, ...]
    stop_reason: str

    @property
    def improved(self) -> bool:
        return any(step.accepted for step in self.steps)


DEFAULT_COSTED_SWAPS = 200  # swap moves the local search costs at a time (see local_search)


class _Move(NamedTuple):
    """A local-search move from the current state, with its predicted degradation."""

    removed: tuple[str, ...]
    added: tuple[str, ...]
    groups: frozenset[str]  # the state after the move
    predicted_delta: float
    probability: float  # of staying within budget

    @property
    def flips(self) -> int:
        return len(self.removed) + len(self.added)


def local_search(problem: Problem, cost: CostFn, measure: MeasureFn, start: Candidate,
                 points: Sequence[tuple[frozenset[str], float]], max_verifications: int,
                 min_probability: float = 0.05, costed_swaps: int = DEFAULT_COSTED_SWAPS) -> LocalSearchResult:
    """Verified local search from a verified, within-budget `start`.

    Each round refits the proxy to all verified points and keeps the moves whose predicted
    degradation stays within budget with probability >= min_probability. Single flips
    (add one group, drop one) are costed with the engine; a swap's improvement is first
    predicted as the sum of its flips' (the expansion around the current state), and only
    the `costed_swaps` swaps with the largest predicted improvement x probability are
    costed first (0: all of them; a round has O(groups^3) swaps, 7,000 at 49 groups, which
    made the search take most of an hour); the next `costed_swaps` in that order only when
    none so far improves, and so on, so the search still ends at a local optimum of the
    whole neighbourhood. The costed move with the largest exact improvement x probability
    is verified, and accepted only if its measured degradation is within budget. Stops
    when no untried move is left or after max_verifications functional runs.
    """
    objective = problem.objective
    known = {groups: delta for groups, delta in points}
    costs: dict[frozenset[str], Cost] = {}

    def cost_of(groups: frozenset[str]) -> Cost:
        if groups not in costs:
            costs[groups] = cost(projections_of(problem, groups))
        return costs[groups]

    state, steps = start, []
    min_sigma = MIN_SIGMA_FRACTION_OF_BUDGET * problem.budget
    while len(steps) < max_verifications:
        proxy = fit_marginal_proxy(problem, list(known.items()), min_sigma)
        current = state.cost.objective(objective)
        moves = []
        for removed, added in neighbourhood(problem, state.groups):
            groups = (state.groups - set(removed)) | set(added)
            if groups in known or not fits_capacity(problem, groups):
                continue
            predicted = proxy.move_delta(state.delta, removed, added)
            probability = within_budget_probability(predicted, problem.budget, proxy.sigma)
            if probability >= min_probability:
                moves.append(_Move(removed, added, groups, predicted, probability))
        singles = [m for m in moves if m.flips == 1]
        swaps = [m for m in moves if m.flips > 1]
        step = costed_swaps or max(len(swaps), 1)
        if len(swaps) > step:  # screened: rank by predicted improvement x chance (costs every fitting flip)
            flip_gain = {g.name: current - cost_of(state.groups ^ {g.name}).objective(objective)
                         for g in problem.groups if fits_capacity(problem, state.groups ^ {g.name})}
            swaps.sort(reverse=True,
                       key=lambda m: sum(flip_gain.get(g, -math.inf) for g in m.removed + m.added) * m.probability)
        batches = [singles + swaps[:step]] + [swaps[k:k + step] for k in range(step, len(swaps), step)]
        best_move, best_score = None, 0.0
        for batch in batches:  # the next batch only if none so far improves
            for move in batch:
                score = (current - cost_of(move.groups).objective(objective)) * move.probability
                if score > best_score:
                    best_move, best_score = move, score
            if best_move is not None:
                break
        if best_move is None:
            return LocalSearchResult(state, tuple(steps), "no untried improving move predicted within budget")
        removed, added, groups, predicted, probability = best_move
        projections = projections_of(problem, groups)
        measured = float(measure(projections))
        known[groups] = measured
        accepted = measured <= problem.budget
        steps.append(LocalStep(removed, added, predicted, probability, measured,
                               cost_of(groups).objective(objective), accepted))
        if accepted:
            state = Candidate(groups, projections, cost_of(groups), measured, True)
    return LocalSearchResult(state, tuple(steps), f"verification budget ({max_verifications}) spent")


def greedy_trials(greedy: GreedyResult) -> list[tuple[frozenset[str], float]]:
    """(group set, measured delta) of each set greedy measured: the accepted groups so far plus one."""
    points, accepted = [], []
    for group, keep, measured in greedy.tried:
        if not math.isnan(measured):
            points.append((frozenset(accepted + [group]), measured))
        if keep:
            accepted.append(group)
    return points


def outcome_points(outcome: SearchOutcome) -> list[tuple[frozenset[str], float]]:
    """(group set, measured delta) of every functional run of a finished search: those of
    `verified_points`, every local-search move, and all digital."""
    points = verified_points(outcome.greedy, outcome.optimised, outcome.all_analog)
    return points + local_search_points(outcome) + [(frozenset(), outcome.all_digital.delta)]


def local_search_points(outcome: SearchOutcome) -> list[tuple[frozenset[str], float]]:
    """(group set, measured delta) of each verified local-search move, in order."""
    points, state = [], outcome.optimised.chosen.groups
    for step in outcome.local.steps:
        groups = (state - set(step.removed)) | set(step.added)
        points.append((groups, step.measured_delta))
        if step.accepted:
            state = groups
    return points


def verified_points(greedy: GreedyResult, optimised: OptimiseResult,
                    all_analog: Candidate | None) -> list[tuple[frozenset[str], float]]:
    """(group set, measured delta) of every functional run so far: greedy's trials, MILP rounds, all-analog."""
    points = greedy_trials(greedy)
    points += [(frozenset(r.groups), r.measured_delta) for r in optimised.rounds]
    if all_analog is not None:
        points.append((all_analog.groups, all_analog.delta))
    return points


def additivity_check(problem: Problem, cost: CostFn, rng: np.random.Generator,
                     samples: int = 5, reference: frozenset[str] = frozenset()) -> list[dict]:
    """Does a linear objective predict a random set's gain over all digital? One row per sample.

    Two expansions: around all digital (the sum of single-group gains) and around
    `reference` (the groups' marginal gains there, as the MILP uses them). Latency is not
    additive (analog and digital work overlap, the critical path moves), energy nearly is
    (static energy follows the makespan); the relative errors say how far the MILP's
    linear objective is from the engine.
    """
    digital = cost(frozenset())
    alone = {g.name: cost(frozenset(g.projections)) for g in problem.groups}
    reference_cost = cost(projections_of(problem, reference))
    marginal = {g.name: (cost(projections_of(problem, reference - {g.name})), reference_cost) if g.name in reference
                else (reference_cost, cost(projections_of(problem, reference | {g.name})))
                for g in problem.groups if g.name in reference or fits_capacity(problem, reference | {g.name})}
    rows = []
    for _ in range(samples):
        size = int(rng.integers(2, len(problem.groups) + 1)) if len(problem.groups) > 1 else 1
        picked = {problem.groups[i].name for i in rng.choice(len(problem.groups), size, replace=False)}
        if not fits_capacity(problem, picked):
            continue
        measured = cost(projections_of(problem, picked))
        row = {"groups": len(picked)}
        for field_name in ("latency_ns", "energy_pj"):
            value = lambda c: getattr(c, field_name)  # noqa: E731
            actual = value(digital) - value(measured)
            around_digital = sum(value(digital) - value(alone[g]) for g in picked)
            changed = (picked ^ reference) & set(marginal)
            around_reference = value(digital) - value(reference_cost) + sum(
                (1 if g in picked else -1) * (value(marginal[g][0]) - value(marginal[g][1])) for g in changed)
            row[f"{field_name}_gain_measured"] = actual
            row[f"{field_name}_gain_predicted"] = around_digital
            row[f"{field_name}_rel_error"] = abs(around_digital - actual) / max(abs(actual), 1e-12)
            row[f"{field_name}_gain_predicted_around_reference"] = around_reference
            row[f"{field_name}_rel_error_around_reference"] = abs(around_reference - actual) / max(abs(actual), 1e-12)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class SearchOutcome:
    """Everything `aimcsim search` reports; `chosen` is the returned mapping's candidate."""

    problem: Problem
    greedy: GreedyResult
    optimised: OptimiseResult
    local: LocalSearchResult
    all_digital: Candidate
    all_analog: Candidate | None  # None when the whole model does not fit the tiles
    additivity: tuple[dict, ...]

    @property
    def chosen(self) -> Candidate:
        return self._better_extreme()[1]

    @property
    def source(self) -> str:
        """The stage that produced the chosen mapping."""
        extreme = self._better_extreme()[0]
        if extreme:
            return extreme
        if self.local.improved:
            return "local_search"
        return "greedy" if self.optimised.fell_back_to_greedy else "milp"

    def _better_extreme(self) -> tuple[str, Candidate]:
        """All digital (delta 0) or all analog (measured) where within budget and strictly
        better on the objective than the local search's answer, which starts from greedy's
        or the MILP's and so can miss them (hermes64: all digital beats every mix)."""
        objective, best, label = self.problem.objective, self.local.chosen, ""
        for name, candidate in (("all_digital", self.all_digital), ("all_analog", self.all_analog)):
            if (candidate is not None and candidate.delta <= self.problem.budget
                    and candidate.cost.objective(objective) < best.cost.objective(objective)):
                best, label = candidate, name
        return label, best

    def to_dict(self) -> dict:
        objective = self.problem.objective
        return {
            "objective": objective, "budget": self.problem.budget,
            "granularity_groups": len(self.problem.groups),
            "tile_capacity": self.problem.tile_capacity,
            **_candidate_dict(self.chosen, objective),
            "source": self.source,
            "note": self.optimised.note,
            "calibration": self.optimised.calibration,
            "milp_rounds": [r.__dict__ | {"groups": list(r.groups)} for r in self.optimised.rounds],
            "local_search": {"start": "greedy" if self.optimised.fell_back_to_greedy else "milp",
                             "verifications": len(self.local.steps),
                             "accepted_moves": sum(step.accepted for step in self.local.steps),
                             "stop_reason": self.local.stop_reason,
                             "steps": [step.__dict__ | {"removed": list(step.removed), "added": list(step.added)}
                                       for step in self.local.steps]},
            "greedy": _candidate_dict(self.greedy.chosen, objective)
            | {"tried": [{"group": g, "accepted": a, "measured_delta": m} for g, a, m in self.greedy.tried]},
            "all_analog": (_candidate_dict(self.all_analog, objective) if self.all_analog
                           else {"fits": False}),
            "all_digital": _candidate_dict(self.all_digital, objective),
            "additivity": list(self.additivity),
        }


def _candidate_dict(candidate: Candidate, objective: str) -> dict:
    return {"verified_delta" if candidate.verified else "proxy_delta": candidate.delta,
            "latency_ns": candidate.cost.latency_ns, "energy_pj": candidate.cost.energy_pj,
            "objective_value": candidate.cost.objective(objective),
            "analog_projections": sorted(candidate.projections)}


def search_runs_at_most(problem: Problem, max_rounds: int, max_verifications: int) -> int:
    """An upper bound on run_search's functional runs: greedy, all analog, MILP rounds, local moves."""
    return len(problem.groups) + 1 + max_rounds + max_verifications


def run_search(problem: Problem, cost: CostFn, measure: MeasureFn, rng: np.random.Generator,
               max_rounds: int = 6, max_verifications: int = 30, additivity_samples: int = 5,
               costed_swaps: int = DEFAULT_COSTED_SWAPS) -> SearchOutcome:
    """Greedy, calibration from (all-analog if it fits, greedy), verified MILP, verified local
    search from the better of the two, additivity check."""
    everything = frozenset(g.name for g in problem.groups)
    all_projections = projections_of(problem, everything)
    greedy = greedy_search(problem, cost, measure)
    calibration_points = [(proxy_delta(problem, greedy.chosen.groups, 1.0), greedy.chosen.delta)]
    all_analog = None
    if fits_capacity(problem, everything):
        all_analog = Candidate(everything, all_projections, cost(all_projections),
                               float(measure(all_projections)), True)
        calibration_points.append((proxy_delta(problem, everything, 1.0), all_analog.delta))
    optimised = optimise(problem, cost, measure, greedy, fit_calibration(calibration_points), max_rounds)
    local = local_search(problem, cost, measure, optimised.chosen,
                         verified_points(greedy, optimised, all_analog), max_verifications,
                         costed_swaps=costed_swaps)
    all_digital = Candidate(frozenset(), frozenset(), cost(frozenset()), 0.0, True)
    return SearchOutcome(problem, greedy, optimised, local, all_digital, all_analog,
                         tuple(additivity_check(problem, cost, rng, additivity_samples, greedy.chosen.groups)))
