"""The critical path walked back from the last task, on hand-built schedules (both engines)."""
import pytest

from simulator.engine import des, fast
from simulator.engine.taskgraph import TASK_KINDS
from simulator.report.critical_path import critical_path
from test_engine_graphs import task_graph

KIND = {name: i for i, name in enumerate(TASK_KINDS)}


@pytest.mark.parametrize("engine", [des, fast])
def test_finish_to_start_chain_skips_the_shorter_branch(engine):
    """tile0 MVM 4 cycles and tile1 MVM 2 cycles feed a core reduce of 3: 4 + 3 = 7."""
    tg = task_graph([0, 1, 2], [4, 2, 3], [[], [], [0, 1]], 3, resource_kind=[0, 0, 1],
                    task_kind=[KIND["mvm"], KIND["mvm"], KIND["reduce"]])
    path = critical_path(tg, engine.simulate(tg))
    assert path.latency_cycles == 7 and path.n_tasks == 2
    assert path.by_category["analog_mvm"] == 4 and path.by_category["digital_compute"] == 3
    assert path.by_resource_kind == {"tile": 4, "core": 3}
    assert path.bottleneck == "analog_mvm"


@pytest.mark.parametrize("engine", [des, fast])
def test_a_busy_resource_puts_the_task_before_it_on_the_path(engine):
    """Two independent transfers on one link: the second waits 5 cycles for the first."""
    tg = task_graph([0, 0], [5, 2], [[], []], 1, resource_kind=[2],
                    task_kind=[KIND["transfer"], KIND["transfer"]])
    path = critical_path(tg, engine.simulate(tg))
    assert path.latency_cycles == 7 and path.n_tasks == 2
    assert path.by_category["noc"] == 7 and path.by_resource_kind == {"link": 7}


@pytest.mark.parametrize("engine", [des, fast])
def test_a_start_to_start_edge_counts_its_lag(engine):
    """Cut-through: hop 2 starts 3 cycles after hop 1 and lasts 10; DRAM delay of 4 before hop 1."""
    tg = task_graph([-1, 0, 1], [4, 10, 10], [[], [0], []], 2, resource_kind=[2, 2],
                    task_kind=[KIND["delay"], KIND["transfer"], KIND["transfer"]], lags=[(1, 2, 3)])
    schedule = engine.simulate(tg)
    assert schedule.start_cycles.tolist() == [0, 4, 7]
    path = critical_path(tg, schedule)
    assert path.latency_cycles == 17
    assert path.by_task_kind == {"transfer": 13, "delay": 4}
    assert path.by_category["dram"] == 4 and path.by_category["noc"] == 13
    assert path.by_resource_kind == {"link": 13, "none": 4}


def test_empty_schedule_has_no_bottleneck():
    tg = task_graph([], [], [], 1)
    path = critical_path(tg, fast.simulate(tg))
    assert path.latency_cycles == 0 and path.bottleneck == "none"
