"""Outputs never destroy and explain themselves: symlinks, fifos, stdout, temporaries, signals,
self-describing HDF5, human units, tidy plots, complete help."""
from __future__ import annotations

import json
import os
import signal
import threading

import h5py
import pytest

from simulator import atomic
from simulator.atomic import atomic_output, remove_stale_temporaries
from simulator.cli import build_parser, main


def hidden_temporaries(folder) -> list[str]:
    return [name for name in os.listdir(folder) if ".tmp" in name]


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path, capsys):
    target, link = tmp_path / "real.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target.name)
    assert main(["hw", "tiny", "--json", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert json.loads(target.read_text())["name"] == "tiny"
    assert hidden_temporaries(tmp_path) == []


def test_a_dangling_symlink_creates_its_target(tmp_path, capsys):
    link = tmp_path / "link.json"
    link.symlink_to("made.json")
    assert main(["hw", "tiny", "--json", str(link)]) == 0
    assert link.is_symlink() and json.loads((tmp_path / "made.json").read_text())["name"] == "tiny"


def test_a_fifo_is_written_directly_never_replaced(tmp_path, capsys):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    assert main(["hw", "tiny", "--json", str(fifo)]) == 0
    reader.join(timeout=30)
    assert json.loads(received[0])["name"] == "tiny"
    assert fifo.is_fifo() and hidden_temporaries(tmp_path) == []
    assert "wrote" in capsys.readouterr().out


def test_dash_puts_only_the_json_on_stdout(capsys):
    assert main(["hw", "tiny", "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["name"] == "tiny"  # the human summary went to stderr
    assert "tiny" in captured.err and "wrote" not in captured.out


def test_a_failed_write_leaves_nothing_and_the_old_file_intact(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(path, ".json") as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("writer crashed")
    assert path.read_text() == "old" and hidden_temporaries(tmp_path) == []


def test_stale_temporaries_of_dead_processes_are_cleaned(tmp_path):
    target = tmp_path / "r.json"
    dead_pid = _dead_pid()
    stale = tmp_path / f".r.json.aimcsim-{dead_pid}-0badc0de.tmp.json"
    old_style = tmp_path / ".r.json.0123456789ab.tmp.json"
    alive = tmp_path / f".r.json.aimcsim-{os.getppid()}-0badc0de.tmp.json"  # a running writer
    other = tmp_path / f".other.json.aimcsim-{dead_pid}-0badc0de.tmp.json"
    for path in (stale, old_style, alive, other):
        path.write_text("x")
    with atomic_output(target, ".json") as tmp, open(tmp, "w") as f:
        f.write("{}")
    assert not stale.exists() and not old_style.exists()
    assert alive.exists() and other.exists()
    assert remove_stale_temporaries(str(target)) == 0


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1


def test_sigterm_while_writing_removes_the_temporary_and_exits_143(tmp_path, capsys, monkeypatch):
    """The CLI turns SIGTERM into an exception, so the temporary file's `finally` runs."""
    seen = []

    def killed_mid_write(path, payload):
        with atomic_output(path, ".json") as tmp, open(tmp, "w") as f:
            f.write("{")
            f.flush()
            seen.append(tmp)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr("simulator.commands.hw.write_json_atomic", killed_mid_write)
    assert main(["hw", "tiny", "--json", str(tmp_path / "h.json")]) == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "aimcsim: terminated"
    assert seen and not os.path.exists(seen[0]) and os.listdir(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is not None  # restored after main


def test_a_path_that_is_a_folder_or_in_a_missing_folder_is_refused_first(tmp_path, capsys):
    assert main(["hw", "tiny", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["hw", "tiny", "--json", str(tmp_path / "no" / "h.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_json_never_holds_infinity(tmp_path):
    from simulator.commands.common import write_json_atomic
    path = tmp_path / "x.json"
    write_json_atomic(str(path), {"a": float("inf"), "b": [float("nan"), 1.0]})
    assert json.loads(path.read_text()) == {"a": None, "b": [None, 1.0]}


# ---------------------------------------------------------------- self-describing HDF5

def test_run_h5_describes_itself(tmp_path, capsys):
    path = tmp_path / "r.h5"
    assert main(["run", "--hw", "tiny", "--workload", "gpt2", "--tokens", "8", "--no-accuracy",
                 "--h5", str(path)]) == 0
    with h5py.File(path) as f:
        assert f.attrs["created_by"].startswith("aimcsim ")
        assert "--h5" in f.attrs["command_line"]
        assert json.loads(f.attrs["hw_config_json"])["analog"]["tiles"] == 8  # tiny.yaml
        ops = f["ops/name"].asstr()[()]
        op_index = f["schedule/op"][()]
        assert op_index.max() < len(ops) and any("lm_head" in name for name in ops)
        assert list(f["ops/kind"].attrs["names"]) and list(f["schedule/kind"].attrs["names"])
        labels = f["resources/label"].asstr()[()]
        assert f["schedule/resource"][()].max() < len(labels)
        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        assert datasets and all("axes" in d.attrs and len(d.attrs["axes"]) == d.ndim for d in datasets)
        assert f["schedule/energy_pj"].attrs["units"] == "pJ"


# ---------------------------------------------------------------- one capacity rule

def test_accuracy_with_no_tiles_maps_nothing_analog_and_names_both_sides(tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["accuracy", "--hw", "tiny", "--set", "analog.tiles=0", "--t", "0", "--seeds", "1",
                 "--max-tokens", "256", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert payload["analog_projections"] == [] and len(payload["digital_projections"]) == 49
    assert "analog: none" in printed and "digital: h.{0-11}" in printed
    assert all(entry["delta"] == 0 for entry in payload["results"])


# ---------------------------------------------------------------- human units, plots, help

def test_compare_prints_human_units():
    from simulator.commands.compare import format_comparison
    report = lambda ns, pj: {"latency_ns": ns, "energy_pj": pj, "tokens_per_s": 128 / (ns * 1e-9)}
    text = format_comparison({"speedup": 2.0, "energy_gain": 3.0, "edp_gain": 6.0,
                              "candidate": report(1.55e6, 2.06e7), "baseline": report(3.1e6, 6.18e7)},
                             "hermes64", "digital")
    assert "1.55 ms" in text and "20.6 uJ" in text and "61.8 uJ" in text and "e+" not in text


def test_plot_labels():
    from simulator.analysis.plots import _series, drift_label, seeds_label, unit_for
    assert [drift_label(t) for t in (0, 90, 3600, 86400, 31536000.0, 10 * 31536000.0)] == \
        ["0 s", "1.5 min", "1 h", "1 d", "1 y", "10 y"]
    assert seeds_label(1) == "1 seed" and seeds_label(3) == "3 seeds"
    assert unit_for([1.5e6, 2e5], (("ms", 1e6), ("us", 1e3), ("ns", 1.0))) == ("ms", 1e6)
    points = [{"overrides": {"x": x, "cores": c}} for c in (512, 1024, 64) for x in (2, 1)]
    labels = [label for label, _ in _series(points, "x", [2, 1], ["cores"])]
    assert labels == ["64", "512", "1024"]
    assert [[p["overrides"]["x"] for p in series] for _, series in _series(points, "x", [2, 1], ["cores"])] \
        == [[1, 2]] * 3


def test_sweep_plot_has_integer_ticks_and_units(tmp_path):
    import matplotlib.pyplot as plt

    from simulator.analysis import plots
    points = [{"overrides": {"analog.adc_bits": b, "analog.tiles": t}, "status": "ok",
               "latency_ns": 1e6 * b * t, "energy_pj": 2e7 * b}
              for b in (6, 8) for t in (1024, 64, 512)]
    captured = {}
    original = plots.save_figure
    plots.save_figure = lambda fig, path: captured.setdefault("fig", fig) and original(fig, path)
    try:
        plots.plot_sweep(points, (("analog.adc_bits", (6, 8)), ("analog.tiles", (1024, 64, 512))),
                         str(tmp_path / "s.png"))
    finally:
        plots.save_figure = original
    fig = captured["fig"]
    bits_axis = fig.axes[0]
    assert list(bits_axis.get_xticks()) == [6, 8]
    assert bits_axis.get_ylabel() == "latency (s)" or bits_axis.get_ylabel().startswith("latency (")
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["64", "512", "1024"]
    assert (tmp_path / "s.png").stat().st_size > 0
    plt.close("all")


def _subparsers(parser):
    import argparse
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_flag_has_help_with_its_default():
    import argparse
    parser = build_parser()
    assert parser.description.endswith(".") and "analog in-memory computing" in parser.description
    for name, sub in _subparsers(parser).items():
        assert sub.description, name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            default = action.default
            if default not in (None, False, [], argparse.SUPPRESS) and not action.required:
                assert "default" in action.help, (name, action.dest, action.help)
    assert "tiny" in _subparsers(parser)["hw"].format_help()
    assert ".png" in _subparsers(parser)["sweep"].format_help()


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("aimcsim 0.")


@pytest.mark.slow
def test_ctrl_c_during_a_dask_sweep_is_one_line_and_exit_130(tmp_path):
    """A real SIGINT to the whole process group (as a terminal sends it), workers included."""
    from conftest import interrupt_cli
    out = tmp_path / "s.h5"
    returncode, text = interrupt_cli(["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--workload", "gpt2",
                                      "--tokens", "64", "--out", str(out)])
    assert returncode == 130 and "Traceback" not in text
    assert text.strip().splitlines()[-1] == "aimcsim: interrupted"
    assert hidden_temporaries(tmp_path) == []
