"""`aimcsim run` and `aimcsim compare` end to end: outputs, engines agree, bad input is one line."""
import json
import subprocess
import sys

import h5py
import pytest

from simulator.cli import main

REQUIRED_KEYS = ("latency_ns", "latency_cycles", "tokens_per_s", "energy_pj", "energy_breakdown_pj",
                 "tiles_used", "utilisation", "mapping")
BREAKDOWN = ("array", "dac", "adc", "digital_mac", "special_function", "sram", "dram", "noc", "static")


def run_json(tmp_path, *argv, name="out.json"):
    out = tmp_path / name
    assert main(["run", *argv, "--no-accuracy", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_run_writes_every_report_key_and_a_sane_breakdown(tmp_path):
    report = run_json(tmp_path, "--hw", "hermes64", "--workload", "gpt2", "--tokens", "32")
    assert all(key in report for key in REQUIRED_KEYS)
    assert all(key in report["energy_breakdown_pj"] for key in BREAKDOWN)
    assert report["energy_pj"] == pytest.approx(sum(report["energy_breakdown_pj"].values()))
    assert report["latency_ns"] == pytest.approx(report["latency_cycles"] * report["cycle_ns"])
    assert report["tokens_per_s"] == pytest.approx(32 / (report["latency_ns"] * 1e-9))
    assert len(report["mapping"]) == 49
    # hermes64 time-multiplexes everything, lm_head (591 tiles) split over programming rounds.
    assert report["mapping"]["lm_head"] == "analog"
    assert sum(t == "analog" for t in report["mapping"].values()) == 49
    tiles = report["utilisation"]["tile"]
    assert tiles["count"] == 64 and 0 < tiles["busy_fraction"] <= 1
    assert report["tiles_used"] == 63  # column strips of 3 or 12 row blocks never reach tile 63


def test_simpy_and_fast_engines_report_the_same_figures(tmp_path):
    argv = ("--hw", "tiny", "--workload", "mobilebert", "--tokens", "16", "--chunk-tokens", "8")
    simpy = run_json(tmp_path, *argv, "--engine", "simpy", name="a.json")
    fast = run_json(tmp_path, *argv, "--engine", "fast", name="b.json")
    for key in ("latency_cycles", "energy_pj", "tiles_used"):
        assert simpy[key] == fast[key]


def test_decode_phase_and_trace_and_h5(tmp_path):
    trace, h5 = tmp_path / "t.json", tmp_path / "r.h5"
    assert main(["run", "--hw", "tiny", "--workload", "gpt2-pydoc", "--phase", "decode", "--tokens", "16",
                 "--new-tokens", "4", "--no-accuracy", "--trace", str(trace), "--h5", str(h5)]) == 0
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e.get("ph") == "X" for e in events)
    with h5py.File(h5) as f:
        assert f.attrs["latency_ns"] > 0
        assert len(f["schedule/start_cycle"]) == len(f["schedule/duration_cycles"]) > 0


def test_compare_against_the_digital_twin_by_default(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["compare", "--hw", "analog_fabric", "--workload", "gpt2", "--tokens", "16",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["speedup"] == pytest.approx(result["baseline"]["latency_ns"] / result["candidate"]["latency_ns"])
    assert result["energy_gain"] == pytest.approx(result["baseline"]["energy_pj"] / result["candidate"]["energy_pj"])
    assert result["speedup"] > 1  # the fabric's MVMs beat its own 16 digital cores
    baseline = result["baseline"]
    assert baseline["hw"]["name"] == "analog_fabric digital twin" and baseline["tiles_used"] == 0
    assert set(baseline["mapping"].values()) == {"digital"}
    assert baseline["utilisation"]["core"]["count"] == 16  # the fabric's cores, not hermes64's 4
    assert "analog_fabric digital twin" in capsys.readouterr().out


def test_compare_against_a_named_baseline(tmp_path):
    out = tmp_path / "c.json"
    assert main(["compare", "--hw", "tiny", "--baseline", "tiny_digital", "--workload", "mobilebert",
                 "--tokens", "8", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["baseline"]["hw"]["name"] == "tiny_digital"


@pytest.mark.parametrize("argv, message", [
    (["run", "--hw", "nosuch"], "nosuch"),
    (["run", "--workload", "gpt3"], "unknown workload 'gpt3'"),
    (["run", "--workload", "mobilebert", "--phase", "decode"], "decode"),
    (["run", "--mapping", "half-analog"], "--mapping"),
    (["run", "--tokens", "0"], "expected a positive integer"),
    (["run", "--set", "analog.tiles=-1"], "analog.tiles"),
    (["run", "--no-accuracy", "--json", "/nonexistent/dir/out.json"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aimcsim: error:") and message in err and err.count("\n") == 1


def test_the_console_script_prints_no_traceback_on_bad_input():
    done = subprocess.run([sys.executable, "-m", "simulator.cli", "run", "--hw", "missing.yaml"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.startswith("aimcsim: error:")
