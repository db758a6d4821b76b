"""Pipelined prefill: the chunk-size search and the CLI's chunking and engine defaults."""
import pytest

from simulator.cli import main
from simulator.hw.loader import load_hw
from simulator.run import choose_chunking, chunk_candidates, simulate_workload


def test_candidates_halve_down_to_one_token():
    assert chunk_candidates(128) == [None, 64, 32, 16, 8, 4, 2, 1]
    assert chunk_candidates(10) == [None, 5, 3, 2, 1]
    assert chunk_candidates(1) == [None]


@pytest.mark.parametrize("runs, budget, expected", [
    ([(None, 100, 1000)], 10_000, 4),  # first halving of 8 tokens
    ([(None, 100, 1000), (4, 200, 800)], 10_000, 2),  # faster: keep halving
    ([(None, 100, 1000), (4, 200, 1200)], 10_000, None),  # slower: stop
    ([(None, 100, 1000), (4, 200, 800), (2, 400, 800)], 10_000, None),  # not faster: stop
    ([(None, 100, 1000), (4, 200, 995)], 10_000, None),  # 0.5 % faster is not enough
    ([(None, 100, 1000)], 150, None),  # 2 chunks x 100 tasks exceed the budget
    ([(None, 100, 1000), (4, 200, 900), (2, 400, 800), (1, 800, 700)], 10_000, None),  # nothing left
])
def test_choose_chunking(runs, budget, expected):
    assert choose_chunking(runs, seq=8, task_budget=budget) == expected


def test_auto_chunking_is_never_slower_than_one_chunk():
    hw = load_hw("analog_fabric")
    auto = simulate_workload(hw, "gpt2", "prefill", seq=16, chunk_tokens="auto").report
    whole = simulate_workload(hw, "gpt2", "prefill", seq=16, chunk_tokens=None).report
    assert auto.latency_cycles < whole.latency_cycles  # layers overlap on the fabric
    assert auto.workload["chunks"] > 1 and auto.workload["chunking"].startswith("auto (tried 16, 8")
    chosen = simulate_workload(hw, "gpt2", "prefill", seq=16, chunk_tokens=auto.workload["chunk_tokens"])
    assert chosen.report.latency_cycles == auto.latency_cycles


def test_auto_chunking_in_decode_is_one_token_per_step():
    report = simulate_workload(load_hw("tiny"), "gpt2-pydoc", "decode", seq=8, new_tokens=2,
                               chunk_tokens="auto").report
    assert report.workload["chunking"] == "auto" and report.workload["new_tokens"] == 2


def test_run_defaults_to_the_fast_engine_and_auto_chunking(tmp_path, capsys):
    assert main(["run", "--hw", "tiny", "--workload", "mobilebert", "--tokens", "8", "--no-accuracy"]) == 0
    out = capsys.readouterr().out
    assert "[fast engine" in out and "mobilebert encoder: 8 tokens" in out
    assert main(["run", "--hw", "tiny", "--workload", "mobilebert", "--tokens", "8", "--no-accuracy",
                 "--engine", "des", "--chunk-tokens", "none"]) == 0
    out = capsys.readouterr().out
    assert "[simpy engine" in out and "in one chunk" in out


def test_bad_chunk_tokens_names_the_flag(capsys):
    assert main(["run", "--chunk-tokens", "some"]) == 2
    assert "--chunk-tokens: expected a positive integer, auto or none, got 'some'" in capsys.readouterr().err
