"""Mapping search on synthetic, hand-checkable costs and accuracies."""
import numpy as np
import pytest

from simulator.analysis.pareto import budget_sweep, non_dominated, verified_front, verified_mappings
from simulator.analysis.search import (Candidate, Cost, Group, Problem, additivity_check,
                                       fit_calibration, fit_marginal_proxy, greedy_search, group_gains,
                                       local_search, make_groups, neighbourhood, optimise, run_search,
                                       solve_milp, within_budget_probability)


def additive_world(groups, gain_ns, gain_pj, delta_scale=1.0, base=Cost(100.0, 1000.0)):
    """Exactly additive costs; measured degradation = delta_scale * sum of profile deltas."""
    by_projection = {p: g for g in groups for p in g.projections}

    def cost(analog):
        names = {by_projection[p].name for p in analog}
        return Cost(base.latency_ns - sum(gain_ns[n] for n in names),
                    base.energy_pj - sum(gain_pj[n] for n in names))

    def measure(analog):
        names = {by_projection[p].name for p in analog}
        return delta_scale * sum(g.delta for g in groups if g.name in names)

    return cost, measure


def single(name, macs, delta, tiles=1):
    return Group(name, (name,), macs, tiles, delta)


# Greedy takes the biggest group A (MACs) and then has no budget left; B + C is better.
MYOPIC = (single("A", 100, 0.9), single("B", 50, 0.5), single("C", 40, 0.5))
MYOPIC_GAIN_NS = {"A": 10.0, "B": 7.0, "C": 7.0}
MYOPIC_GAIN_PJ = {"A": 100.0, "B": 70.0, "C": 70.0}


def test_greedy_takes_largest_first_and_respects_budget():
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost, measure = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    greedy = greedy_search(problem, cost, measure)
    assert greedy.chosen.groups == {"A"}
    assert greedy.chosen.delta == pytest.approx(0.9)
    assert greedy.chosen.cost.latency_ns == pytest.approx(90.0)
    assert [t[0] for t in greedy.tried] == ["A", "B", "C"]
    assert [t[1] for t in greedy.tried] == [True, False, False]


def test_greedy_skips_groups_that_do_not_fit_the_tiles():
    groups = (single("A", 100, 0.1, tiles=3), single("B", 50, 0.1, tiles=2))
    problem = Problem(groups, "latency", budget=1.0, tile_capacity=2)
    cost, measure = additive_world(groups, {"A": 5.0, "B": 1.0}, {"A": 5.0, "B": 1.0})
    greedy = greedy_search(problem, cost, measure)
    assert greedy.chosen.groups == {"B"}
    assert np.isnan(greedy.tried[0][2])  # never measured


@pytest.mark.parametrize("objective", ["latency", "energy", "edp"])
def test_milp_beats_myopic_greedy_within_budget(objective):
    problem = Problem(MYOPIC, objective, budget=1.0, tile_capacity=None)
    cost, measure = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    greedy = greedy_search(problem, cost, measure)
    result = optimise(problem, cost, measure, greedy, calibration=1.0)
    assert not result.fell_back_to_greedy
    assert result.chosen.groups == {"B", "C"}
    assert result.chosen.delta <= 1.0
    assert result.chosen.cost.latency_ns == pytest.approx(86.0)
    assert result.chosen.cost.objective(objective) < greedy.chosen.cost.objective(objective)


def test_milp_respects_tile_capacity():
    groups = (single("A", 1, 0.0, tiles=4), single("B", 1, 0.0, tiles=3), single("C", 1, 0.0, tiles=3))
    problem = Problem(groups, "latency", budget=1.0, tile_capacity=6)
    gains = np.array([5.0, 3.0, 3.0])
    assert solve_milp(problem, gains, 1.0, 1.0) == {"B", "C"}  # 6 tiles, gain 6 > A's 5
    unlimited = Problem(groups, "latency", budget=1.0, tile_capacity=None)
    assert solve_milp(unlimited, gains, 1.0, 1.0) == {"A", "B", "C"}


def test_milp_never_picks_groups_without_gain():
    groups = (single("A", 1, 0.0), single("B", 1, 0.0))
    problem = Problem(groups, "energy", budget=1.0, tile_capacity=None)
    assert solve_milp(problem, np.array([2.0, -1.0]), 1.0, 1.0) == {"A"}


