"""Sweeps: grid expansion, HDF5 content, failures as records, resume after a real kill."""
import hashlib
import json
import signal
import subprocess
import sys

import h5py
import pytest

from simulator.analysis.sweep import (SweepSpec, SweepStore, expand_grid, plot_sweep, point_key,
                                      read_points, run_in_process, run_sweep)
from simulator.cli import main
from simulator.commands.sweep import parse_axes
from simulator.errors import UserError

AXES = (("analog.tiles", (2, 8)), ("analog.adc_bits", (6, 8)))
SPEC = SweepSpec(hw="tiny", axes=AXES, workload="gpt2-pydoc", phase="prefill", graph_kw={"seq": 8})


def fake_evaluate(spec, overrides):
    """Stands in for the simulator: figures follow from the overrides; 2 tiles do not fit."""
    tiles, bits = overrides["analog.tiles"], overrides["analog.adc_bits"]
    if tiles < 4:
        return {"status": "failed", "error": f"mapping needs 4 tiles, config has {tiles}"}
    return {"status": "ok", "latency_ns": 1000.0 / tiles, "energy_pj": 10.0 * bits, "tokens_per_s": 8e6 / 1000 * tiles,
            "tiles_used": 4, "energy_breakdown_pj": {"adc": 2.0 * bits, "dac": 8.0 * bits}}


def test_grid_is_the_cartesian_product_with_the_first_axis_slowest():
    assert expand_grid(AXES) == [{"analog.tiles": 2, "analog.adc_bits": 6}, {"analog.tiles": 2, "analog.adc_bits": 8},
                                 {"analog.tiles": 8, "analog.adc_bits": 6}, {"analog.tiles": 8, "analog.adc_bits": 8}]


def test_point_key_ignores_key_order_and_tells_values_apart():
    assert point_key({"a": 1, "b": 2}) == point_key({"b": 2, "a": 1})
    assert point_key({"a": 1}) != point_key({"a": 2}) != point_key({"a": "1"})
    # stable across runs and machines: a hash of the compact, key-sorted JSON
    assert point_key({"analog.tiles": 64}) == hashlib.sha256(b'{"analog.tiles":64}').hexdigest()[:16]


def test_axes_are_yaml_typed_and_bad_ones_are_user_errors():
    assert parse_axes(["analog.tiles=64,128", "analog.device.model=pcm,ideal"]) == (
        ("analog.tiles", (64, 128)), ("analog.device.model", ("pcm", "ideal")))
    for bad, message in [(["analog.tiles"], "expected KEY=V1,V2"), (["analog.tiles=1,1"], "appears twice"),
                         (["analog.tiles=1", "analog.tiles=2"], "given twice"), ([], "at least one")]:
        with pytest.raises(UserError, match=message):
            parse_axes(bad)



def test_every_point_is_stored_with_its_figures_and_failures_are_records(tmp_path):
    out = str(tmp_path / "s.h5")
    counts = run_sweep(SPEC, out, run_in_process, evaluate=fake_evaluate)
    assert (counts.points, counts.skipped, counts.evaluated, counts.failed) == (4, 0, 4, 2)
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["settings"])["workload"] == "gpt2-pydoc"
        group = f["points"][point_key({"analog.tiles": 8, "analog.adc_bits": 6})]
        assert group.attrs["done"] and group.attrs["status"] == "ok"
        assert group.attrs["latency_ns"] == 125.0 and group.attrs["energy_pj"] == 60.0
        assert group["energy_breakdown_pj"].attrs["adc"] == 12.0
    points = {json.dumps(p["overrides"], sort_keys=True): p for p in read_points(out)}
    assert points['{"analog.adc_bits": 8, "analog.tiles": 2}']["error"] == "mapping needs 4 tiles, config has 2"
    assert points['{"analog.adc_bits": 8, "analog.tiles": 8}']["tokens_per_s"] == 64000.0


def test_rerun_skips_finished_points_and_recomputes_half_written_ones(tmp_path):
    out = str(tmp_path / "s.h5")
    run_sweep(SPEC, out, run_in_process, evaluate=fake_evaluate)
    half_written = point_key({"analog.tiles": 8, "analog.adc_bits": 8})
    with h5py.File(out, "a") as f:
        del f["points"][half_written].attrs["done"]
    seen = []
    counts = run_sweep(SPEC, out, run_in_process, evaluate=fake_evaluate, on_point=lambda o, r: seen.append(o))
    assert (counts.skipped, counts.evaluated) == (3, 1)
    assert seen == [{"analog.tiles": 8, "analog.adc_bits": 8}]
    assert len(read_points(out)) == 4


