"""`aimcsim adapt` end to end: resumption after an interruption, and one-line errors for bad
adapter files in `accuracy --adapters` and `run --adapters`."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from simulator.adapt.files import load_adapters, save_adapters
from simulator.cli import main

QUICK = ["adapt", "--steps", "4", "--batch", "1", "--seq", "16", "--targets", "transformer.h.0.attn.*",
         "--checkpoint-every", "1", "--no-progress"]


def test_adapt_resumes_after_an_interruption_exactly(tmp_path):
    whole, resumed = str(tmp_path / "whole.safetensors"), str(tmp_path / "resumed.safetensors")
    assert main(QUICK + ["--out", whole]) == 0
    assert main(QUICK + ["--out", resumed, "--stop-after", "2"]) == 130  # interrupted after step 2
    assert os.path.exists(resumed + ".ckpt") and not os.path.exists(resumed)
    summary = str(tmp_path / "summary.json")
    assert main(QUICK + ["--out", resumed, "--json", summary]) == 0
    assert json.load(open(summary))["resumed_from"] == 2
    assert not os.path.exists(resumed + ".ckpt")
    first, second = load_adapters(whole), load_adapters(resumed)
    assert set(first.tensors) == {"transformer.h.0.attn.c_attn.lora_A", "transformer.h.0.attn.c_attn.lora_B",
                                  "transformer.h.0.attn.c_proj.lora_A", "transformer.h.0.attn.c_proj.lora_B"}
    assert all(torch.equal(first.tensors[k], second.tensors[k]) for k in first.tensors)
    assert first.tensors["transformer.h.0.attn.c_attn.lora_B"].abs().sum() > 0  # it trained


@pytest.mark.slow
def test_adapt_resumes_after_a_real_kill(tmp_path):
    out = str(tmp_path / "killed.safetensors")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    args = [sys.executable, "-m", "simulator.cli"] + QUICK[:2] + ["40"] + QUICK[3:] + ["--out", out]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not os.path.exists(out + ".ckpt") and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert os.path.exists(out + ".ckpt") and not os.path.exists(out)
    assert subprocess.run(args + ["--json", str(tmp_path / "s.json")], env=env).returncode == 0
    assert json.load(open(tmp_path / "s.json"))["resumed_from"] > 0


def _file(tmp_path, tensors, **meta):
    path = str(tmp_path / "bad.safetensors")
    save_adapters(path, tensors, {"method": "lora", "mode": "agnostic", "model": "x", "rank": 8, "alpha": 32.0,
                                  "fingerprint": "0" * 16, "chips": [0], **meta})
    return path


def _one_line_error(capsys, code):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aimcsim: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_run_rejects_adapters_of_another_model(tmp_path, capsys):
    path = _file(tmp_path, {"encoder.layer.0.attention.self.query.lora_A": torch.zeros(1, 8, 384),
                            "encoder.layer.0.attention.self.query.lora_B": torch.zeros(1, 384, 8)})
    err = _one_line_error(capsys, main(["run", "--adapters", path, "--no-accuracy"]))
    assert "matches no projection" in err


def test_run_rejects_adapters_of_the_wrong_shape(tmp_path, capsys):
    path = _file(tmp_path, {"transformer.h.0.attn.c_attn.lora_A": torch.zeros(1, 8, 100),
                            "transformer.h.0.attn.c_attn.lora_B": torch.zeros(1, 384, 8)})
    err = _one_line_error(capsys, main(["run", "--adapters", path, "--no-accuracy"]))
    assert "do not fit" in err


def test_accuracy_rejects_bad_adapter_files(tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_text("junk")
    assert "not a safetensors" in _one_line_error(capsys, main(["accuracy", "--adapters", str(junk)]))
    path = _file(tmp_path, {"transformer.h.0.attn.c_attn.lora_A": torch.zeros(1, 8, 128),
                            "transformer.h.0.attn.c_attn.lora_B": torch.zeros(1, 384, 8)})
    err = _one_line_error(capsys, main(["accuracy", "--adapters", path, "--seeds", "1", "--t", "0",
                                        "--max-tokens", "256"]))
    assert "trained for model" in err