def test_verification_tightens_when_the_proxy_underestimates():
    # The real degradation is 1.6x the summed profile; the uncalibrated MILP picks B + C
    # (predicted 1.0, measured 1.6), so the loop must tighten and land within budget.
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost, measure = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ, delta_scale=1.6)
    greedy = greedy_search(problem, cost, measure)
    result = optimise(problem, cost, measure, greedy, calibration=1.0, max_rounds=4)
    first = result.rounds[0]
    assert first.groups == ("B", "C") and first.measured_delta == pytest.approx(1.6)
    assert len(result.rounds) >= 2
    assert result.rounds[1].proxy_budget == pytest.approx(1.0 / 1.6)
    assert result.chosen.delta <= 1.0
    assert result.chosen.verified


def test_verification_relaxes_when_the_proxy_overestimates():
    # The real degradation is half the summed profile: the first MILP (B + C, predicted 1.0)
    # verifies at 0.5, so the proxy budget doubles and the MILP can add A (all three: 0.95).
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost, measure = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ, delta_scale=0.5)
    greedy = greedy_search(problem, cost, measure)
    result = optimise(problem, cost, measure, greedy, calibration=1.0)
    assert result.rounds[0].groups == ("B", "C")
    assert result.rounds[1].proxy_budget == pytest.approx(2.0)
    assert result.chosen.groups == {"A", "B", "C"}
    assert result.chosen.delta == pytest.approx(0.95)
    # Without relaxing, the MILP would stop at B + C (86 ns) and lose to greedy (76 ns).
    assert not result.fell_back_to_greedy
    assert result.chosen.cost.latency_ns == greedy.chosen.cost.latency_ns == pytest.approx(76.0)


def test_falls_back_to_greedy_when_no_round_verifies():
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost, measure = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    greedy = greedy_search(problem, cost, measure)
    always_over = lambda analog: 5.0 if analog else 0.0  # noqa: E731 - a world where every mapping fails
    result = optimise(problem, cost, always_over, greedy, calibration=1.0, max_rounds=2)
    assert result.fell_back_to_greedy and result.chosen == greedy.chosen
    assert len(result.rounds) == 2
    assert result.rounds[1].groups != result.rounds[0].groups  # the refuted set is cut off


def test_calibration_is_least_squares_through_origin():
    assert fit_calibration([(1.0, 2.0), (2.0, 4.0)]) == pytest.approx(2.0)
    assert fit_calibration([(1.0, 1.0), (3.0, 6.0)]) == pytest.approx((1 + 18) / 10)
    assert fit_calibration([(0.0, 3.0)]) == 1.0


def test_groups_by_layer_and_type():
    names = ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc",
             "transformer.h.1.attn.c_attn", "lm_head"]
    triples = [(n, 10 * (i + 1), i + 1) for i, n in enumerate(names)]
    deltas = {n: 0.1 * (i + 1) for i, n in enumerate(names)}
    by_layer = make_groups(triples, deltas, "layer")
    assert [g.name for g in by_layer] == ["block 0", "block 1", "lm_head"]
    assert by_layer[0].macs == 30 and by_layer[0].tiles == 3
    assert by_layer[0].delta == pytest.approx(0.3)
    by_type = make_groups(triples, deltas, "type")
    assert [g.name for g in by_type] == ["attn.c_attn", "mlp.c_fc", "lm_head"]
    assert by_type[0].projections == ("transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn")


def test_edp_gains_are_relative_changes():
    problem = Problem(MYOPIC, "edp", budget=1.0, tile_capacity=None)
    cost, _ = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    base, gains = group_gains(problem, cost)
    assert base == Cost(100.0, 1000.0)
    assert gains[0] == pytest.approx(10 / 100 + 100 / 1000)


