"""Both timing engines implement the written dispatch rule: hand cases, brute force, random DAGs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulator.errors import UserError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.engine import des, fast
from test_engine_graphs import brute_force_start_cycles, task_graph

ENGINES = {"simpy": des.simulate, "fast": fast.simulate}


@pytest.fixture(params=sorted(ENGINES))
def simulate(request):
    return ENGINES[request.param]


def test_two_tasks_contend_for_one_resource(simulate):
    tg = task_graph([0, 0], [5, 3], [[], []], 1)
    schedule = simulate(tg)
    assert schedule.start_cycles.tolist() == [0, 5]
    assert schedule.makespan_cycles == 8


def test_tie_on_ready_cycle_goes_to_the_smaller_task_id(simulate):
    # 1 and 2 both become ready at cycle 4 on tile1; 2 is listed first among 0's successors
    tg = task_graph([0, 1, 1], [4, 2, 3], [[], [0], [0]], 2)
    assert simulate(tg).start_cycles.tolist() == [0, 4, 6]


def test_earlier_ready_beats_smaller_id(simulate):
    # cycle 0: tile0 picks 2 over 3 (both ready at 0). Cycle 1: 1 becomes ready (after the
    # delay 0) and tile0 is free: 3 (ready 0) beats 1 (ready 1) despite its larger id.
    tg = task_graph([-1, 0, 0, 0], [1, 2, 1, 3], [[], [0], [], []], 1)
    assert simulate(tg).start_cycles.tolist() == [0, 4, 0, 1]


def test_chain_runs_back_to_back(simulate):
    tg = task_graph([0, 1, -1, 0], [2, 3, 5, 1], [[], [0], [1], [2]], 2)
    schedule = simulate(tg)
    assert schedule.start_cycles.tolist() == [0, 2, 5, 10]
    assert schedule.makespan_cycles == 11


def test_finishes_at_a_cycle_land_before_the_pick(simulate):
    # tile0 runs 0, tile1 runs 1; both finish at 2. 3 (tile0, after 0) and 2 (tile0, after 1)
    # become ready at 2, whichever finish is seen first: the pick must be 2, the smaller id.
    tg = task_graph([0, 1, 0, 0], [2, 2, 1, 1], [[], [], [1], [0]], 2)
    assert simulate(tg).start_cycles.tolist() == [0, 0, 2, 3]


def test_zero_length_delays_cascade_within_the_cycle(simulate):
    # 4 waits on tile0 from cycle 0; 0 finishes at 1, then 1 -> 2 (zero delays) make 3 ready
    # at 1, and tile0 is idle at 1 with (0, 4) queued: 4 wins on ready cycle, 3 follows.
    tg = task_graph([0, -1, -1, 0, 0], [1, 0, 0, 1, 1], [[], [0], [1], [2], []], 1)
    assert simulate(tg).start_cycles.tolist() == [0, 1, 1, 2, 1]


def test_a_zero_delay_cascade_can_beat_a_task_ready_directly(simulate):
    # At cycle 1, 0 finishes: 4 becomes ready at once, 3 only through the zero delays 1 -> 2.
    # Both are ready at 1, so tile0 must pick 3 (smaller id), not the first one it saw.
    tg = task_graph([0, -1, -1, 0, 0], [1, 0, 0, 1, 1], [[], [0], [1], [2], [0]], 1)
    assert simulate(tg).start_cycles.tolist() == [0, 1, 1, 1, 2]


def test_empty_graph(simulate):
    schedule = simulate(task_graph([], [], [], 0))
    assert schedule.start_cycles.shape == (0,) and schedule.makespan_cycles == 0


def test_resource_task_of_zero_cycles_is_rejected(simulate):
    with pytest.raises(ValueError, match=">= 1 cycle"):
        simulate(task_graph([0], [0], [[]], 1))


def test_engine_names():
    tg = task_graph([0], [1], [[]], 1)
    assert des.simulate(tg).engine == "simpy" and fast.simulate(tg).engine == "fast"


def test_successors_transpose_the_predecessors():
    tg = task_graph([0, 0, 0, 0], [1, 1, 1, 1], [[], [0], [0, 1], [1]], 1)
    assert tg.succ_ptr.tolist() == [0, 2, 4, 4, 4]
    assert tg.succ_idx.tolist() == [1, 2, 2, 3]
    assert tg.succs(1).tolist() == [2, 3]


@st.composite
def random_task_graphs(draw, max_tasks=40):
    """Random DAGs with few resources and short durations, so ties and same-cycle events abound."""
    n_resources = draw(st.integers(1, 3))
    n_tasks = draw(st.integers(1, max_tasks))
    resource, duration, preds = [], [], []
    for task in range(n_tasks):
        r = draw(st.one_of(st.just(-1), st.integers(0, n_resources - 1)))  # half are delays
        resource.append(r)
        # zero-length delays often, so finishes cascade within a cycle
        duration.append(draw(st.sampled_from((0, 0, 1, 2) if r < 0 else (1, 1, 2, 3))))
        earlier = st.integers(0, task - 1) if task else st.nothing()
        preds.append(sorted(draw(st.sets(earlier, max_size=min(task, 3)))))
    # start-to-start edges with lags 1-4 (shorter and longer than durations), some in
    # parallel with a finish edge of the same pair
    lags = []
    if n_tasks > 1:
        for _ in range(draw(st.integers(0, n_tasks))):
            succ = draw(st.integers(1, n_tasks - 1))
            lags.append((draw(st.integers(0, succ - 1)), succ, draw(st.integers(1, 4))))
    return task_graph(resource, duration, preds, n_resources, lags=lags)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_task_graphs(max_tasks=14))
def test_both_engines_follow_the_rule_literally(tg):
    expected = brute_force_start_cycles(tg)
    assert des.simulate(tg).start_cycles.tolist() == expected
    assert fast.simulate(tg).start_cycles.tolist() == expected


def test_priority_beats_ready_cycle_and_id(simulate):
    # tile0: 0 runs first (priority 0); at cycle 2, 1 (ready 0, priority 2) and 2 (ready 1 after
    # the delay 3, priority 1) wait: 2 wins on priority despite its later ready cycle and larger id.
    tg = task_graph([0, 0, 0, -1], [2, 1, 1, 1], [[], [], [3], []], 1)
    tg = dataclasses.replace(tg, priority=np.array([0, 2, 1, 0], dtype=np.int32))
    assert simulate(tg).start_cycles.tolist() == [0, 3, 2, 0]


def test_equal_priorities_keep_the_fifo_rule(simulate):
    tg = task_graph([-1, 0, 0, 0], [1, 2, 1, 3], [[], [0], [], []], 1)
    same = dataclasses.replace(tg, priority=np.full(4, 5, dtype=np.int32))
    assert simulate(same).start_cycles.tolist() == simulate(tg).start_cycles.tolist() == [0, 4, 0, 1]


def test_negative_priority_is_rejected(simulate):
    tg = dataclasses.replace(task_graph([0], [1], [[]], 1), priority=np.array([-1], dtype=np.int32))
    with pytest.raises(ValueError, match="priority"):
        simulate(tg)


@st.composite
def prioritised_task_graphs(draw, max_tasks):
    tg = draw(random_task_graphs(max_tasks=max_tasks))
    priority = draw(st.lists(st.integers(0, 3), min_size=tg.n_tasks, max_size=tg.n_tasks))
    return dataclasses.replace(tg, priority=np.array(priority, dtype=np.int32))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prioritised_task_graphs(max_tasks=14))
def test_both_engines_follow_the_priority_rule_literally(tg):
    expected = brute_force_start_cycles(tg)
    assert des.simulate(tg).start_cycles.tolist() == expected
    assert fast.simulate(tg).start_cycles.tolist() == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prioritised_task_graphs(max_tasks=120))
def test_engines_agree_with_priorities_on_bigger_random_graphs(tg):
    np.testing.assert_array_equal(des.simulate(tg).start_cycles, fast.simulate(tg).start_cycles)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_task_graphs(max_tasks=120))
def test_engines_agree_on_bigger_random_graphs(tg):
    reference, numba = des.simulate(tg), fast.simulate(tg)
    np.testing.assert_array_equal(reference.start_cycles, numba.start_cycles)
    assert reference.makespan_cycles == numba.makespan_cycles
    finish = reference.start_cycles + tg.duration_cycles
    for task in range(tg.n_tasks):  # sanity independent of the rule: precedence holds
        assert all(finish[p] <= reference.start_cycles[task] for p in tg.preds(task))
        owners, lags = tg.lag_preds(task)
        assert all(reference.start_cycles[p] + lag <= reference.start_cycles[task] for p, lag in zip(owners, lags))


def test_tasks_longer_than_the_event_calendar(simulate):
    # fast.MAX_WINDOW_CYCLES is 65536: 0 and 2 finish beyond the calendar window, at cycle 70000,
    # the same cycle as 4 (a calendar finish). 5 and 6 both become ready at 70000: 5 wins on id.
    tg = task_graph([0, 1, -1, -1, 1, 0, 0], [70_000, 3, 69_997, 40_000, 29_997, 2, 2],
                    [[], [], [1], [1], [3], [0, 2], [4]], 2)
    schedule = simulate(tg)
    assert schedule.start_cycles.tolist() == [0, 0, 3, 3, 40_003, 70_000, 70_002]
    assert schedule.makespan_cycles == 70_004


@pytest.mark.parametrize("seed", range(5))
def test_engines_agree_when_long_and_short_tasks_mix(seed):
    rng = np.random.default_rng(seed)
    n_tasks, n_resources = 300, 4
    resource = rng.integers(-1, n_resources, n_tasks)
    duration = np.where(rng.random(n_tasks) < 0.1, rng.integers(60_000, 200_000, n_tasks),
                        rng.integers(1, 40, n_tasks))
    preds = [sorted(set(rng.integers(0, task, min(task, 2)).tolist())) if task else []
             for task in range(n_tasks)]
    tg = task_graph(resource.tolist(), duration.tolist(), preds, n_resources)
    np.testing.assert_array_equal(des.simulate(tg).start_cycles, fast.simulate(tg).start_cycles)


def test_fast_engine_rejects_graphs_too_long_for_its_event_keys():
    n_tasks = 70_000  # 17 task bits leave 46 for cycles; the durations sum to more than 2**47
    with pytest.raises(UserError, match="63-bit event keys.*--engine des"):
        fast.simulate(task_graph([-1] * n_tasks, [(1 << 31) - 1] * n_tasks, [[]] * n_tasks, 0))


def test_engine_inputs_hold_records_and_counts():
    tg = task_graph([0, -1, 0, 1], [3, 0, 2, 5], [[], [0], [0, 1], [2]], 2)
    inputs = fast.engine_inputs(tg)
    assert inputs.preds_left.tolist() == [0, 1, 2, 1]
    assert inputs.records["duration_cycles"][:4].tolist() == [3, 0, 2, 5]
    assert inputs.records["resource"][:4].tolist() == [0, -1, 0, 1]
    assert inputs.records["first_successor"].tolist() == [0, 2, 3, 4, 4]
    assert (inputs.longest_cycles, inputs.total_cycles) == (5, 10)


def queue_bounds(*rows):
    """fast's per-resource queue bounds: (head, tail, region_start, region_end) rows."""
    return np.array(rows, dtype=np.int64).reshape(-1, len(fast.QUEUE_BOUNDS))


