"""The regression benchmark's stored baselines still hold: a change that moves a simulated
latency or energy beyond 0.1 % fails here until `python benchmarks/regression.py --update`
records the new figures (and the reviewer sees the baseline diff)."""
import importlib.util
import json
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "regression.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("regression_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulated_figures_match_the_stored_baselines():
    regression = load_benchmark()
    baseline = json.loads(Path(regression.BASELINE_PATH).read_text())
    assert sorted(baseline) == sorted(case[0] for case in regression.CASES)
    assert regression.compare(regression.measure(), baseline, rel_tol=1e-3) == []


def test_compare_flags_a_moved_figure():
    regression = load_benchmark()
    baseline = {"case": {"latency_ns": 100.0, "energy_pj": 50.0}}
    moved = {"case": {"latency_ns": 100.05, "energy_pj": 51.0}}
    assert regression.compare(moved, baseline, rel_tol=1e-3) == [
        "case: energy_pj 50 -> 51 (+2.00%)"]
    assert regression.compare({"new": moved["case"]}, baseline, 1e-3) == [
        "new: no baseline (run with --update)"]