def test_gains_around_a_reference_see_a_shared_overhead():
    """One fixed overhead of 15 ns once anything is analog, 10 ns saved per analog group: alone,
    every group looks 5 ns slower; around {A} the others gain their true 10 ns."""
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost = lambda analog: Cost(100.0 + 15.0 * bool(analog) - 10.0 * len(analog), 1.0)  # noqa: E731
    base, around_digital = group_gains(problem, cost)
    assert base.latency_ns == 100.0 and list(around_digital) == [-5.0, -5.0, -5.0]
    base, around_a = group_gains(problem, cost, frozenset({"A"}))
    assert base.latency_ns == 105.0 and list(around_a) == [-5.0, 10.0, 10.0]
    row = additivity_check(problem, cost, np.random.default_rng(0), 1, frozenset({"A"}))[0]
    assert row["latency_ns_gain_predicted"] == -5.0 * row["groups"]


def test_additivity_check_is_exact_on_additive_costs():
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost, _ = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    rows = additivity_check(problem, cost, np.random.default_rng(0), samples=3)
    assert len(rows) == 3
    assert all(r["latency_ns_rel_error"] < 1e-12 and r["energy_pj_rel_error"] < 1e-12 for r in rows)
    rows = additivity_check(problem, cost, np.random.default_rng(0), samples=3, reference=frozenset({"B"}))
    assert all(r["latency_ns_rel_error_around_reference"] < 1e-12 for r in rows)


def test_budget_sweep_gives_one_mapping_per_budget_from_the_refitted_proxy():
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost, measure = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    _, gains = group_gains(problem, cost)
    points = [(frozenset({"A"}), 0.9), (frozenset({"A", "B"}), 1.4), (frozenset({"B", "C"}), 1.0)]
    sweep = budget_sweep(problem, cost, measure, gains, points, [0.0, 0.5, 1.0, 1.9, 5.0])
    assert [p.delta for p in sweep] == pytest.approx([0.0, 0.5, 1.0, 1.9, 1.9])
    assert [p.latency_ns for p in sweep] == pytest.approx([100.0, 93.0, 86.0, 76.0, 76.0])
    assert all(p.delta_kind == "verified" and p.within_budget for p in sweep)
    proxy = budget_sweep(problem, cost, None, gains, points, [1.0])
    assert proxy[0].delta_kind == "proxy" and proxy[0].delta == pytest.approx(1.0, abs=0.02)


def test_budget_sweep_tightens_a_choice_that_exceeds_its_budget():
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost, _ = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    _, gains = group_gains(problem, cost)
    measured = []
    # every group really costs 0.6, the points (and so the proxy) say 0.5: {B, C} is over 1.0
    measure = lambda analog: measured.append(analog) or 0.6 * len(analog)  # noqa: E731
    sweep = budget_sweep(problem, cost, measure, gains, [(frozenset({g}), 0.5) for g in "ABC"], [1.0])
    assert measured == [frozenset({"B", "C"}), frozenset({"A"})]  # refuted, then tightened
    assert sweep[0].within_budget and sweep[0].analog_projections == ("A",)


def test_budget_sweep_is_never_worse_than_a_mapping_verified_within_its_budget():
    # the points mislead the proxy (A looks cheap, so the MILP picks it), but {B, C} was
    # verified at 1.0 and is faster: the budget-1 point must be {B, C}, not the MILP's choice
    problem = Problem(MISLEADING, "latency", budget=1.0, tile_capacity=None)
    cost, measure = misleading_world()
    _, gains = group_gains(problem, cost)
    points = [(frozenset({"A"}), 0.9), (frozenset({"B", "C"}), 1.0)]
    milp_only = budget_sweep(problem, cost, None, gains, points, [1.0])[0]
    sweep = budget_sweep(problem, cost, measure, gains, points, [1.0, 0.95])
    assert sweep[0].analog_projections == ("B", "C") and sweep[0].source == "best_verified"
    assert milp_only.analog_projections == ("A",) and sweep[0].latency_ns < milp_only.latency_ns
    assert sweep[1].within_budget and "B" not in sweep[1].analog_projections  # 1.0 is over 0.95