def test_full_queue_region_compacts_when_at_most_half_live():
    keys = np.arange(40, dtype=np.int64)
    queues = queue_bounds((5, 8, 0, 8), (8, 12, 8, 16))  # resource 0: keys 5, 6, 7 live
    pool_end = fast._make_queue_room(keys, 16, queues, 0)
    assert pool_end == 16 and queues[0].tolist() == [0, 3, 0, 8] and keys[:3].tolist() == [5, 6, 7]


def test_full_queue_region_doubles_at_the_pool_end_when_over_half_live():
    keys = np.arange(40, dtype=np.int64)
    queues = queue_bounds((0, 3, 0, 8), (11, 16, 8, 16))  # resource 1: keys 11..15 live, 5 of 8
    pool_end = fast._make_queue_room(keys, 16, queues, 1)
    assert pool_end == 32 and queues[1].tolist() == [16, 21, 16, 32]
    assert keys[16:21].tolist() == [11, 12, 13, 14, 15]


def test_a_long_queue_outgrows_its_first_region(simulate):
    # 40 tasks on tile0 all ready at 0 (the queue grows to 40 keys): they run in id order
    durations = [1 + task % 3 for task in range(40)]
    schedule = simulate(task_graph([0] * 40, durations, [[]] * 40, 1))
    assert schedule.start_cycles.tolist() == np.concatenate([[0], np.cumsum(durations)[:-1]]).tolist()