def test_resume_with_other_settings_is_refused(tmp_path):
    out = str(tmp_path / "s.h5")
    run_sweep(SPEC, out, run_in_process, evaluate=fake_evaluate)
    other = SweepSpec(hw="tiny", axes=AXES, workload="gpt2-pydoc", phase="prefill", graph_kw={"seq": 16})
    with pytest.raises(UserError, match=r"s.h5: made by a sweep with other settings \(graph_kw differ\)"):
        run_sweep(other, out, run_in_process, evaluate=fake_evaluate)


def test_a_file_that_is_not_hdf5_is_a_user_error(tmp_path):
    out = tmp_path / "s.h5"
    out.write_text("not hdf5")
    with pytest.raises(UserError, match="cannot open as a sweep file"):
        SweepStore(str(out), SPEC.settings())


def test_plot_is_written_next_to_the_results(tmp_path):
    out = str(tmp_path / "s.h5")
    run_sweep(SPEC, out, run_in_process, evaluate=fake_evaluate)
    png = tmp_path / "s.png"
    plot_sweep(read_points(out), AXES, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5", "s.png"]


@pytest.mark.parametrize("argv, message", [
    (["--set", "analog.tilez=1,2"], "--set analog.tilez: unknown key; valid keys: tiles,"),
    (["--set", "analog.adc_bits=8,20"], "--set analog.adc_bits: expected an integer in 2..16, got 20"),
    (["--set", "analog.tiles=1", "--accuracy", "--t", "soon"], "--t: cannot read time 'soon'"),
    (["--set", "analog.tiles=1", "--accuracy", "--model", "gpt9"], "--model: unknown workload 'gpt9'"),
    (["--set", "analog.adc.type=sar,cco"], "--set analog.adc.type: sar is timed by analog.adc.ns_per_bit"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    out = tmp_path / "s.h5"
    assert main(["sweep", "--hw", "tiny", "--local", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aimcsim: error: {message}") and err.count("\n") == 1
    assert not out.exists()


KILLABLE_SWEEP = """\
import json, sys, time
from simulator.analysis.sweep import SweepSpec, run_in_process, run_sweep

def slow_evaluate(spec, overrides):
    time.sleep(0.3)
    return {{"status": "ok", "latency_ns": float(overrides["analog.tiles"]), "energy_pj": 1.0,
            "tokens_per_s": 1.0, "tiles_used": 1, "energy_breakdown_pj": {{"adc": 1.0}}}}

spec = SweepSpec(hw="tiny", axes=(("analog.tiles", tuple(range(1, 9))),), workload="gpt2-pydoc")
counts = run_sweep(spec, {out!r}, run_in_process, evaluate=slow_evaluate,
                   on_point=lambda overrides, result: print("stored", overrides, flush=True))
print(json.dumps(counts.__dict__), flush=True)
"""


def test_resume_after_the_process_is_killed(tmp_path):
    out = tmp_path / "s.h5"
    script = tmp_path / "sweep_script.py"
    script.write_text(KILLABLE_SWEEP.format(out=str(out)))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    stored_before_kill = [process.stdout.readline() for _ in range(3)]
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert all(line.startswith("stored") for line in stored_before_kill)

    finished_before = len(read_points(str(out)))
    assert 3 <= finished_before < 8  # killed mid-run; maybe one more point landed before the kill
    rerun = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    counts = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert counts == {"points": 8, "skipped": finished_before, "evaluated": 8 - finished_before, "failed": 0}
    latencies = sorted(p["latency_ns"] for p in read_points(str(out)))
    assert latencies == [float(t) for t in range(1, 9)]


def test_dask_runner_stores_every_point(tmp_path):
    from distributed import Client, LocalCluster

    from simulator.analysis.sweep import run_on_dask

    out = str(tmp_path / "s.h5")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        counts = run_sweep(SPEC, out, run_on_dask(client), evaluate=fake_evaluate)
    assert (counts.evaluated, counts.failed) == (4, 2)
    assert sorted(p.get("latency_ns", 0.0) for p in read_points(out)) == [0.0, 0.0, 125.0, 125.0]


def test_cli_unknown_workload_is_one_error_not_a_failure_per_point(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["sweep", "--hw", "tiny", "--local", "--set", "analog.tiles=1,2", "--workload", "gpt3",
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("aimcsim: error: unknown workload 'gpt3'")
    assert not out.exists()


def small_gpt2_checkpoint(folder):
    """A 2-block GPT-2 of width 64: its 28 tile blocks of 64x64 fit 32 tiles but not 16."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 2,
                                                    "vocab_size": 256, "n_positions": 64}))
    return folder


def test_cli_sweeps_the_real_simulator_in_process(tmp_path, capsys):
    checkpoint = small_gpt2_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "s.h5"
    everything_analog = tmp_path / "analog.yaml"
    everything_analog.write_text("default: analog\n")
    argv = ["sweep", "--hw", "tiny", "--set", "analog.tiles=16,32", "--set", "analog.allow_time_multiplexing=false",
            "--workload", str(checkpoint), "--tokens", "8", "--mapping", str(everything_analog),
            "--local", "--out", str(out)]
    assert main(argv) == 0
    points = {p["overrides"]["analog.tiles"]: p for p in read_points(str(out))}
    assert points[16]["status"] == "failed" and "needs 28 tiles" in points[16]["error"]
    assert points[32]["status"] == "ok" and points[32]["tiles_used"] == 28
    assert points[32]["latency_ns"] > 0 and points[32]["energy_breakdown_pj"]["adc"] > 0
    assert (tmp_path / "s.png").exists()
    assert main(argv) == 0
    assert "2 points: 2 already done, 0 evaluated" in capsys.readouterr().out


def test_cli_sweeps_on_a_local_dask_cluster(tmp_path):
    checkpoint = small_gpt2_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "s.h5"
    subprocess.run([sys.executable, "-m", "simulator.cli", "sweep", "--hw", "tiny", "--set", "analog.tiles=32,64",
                    "--workload", str(checkpoint), "--tokens", "8", "--workers", "1", "--out", str(out)],
                   check=True, capture_output=True, text=True)
    assert sorted(p["status"] for p in read_points(str(out))) == ["ok", "ok"]


def accuracy_evaluate(calls, digital_at_tiles=None):
    """fake_evaluate with accuracy: the metric follows adc_bits only; counts accuracy runs."""
    def evaluate(spec, overrides):
        result = dict(fake_evaluate(spec, overrides))
        tiles = overrides["analog.tiles"]
        result["analog_projections"] = ["fc"] if tiles != digital_at_tiles else []
        if spec.accuracy_seeds and result["status"] == "ok":
            calls.append(overrides)
            value = 100.0 / overrides["analog.adc_bits"] + (1.0 if tiles == digital_at_tiles else 0.0)
            result["accuracy"] = {"metric": "perplexity", "fp": 10.0, "t_s": [0.0], "mean": [value],
                                  "std": [0.0], "values": [[value]]}
        return result
    return evaluate


def test_accuracy_is_evaluated_once_per_accuracy_relevant_config(tmp_path):
    spec = SweepSpec(hw="tiny", axes=(("analog.tiles", (4, 8, 16)), ("analog.adc_bits", (6, 8))),
                     workload="gpt2-pydoc", accuracy_seeds=1, accuracy_times_s=(0.0,))
    calls = []
    counts = run_sweep(spec, str(tmp_path / "s.h5"), run_in_process, evaluate=accuracy_evaluate(calls))
    assert (counts.evaluated, counts.failed) == (6, 0)
    assert sorted(c["analog.adc_bits"] for c in calls) == [6, 8]  # tiles do not change accuracy
    points = read_points(str(tmp_path / "s.h5"))
    assert {(p["overrides"]["analog.adc_bits"], p["accuracy"]["mean"][0]) for p in points} == {(6, 100 / 6), (8, 12.5)}


def test_a_point_whose_mapping_differs_gets_its_own_accuracy(tmp_path):
    spec = SweepSpec(hw="tiny", axes=(("analog.tiles", (4, 8)), ("analog.adc_bits", (8,))),
                     workload="gpt2-pydoc", accuracy_seeds=1, accuracy_times_s=(0.0,))
    calls = []
    run_sweep(spec, str(tmp_path / "s.h5"), run_in_process, evaluate=accuracy_evaluate(calls, digital_at_tiles=8))
    assert [c["analog.tiles"] for c in calls] == [4, 8]
    means = {p["overrides"]["analog.tiles"]: p["accuracy"]["mean"][0] for p in read_points(str(tmp_path / "s.h5"))}
    assert means == {4: 12.5, 8: 13.5}