def test_verified_front_holds_every_stage_and_marks_the_chosen_mapping():
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    cost, measure = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    outcome = run_search(problem, cost, measure, np.random.default_rng(0), additivity_samples=1)
    profiled = [(frozenset({g.name}), g.delta) for g in MYOPIC]
    _, gains = group_gains(problem, cost)
    sweep = budget_sweep(problem, cost, measure, gains, [], [0.5])
    mappings = verified_mappings(outcome, profiled, sweep)
    assert set(mappings[frozenset({"A"})][1]) == {"profile", "greedy"}
    assert "all_analog" in mappings[frozenset("ABC")][1] and "all_digital" in mappings[frozenset()][1]
    assert "milp" in mappings[frozenset({"B", "C"})][1]
    front = verified_front(mappings, cost, "latency", outcome.chosen.projections)
    by_set = {frozenset(p.analog_projections): p for p in front}
    assert by_set[frozenset({"B", "C"})].chosen and by_set[frozenset({"B", "C"})].on_front
    # B and C alone tie (0.5, 93 ns): one of them is on the front
    assert by_set[frozenset({"B"})].on_front != by_set[frozenset({"C"})].on_front
    on_front = sorted((p.delta, p.latency_ns) for p in front if p.on_front)
    for delta, latency in on_front:  # a front: latency falls as the degradation grows
        assert not any(q.delta <= delta and q.latency_ns < latency for q in front)
    assert [d for d, _ in on_front] == sorted(d for d, _ in on_front)
    assert [lat for _, lat in on_front] == sorted((lat for _, lat in on_front), reverse=True)


def test_non_dominated():
    assert non_dominated([(1, 5), (2, 4), (2, 6), (3, 3), (1, 5)]) == {0, 1, 3}


def test_run_search_reports_every_reference_and_calibrates():
    # measured = 2 x profile sum: calibration from (greedy, all-analog) must find 2.
    problem = Problem(MYOPIC, "latency", budget=2.0, tile_capacity=None)
    cost, measure = additive_world(MYOPIC, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ, delta_scale=2.0)
    outcome = run_search(problem, cost, measure, np.random.default_rng(0), additivity_samples=2)
    assert outcome.optimised.calibration == pytest.approx(2.0)
    assert outcome.chosen.groups == {"B", "C"} and outcome.chosen.delta == pytest.approx(2.0)
    summary = outcome.to_dict()
    assert summary["source"] == "milp" and summary["verified_delta"] == pytest.approx(2.0)
    assert summary["all_analog"]["verified_delta"] == pytest.approx(3.8)
    assert summary["all_digital"]["latency_ns"] == 100.0
    assert summary["greedy"]["analog_projections"] == ["A"]
    assert len(summary["additivity"]) == 2
    tight = Problem(MYOPIC, "latency", budget=2.0, tile_capacity=1)
    assert run_search(tight, cost, measure, np.random.default_rng(0)).to_dict()["all_analog"] == {"fits": False}


# The profile measured B and C alone at 0.8 each, but among others each costs only 0.5:
# greedy stops at {A} (90 ns), the MILP trusts the profile and repeats {A}; B + C
# (measured 1.0, 86 ns) is the best mapping within budget.
MISLEADING = (single("A", 100, 0.9), single("B", 50, 0.8), single("C", 40, 0.8))
MISLEADING_TRUE_DELTA = {"A": 0.9, "B": 0.5, "C": 0.5}


def misleading_world():
    cost, _ = additive_world(MISLEADING, MYOPIC_GAIN_NS, MYOPIC_GAIN_PJ)
    return cost, lambda analog: sum(MISLEADING_TRUE_DELTA[p] for p in analog)


def verified_start(problem, cost, measure, groups):
    projections = frozenset(groups)  # single-projection groups in these worlds
    return Candidate(frozenset(groups), projections, cost(projections), measure(projections), True)


def test_local_search_finds_the_set_greedy_and_milp_miss():
    problem = Problem(MISLEADING, "latency", budget=1.0, tile_capacity=None)
    cost, measure = misleading_world()
    outcome = run_search(problem, cost, measure, np.random.default_rng(0), additivity_samples=1)
    assert outcome.greedy.chosen.groups == {"A"}
    assert [r.groups for r in outcome.optimised.rounds] == [("A",)]
    assert outcome.source == "local_search"
    assert outcome.chosen.groups == {"B", "C"}
    assert outcome.chosen.delta == pytest.approx(1.0) and outcome.chosen.verified
    assert outcome.chosen.cost.latency_ns == pytest.approx(86.0)
    step, = outcome.local.steps
    assert (step.removed, step.added, step.accepted) == (("A",), ("B", "C"), True)
    summary = outcome.to_dict()
    assert summary["source"] == "local_search" and summary["local_search"]["verifications"] == 1
    assert summary["greedy"]["latency_ns"] == pytest.approx(90.0)