def test_a_queue_that_keeps_emptying_reuses_its_first_region(simulate):
    # tile task 50 + i becomes ready at 3i (after delay i) and lasts 2: 50 pushes, never two live
    n = 50
    tg = task_graph([-1] * n + [0] * n, [3 * i for i in range(n)] + [2] * n, [[]] * n + [[i] for i in range(n)], 1)
    assert simulate(tg).start_cycles[n:].tolist() == [3 * i for i in range(n)]


def test_predecessor_counts_are_int16_until_an_in_degree_overflows_it():
    assert fast.predecessor_count_dtype(np.array([0, 0, 1, 32768])) == np.int16
    assert fast.predecessor_count_dtype(np.array([0, 0, 32769])) == np.int32
    assert fast.predecessor_count_dtype(np.array([0])) == np.int16


def test_fast_engine_joins_more_predecessors_than_int16_counts():
    n_preds = 40_000  # int32 counts; the join waits for the last delay, which ends at n_preds - 1
    tg = task_graph([-1] * n_preds + [0], list(range(n_preds)) + [1], [[]] * n_preds + [list(range(n_preds))], 1)
    assert fast.engine_inputs(tg).preds_left.dtype == np.int32
    assert fast.simulate(tg).start_cycles[-1] == n_preds - 1


