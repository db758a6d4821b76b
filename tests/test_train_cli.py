"""aimcsim train / program on the command line: outputs and one-line errors."""
import json

import h5py
import pytest

from simulator.cli import main


def test_train_writes_json_h5_and_plot(tmp_path, capsys):
    out = tmp_path / "t.json"
    code = main(["train", "--device", "soft_bounds", "--algorithm", "sgd,tiki-taka", "--task", "lsq",
                 "--seeds", "1", "--epochs", "1", "--json", str(out), "--h5", str(tmp_path / "t.h5"),
                 "--plot", str(tmp_path / "t.png")])
    assert code == 0
    summary = json.loads(out.read_text())
    assert [row["algorithm"] for row in summary["table"]] == ["sgd", "tiki-taka"]
    assert summary["table"][0]["predicted"] is not None
    with h5py.File(tmp_path / "t.h5") as f:
        assert f["soft_bounds/sgd/error_curve"].shape == (1, 2)
    assert (tmp_path / "t.png").stat().st_size > 0
    assert "soft_bounds" in capsys.readouterr().out


def test_train_results_do_not_depend_on_jobs(tmp_path):
    """Runs in parallel processes give the very same runs (each is seeded by itself)."""
    outputs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}.json"
        assert main(["train", "--device", "soft_bounds,constant_step", "--algorithm", "fp,sgd,residual",
                     "--task", "lsq", "--seeds", "2", "--epochs", "1", "--jobs", jobs, "--json", str(out)]) == 0
        outputs.append(json.loads(out.read_text()))
    assert outputs[0]["runs"] == outputs[1]["runs"]
    assert outputs[0]["runs"]["soft_bounds"]["fp"] == outputs[0]["runs"]["constant_step"]["fp"]
    assert outputs[0]["runs"]["soft_bounds"]["sgd"] != outputs[0]["runs"]["constant_step"]["sgd"]


@pytest.mark.parametrize("argv, message", [
    (["--param", "w_min=2"], "w_min < w_max"),
    (["--param", "dw_min=-0.1"], "dw_min"),
    (["--device", "linear_step", "--param", "gamma_up=2"], "never reach w_max"),
    (["--device", "memristor"], "--device memristor"),
    (["--task", "mnist"], "--task mnist"),
    (["--param", "speed=3"], "--param speed=3"),
])
def test_train_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("aimcsim: error:")


def test_program_sweep_writes_json(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["program", "--hw", "tiny", "--tolerance", "0.05,0.01", "--json", str(out),
                 "--h5", str(tmp_path / "p.h5")]) == 0
    sweep = json.loads(out.read_text())["sweep"]
    assert sweep[1]["tile"]["pulses_per_device"] > sweep[0]["tile"]["pulses_per_device"]
    assert sweep[0]["error_vs_pcm"] and "pcm_sigma_uS" in sweep[0]["error_vs_pcm"][0]
    assert main(["program", "--hw", "tiny", "--tolerance", "2"]) == 2
    assert "--tolerance 2" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_during_parallel_training_is_one_line_and_exit_130(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it: the workers ignore it,
    the parent stops them, prints one line and exits 130."""
    from conftest import interrupt_cli
    returncode, text = interrupt_cli(["train", "--task", "digits", "--device", "soft_bounds", "--seeds", "3",
                                      "--epochs", "200", "--jobs", "2", "--json", str(tmp_path / "t.json")])
    assert returncode == 130 and "Traceback" not in text
    assert text.strip().splitlines()[-1] == "aimcsim: interrupted"
    assert not (tmp_path / "t.json").exists()