def test_local_search_without_verifications_keeps_the_milp_result():
    problem = Problem(MISLEADING, "latency", budget=1.0, tile_capacity=None)
    cost, measure = misleading_world()
    outcome = run_search(problem, cost, measure, np.random.default_rng(0), max_verifications=0,
                         additivity_samples=1)
    assert outcome.source == "milp" and outcome.chosen.groups == {"A"}
    assert outcome.local.steps == () and "verification budget (0)" in outcome.local.stop_reason


def test_local_search_rejects_a_move_measured_over_budget():
    # B and C interact: together 1.3, so the predicted-feasible swap A -> B + C is refuted.
    problem = Problem(MISLEADING, "latency", budget=1.0, tile_capacity=None)
    cost, _ = misleading_world()
    measure = lambda analog: sum(MISLEADING_TRUE_DELTA[p] for p in analog) + 0.3 * ({"B", "C"} <= analog)  # noqa: E731
    start = verified_start(problem, cost, measure, {"A"})
    points = [(frozenset({"A"}), 0.9), (frozenset({"A", "B"}), 1.4), (frozenset({"A", "C"}), 1.4)]
    result = local_search(problem, cost, measure, start, points, max_verifications=5)
    assert result.steps[0].added == ("B", "C") and result.steps[0].measured_delta == pytest.approx(1.3)
    assert not result.improved and result.chosen == start
    assert all(step.measured_delta > 1.0 for step in result.steps)


def test_local_search_costs_only_the_most_promising_swaps():
    # 16 groups, additive world: the sum of single flips predicts every swap exactly, so
    # costing only the top swaps reaches the same mapping with far fewer engine calls.
    rng = np.random.default_rng(3)
    groups = tuple(single(f"G{i:02d}", 1, float(d)) for i, d in enumerate(rng.uniform(0.05, 0.4, 16)))
    gains = {g.name: float(x) for g, x in zip(groups, rng.uniform(-2.0, 10.0, 16))}
    problem = Problem(groups, "latency", budget=1.0, tile_capacity=None)
    cost, measure = additive_world(groups, gains, gains)
    results = {}
    for costed in (0, 8):
        calls = []
        counting = lambda analog: calls.append(analog) or cost(analog)  # noqa: E731
        start = verified_start(problem, cost, measure, {groups[0].name})
        result = local_search(problem, counting, measure, start, [], max_verifications=12, costed_swaps=costed)
        results[costed] = (result.chosen.groups, len(calls))
    assert results[8][0] == results[0][0]
    assert results[8][1] < results[0][1] / 3
    lone = (single("A", 1, 0.1),)  # no swaps at all: costing "all of them" must not fail
    lone_cost, lone_measure = additive_world(lone, {"A": 1.0}, {"A": 1.0})
    start = verified_start(Problem(lone, "latency", 1.0, None), lone_cost, lone_measure, set())
    result = local_search(Problem(lone, "latency", 1.0, None), lone_cost, lone_measure, start, [],
                          max_verifications=3, costed_swaps=0)
    assert result.chosen.groups == {"A"}


def test_local_search_respects_tile_capacity_and_verification_budget():
    groups = (single("A", 1, 0.1, tiles=2), single("B", 1, 0.1, tiles=2), single("C", 1, 0.1, tiles=1))
    problem = Problem(groups, "energy", budget=1.0, tile_capacity=3)
    cost, measure = additive_world(groups, {"A": 1.0, "B": 5.0, "C": 1.0}, {"A": 1.0, "B": 5.0, "C": 1.0})
    verified = []
    counting = lambda analog: verified.append(analog) or measure(analog)  # noqa: E731
    start = verified_start(problem, cost, measure, {"A"})
    result = local_search(problem, cost, counting, start, [], max_verifications=1)
    assert len(result.steps) == 1 and "verification budget (1)" in result.stop_reason
    assert result.chosen.groups == {"B", "C"}  # best fitting move: A out, B + C in (3 tiles)
    assert all(sum(g.tiles for g in groups if g.name in analog) <= 3 for analog in verified)
    again = local_search(problem, cost, measure, start, [], max_verifications=1)
    assert again == result  # deterministic