def test_fast_engine_rejects_durations_beyond_int32():
    with pytest.raises(ValueError, match="int32 durations"):
        fast.simulate(task_graph([0], [1 << 31], [[]], 1))


def test_engine_inputs_reject_negative_durations():
    with pytest.raises(ValueError, match=">= 0"):
        fast.engine_inputs(task_graph([-1], [-1], [[]], 0))


def test_cut_through_chain_pipelines_its_hops(simulate):
    # a 3-hop message of 10 cycles per hop (links 0, 1, 2), each hop 1 cycle after the
    # previous one started: the last ends at 2 + 10 = 12, not 30; the consumer (delay) at 12
    tg = task_graph([0, 1, 2, -1], [10, 10, 10, 0], [[], [], [], [2]], 3, lags=[(0, 1, 1), (1, 2, 1)])
    assert simulate(tg).start_cycles.tolist() == [0, 1, 2, 12]


def test_a_lag_release_lands_before_the_pick_of_its_cycle(simulate):
    # 2 is released at 3 (0 started at 0, lag 3); 3 becomes ready at 3 when 1 finishes on
    # resource 1. Both ready at 3: the smaller id, 2, goes first, then 3.
    tg = task_graph([0, 1, 1, 1], [5, 3, 1, 1], [[], [], [], [1]], 2, lags=[(0, 2, 3)])
    assert simulate(tg).start_cycles.tolist() == [0, 0, 3, 4]


def test_lags_longer_than_the_event_calendar(simulate):
    tg = task_graph([0, 1], [2, 3], [[], []], 2, lags=[(0, 1, 70_000)])
    assert simulate(tg).start_cycles.tolist() == [0, 70_000]
    assert simulate(tg).makespan_cycles == 70_003


def test_lags_below_one_cycle_are_rejected(simulate):
    with pytest.raises(ValueError, match="lags must be >= 1"):
        simulate(task_graph([0, 1], [2, 3], [[], []], 2, lags=[(0, 1, 0)]))