def test_marginal_proxy_fits_nested_sets_and_keeps_the_profile_as_prior():
    problem = Problem(MYOPIC, "latency", budget=1.0, tile_capacity=None)
    points = [(frozenset({"A"}), 0.4), (frozenset({"A", "B"}), 0.7)]
    proxy = fit_marginal_proxy(problem, points, min_sigma=0.01, prior_weight=1e-6)
    assert [proxy.weights[g] for g in "AB"] == pytest.approx([0.4, 0.3], abs=1e-6)
    assert proxy.weights["C"] == pytest.approx(0.5)  # only the profile knows C
    assert proxy.sigma == 0.01  # exact fit: the floor
    assert proxy.move_delta(0.7, ("A",), ("C",)) == pytest.approx(0.8, abs=1e-6)
    # an equal-weight prior (1.0) pulls A and B towards their profile deltas 0.9 and 0.5
    pulled = fit_marginal_proxy(problem, points, min_sigma=0.01, prior_weight=1.0)
    assert pulled.weights["A"] > 0.4 and pulled.sigma > 0.01


def test_within_budget_probability():
    assert within_budget_probability(1.0, 1.0, 0.1) == pytest.approx(0.5)
    assert within_budget_probability(0.9, 1.0, 0.1) == pytest.approx(0.8413447, abs=1e-6)
    assert within_budget_probability(1.1, 1.0, 0.0) == 0.0
    assert within_budget_probability(1.0, 1.0, 0.0) == 1.0


def test_neighbourhood_adds_drops_and_swaps_one_for_one_or_two():
    groups = tuple(single(n, 1, 0.1) for n in "ABCDE")
    moves = list(neighbourhood(Problem(groups, "latency", 1.0, None), frozenset({"A", "B"})))
    assert moves[:3] == [((), ("C",)), ((), ("D",)), ((), ("E",))]
    assert (("B",), ()) in moves
    assert len(moves) == 3 + 2 * (1 + 3 + 3)
    assert (("A",), ("D", "E")) in moves and len(set(moves)) == len(moves)


@pytest.mark.parametrize("argv, message", [
    (["search", "--budget", "-1"], "--budget: expected a number >= 0"),
    (["search", "--budget", "nan"], "--budget: expected a number >= 0"),
    (["search", "--t", "1 lightyear"], "--t: cannot read time"),
    (["search", "--objective", "speed"], "invalid choice: 'speed'"),
    (["search", "--granularity", "tile"], "invalid choice: 'tile'"),
    (["search", "--max-verifications", "-1"], "--max-verifications: expected an integer in 0..100000"),
    (["search", "--costed-swaps", "x"], "--costed-swaps: expected an integer in 0..1000000"),
    (["search", "--pareto-budgets", "1,x"], "--pareto-budgets: expected comma-separated numbers"),
    (["search", "--out", "mapping.txt"], "--out mapping.txt: expected a file ending in .yaml"),
    (["search", "--json", "/no/such/folder/r.json"], "folder /no/such/folder does not exist"),
    (["search", "--pareto-plot", "front.jpg"], "expected a file ending in .png, .svg, .pdf"),
    (["search", "--hw", "no_such_preset"], "no_such_preset"),
    (["profile", "--seeds", "0"], "expected a positive integer"),
    (["profile", "--plot", "bars.gif"], "--plot bars.gif: expected a file ending in .png"),
    (["profile", "--h5", "/no/such/folder/p.h5"], "folder /no/such/folder does not exist"),
])
def test_cli_rejects_bad_input_before_any_work(argv, message, capsys):
    from simulator.cli import main
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aimcsim: error: ") and message in err
    assert err.count("\n") == 1


@pytest.fixture
def one_torch_thread():
    """Tiny tensors on shared cores: one thread is much faster."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A 2-block GPT-2 checkpoint folder with a small byte-level BPE trained on pydoc text."""
    import json

    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from workloads.gpt2.corpus import eval_documents
    from workloads.gpt2.model import GPT2, GPT2Config, to_hf_state_dict

    folder = tmp_path_factory.mktemp("tiny_gpt2")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator([d.text for d in eval_documents()[:3]], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2, n_head=2)
    (folder / "config.json").write_text(json.dumps(config.to_hf_dict()))
    save_file(to_hf_state_dict(GPT2(config)), str(folder / "model.safetensors"))
    return folder


def test_search_cli_end_to_end(tiny_checkpoint, one_torch_thread, tmp_path, capsys):
    import json

    from simulator.cli import main
    from simulator.hw.loader import load_hw
    from simulator.mapping.io import load_mapping
    from workloads.registry import build_graph
    out, report = tmp_path / "mapping.yaml", tmp_path / "search.json"
    assert main(["search", "--hw", "tiny", "--model", str(tiny_checkpoint), "--objective", "edp",
                 "--budget", "0.5", "--t", "1d", "--seeds", "2", "--max-tokens", "128", "--tokens", "32",
                 "--granularity", "layer", "--pareto-budgets", "0,0.5", "--json", str(report),
                 "--out", str(out), "--pareto-plot", str(tmp_path / "front.png")]) == 0
    summary = json.loads(report.read_text())
    for key in ("model", "budget", "t_s", "objective", "verified_delta", "latency_ns", "energy_pj",
                "analog_projections", "greedy", "all_analog", "all_digital", "pareto"):
        assert key in summary
    assert summary["t_s"] == 86400.0 and summary["verified_delta"] <= 0.5
    assert summary["objective_value"] <= summary["greedy"]["objective_value"]
    assert summary["objective_value"] <= summary["all_digital"]["objective_value"]
    assert [p["budget"] for p in summary["pareto"]["budgets"]] == [0.0, 0.5]
    assert sum(p["chosen"] for p in summary["pareto"]["verified"]) == 1
    graph = build_graph(str(tiny_checkpoint), "prefill", seq=32)
    mapping = load_mapping(out, graph, load_hw("tiny"))
    assert sorted(mapping.analog_projections()) == summary["analog_projections"]
    assert (tmp_path / "front.png").stat().st_size > 0
    assert "chosen by" in capsys.readouterr().out


def test_profile_cli_end_to_end(tiny_checkpoint, one_torch_thread, tmp_path, capsys):
    import json

    import h5py

    from simulator.cli import main
    assert main(["profile", "--hw", "tiny", "--model", str(tiny_checkpoint), "--t", "0,1y",
                 "--seeds", "2", "--max-tokens", "128", "--json", str(tmp_path / "p.json"),
                 "--h5", str(tmp_path / "p.h5"), "--plot", str(tmp_path / "p.svg"), "--local"]) == 0
    summary = json.loads((tmp_path / "p.json").read_text())
    assert len(summary["projections"]) == 9 and summary["times_s"] == [0.0, 365 * 86400.0]
    deltas = [e["analog_alone_delta"] for e in summary["projections"]]
    assert deltas == sorted(deltas, reverse=True)
    with h5py.File(tmp_path / "p.h5") as f:
        assert f["analog_alone"].shape == (9, 2, 2)
    assert (tmp_path / "p.svg").read_text().startswith("<?xml")
    assert "rank" in capsys.readouterr().out


def test_profile_measures_seeds_in_groups_when_they_do_not_fit_at_once(tiny_checkpoint, one_torch_thread, tmp_path,
                                                                       capsys, monkeypatch):
    """With memory for about one and a half chip realisations, 3 seeds run as 3 groups of
    one, one after another: the same numbers as all 3 side by side, and stderr says so."""
    import json

    from simulator.cli import main
    from simulator.commands import memory
    from simulator.hw.loader import load_hw
    from simulator.mapping.resolve import analog_names, resolve_targets
    from workloads.registry import load_model
    common = ["profile", "--hw", "tiny", "--model", str(tiny_checkpoint), "--t", "1y", "--seeds", "3",
              "--max-tokens", "128", "--local"]
    assert main(common + ["--json", str(tmp_path / "whole.json")]) == 0
    loaded = load_model(str(tiny_checkpoint))
    names = analog_names(resolve_targets(str(tiny_checkpoint), load_hw("tiny"), "all-analog"))
    model_bytes = sum(p.numel() for p in loaded.model.parameters()) * memory.BYTES_PER_PARAMETER_LOADED
    room = model_bytes + 1.5 * memory.bytes_per_seed(loaded, names)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(room / memory.SEED_GROUP_MEMORY_SHARE))
    capsys.readouterr()
    assert main(common + ["--json", str(tmp_path / "grouped.json")]) == 0
    assert "measured in 3 groups of at most 1" in capsys.readouterr().err
    whole, grouped = (json.loads((tmp_path / name).read_text()) for name in ("whole.json", "grouped.json"))
    assert grouped["projections"] == whole["projections"] and grouped["all_analog"] == whole["all_analog"]


def test_seed_groups_fit_and_keep_every_seed_in_order():
    from simulator.analysis.profile import seed_groups
    for n_seeds, processes, at_once in [(10, 2, 3), (10, 2, 10), (7, 3, 1), (1, 4, 2), (5, 1, 2)]:
        groups = seed_groups(range(n_seeds), processes, at_once)
        assert [s for g in groups for s in g] == list(range(n_seeds))
        assert max(map(len, groups)) <= at_once and min(map(len, groups)) >= 1
        rounds = -(-n_seeds // (processes * at_once))  # each process measures `rounds` groups, seeds allowing
        assert len(groups) == min(n_seeds, processes * rounds)
    assert seed_groups(range(10), 2, 5) == [tuple(range(5)), tuple(range(5, 10))]  # fits: one share each


def test_seeds_at_once_refuses_when_not_one_realisation_fits(monkeypatch):
    from simulator.commands import memory
    from simulator.errors import UserError
    from workloads.registry import load_model
    loaded = load_model("gpt2-pydoc")
    names = loaded.model.projection_names()
    per_seed = memory.bytes_per_seed(loaded, names)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(4 * per_seed))
    assert memory.seeds_at_once(loaded, names, 10, 2, model_copies=0) == 1  # 0.9 x 4 seeds over 2 processes
    assert memory.seeds_at_once(loaded, names, 2, 2, model_copies=0) == 1  # a share of one
    with pytest.raises(UserError, match="--seeds 10: one chip realisation .* in each of 4 processes"):
        memory.seeds_at_once(loaded, names, 10, 4, model_copies=0)


@pytest.mark.slow
def test_profile_on_a_dask_cluster_equals_one_process(tiny_checkpoint, tmp_path):
    """The default path splits the seeds over a local cluster's workers: same numbers."""
    import json

    from simulator.cli import main
    common = ["profile", "--hw", "tiny", "--model", str(tiny_checkpoint), "--t", "1y", "--seeds", "3",
              "--max-tokens", "128"]
    assert main(common + ["--local", "--json", str(tmp_path / "local.json")]) == 0
    assert main(common + ["--workers", "2", "--json", str(tmp_path / "dask.json")]) == 0
    local, dask = (json.loads((tmp_path / name).read_text()) for name in ("local.json", "dask.json"))
    assert dask["projections"] == local["projections"] and dask["all_analog"] == local["all_analog"]


def test_all_digital_is_returned_when_it_beats_every_searched_mix():
    """On a chip where analog only slows things down, the answer is all digital (verified:
    delta 0), not the best mix greedy and the local search found."""
    groups = tuple(Group(n, (n,), macs, 1, 0.1) for n, macs in (("A", 3), ("B", 2)))
    problem = Problem(groups, "latency", 1.0, None)
    # both analog beat one (the MILP's gains around greedy's AB say keep both), none beats both
    cost = lambda analog: Cost({0: 100.0, 1: 120.0, 2: 110.0}[len(analog)], 1.0)  # noqa: E731
    measure = lambda analog: 0.1 * len(analog)  # noqa: E731
    outcome = run_search(problem, cost, measure, np.random.default_rng(0), max_verifications=0)
    assert outcome.source == "all_digital" and outcome.chosen.projections == frozenset()
    assert outcome.to_dict()["latency_ns"] == 100.0
