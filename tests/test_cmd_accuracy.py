"""`aimcsim accuracy`: time parsing, mapping choice, outputs, and one-line errors for bad flags."""
import json

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from simulator.cli import main
from simulator.commands.accuracy import format_time, mapping_targets, parse_duration_s, parse_times
from simulator.errors import UserError
from workloads.gpt2.corpus import eval_documents
from workloads.gpt2.model import GPT2, GPT2Config, to_hf_state_dict
from workloads.gpt2.train_pydoc import train_tokenizer


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A real HF-layout checkpoint folder, read back through workloads.registry.load_model."""
    tokenizer = train_tokenizer([doc.text for doc in eval_documents()[:3]], vocab_size=280)
    torch.manual_seed(0)
    model = GPT2(GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=32, n_embd=16,
                            n_layer=1, n_head=2))
    folder = tmp_path_factory.mktemp("ckpt")
    (folder / "config.json").write_text(json.dumps(model.config.to_hf_dict()))
    tokenizer.save(str(folder / "tokenizer.json"))
    save_file(to_hf_state_dict(model), str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize("text, seconds", [
    ("0", 0.0), ("90", 90.0), ("1s", 1.0), ("2min", 120.0), ("1h", 3600.0), ("1.5h", 5400.0),
    ("1d", 86400.0), ("1w", 604800.0), ("1mo", 2592000.0), ("1month", 2592000.0),
    ("1y", 31536000.0), ("10y", 315360000.0), (" 1D ", 86400.0),
])
def test_durations(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["1parsec", "-1h", "h", "1e3", "1 h 2"])
def test_bad_durations_list_the_units(text):
    with pytest.raises(UserError, match=r"--t: cannot read time .*units s, min, h, d, w, mo, month, y"):
        parse_duration_s(text)


def test_time_lists_and_labels():
    assert parse_times("0,1h,1d,1y") == [0.0, 3600.0, 86400.0, 31536000.0]
    assert [format_time(t) for t in (0.0, 90.0, 3600.0, 2592000.0, 31536000.0, 0.5)] == \
        ["0s", "90s", "1h", "30d", "1y", "0.5s"]
    with pytest.raises(UserError, match="at least one time"):
        parse_times(" , ")


def test_named_mapping_strategies_follow_the_capacity_rule_of_run():
    """all-analog is what the tiles hold, exactly as `aimcsim run` maps it (one rule)."""
    from simulator.hw.loader import load_hw
    from simulator.run import simulate_workload
    tiny = load_hw("tiny")
    timed = simulate_workload(tiny, "gpt2-pydoc", mapping_strategy="all-analog", seq=8).mapping.targets()
    assert mapping_targets("all-analog", "gpt2-pydoc", tiny) == timed
    assert set(timed.values()) == {"analog"}  # reprogram_per_pass: split over rounds where needed
    resident = load_hw("tiny", {"analog.multiplexing": "resident_subset"})  # only what fits at once
    timed = simulate_workload(resident, "gpt2-pydoc", mapping_strategy="all-analog", seq=8).mapping.targets()
    assert mapping_targets("all-analog", "gpt2-pydoc", resident) == timed
    assert 0 < sum(t == "analog" for t in timed.values()) < len(timed)
    no_tiles = load_hw("tiny", {"analog.tiles": 0})
    assert set(mapping_targets("all-analog", "gpt2-pydoc", no_tiles).values()) == {"digital"}
    assert set(mapping_targets("all-digital", "gpt2-pydoc", tiny).values()) == {"digital"}
    with pytest.raises(UserError, match="--mapping: expected all-analog, all-digital"):
        mapping_targets("half-analog", "gpt2-pydoc", tiny)


def test_accuracy_command_writes_json_and_h5(tiny_checkpoint, tmp_path, capsys):
    out_json, out_h5 = tmp_path / "acc.json", tmp_path / "acc.h5"
    code = main(["accuracy", "--hw", "tiny", "--model", str(tiny_checkpoint), "--t", "0,1d",
                 "--seeds", "2", "--max-tokens", "64", "--json", str(out_json), "--h5", str(out_h5)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "FP perplexity" in printed and "1d" in printed
    payload = json.loads(out_json.read_text())
    assert payload["metric"] == "perplexity" and payload["eval_tokens"] == 64
    assert len(payload["analog_projections"]) == 5  # 4 per block + lm_head
    assert [entry["t_s"] for entry in payload["results"]] == [0.0, 86400.0]
    assert all(len(entry["values"]) == 2 for entry in payload["results"])
    with h5py.File(out_h5) as f:
        assert f.attrs["metric"] == "perplexity"
        assert f.attrs["fp"] == pytest.approx(payload["fp"])
        np.testing.assert_allclose(f["values"][()], [e["values"] for e in payload["results"]])
        assert list(f["seeds"][()]) == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.h5", "acc.json"]  # no temp files


def test_mapping_file_picks_the_analog_projections(tiny_checkpoint, tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("default: digital\nprojections:\n  'transformer.h.*.mlp.*': analog\n")
    out_json = tmp_path / "acc.json"
    assert main(["accuracy", "--hw", "tiny", "--model", str(tiny_checkpoint), "--mapping", str(mapping),
                 "--t", "1h", "--seeds", "1", "--max-tokens", "32", "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["analog_projections"] == [
        "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj"]


@pytest.mark.parametrize("argv, message", [
    (["--t", "1parsec"], "cannot read time '1parsec'"),
    (["--seeds", "0"], "expected a positive integer, got '0'"),
    (["--mapping", "nowhere.yaml"], "--mapping: expected all-analog, all-digital or an existing mapping YAML file, got 'nowhere.yaml'"),
    (["--metric", "bleu"], "'bleu' is not available for gpt2 models"),
    (["--model", "gpt2"], "shape-only name"),
    (["--json", "/no/such/folder/a.json"], "folder /no/such/folder does not exist"),
])
def test_bad_flags_are_one_line_errors(tiny_checkpoint, argv, message, capsys):
    base = ["accuracy", "--hw", "tiny", "--model", str(tiny_checkpoint), "--mapping", "all-digital",
            "--t", "0", "--seeds", "1", "--max-tokens", "32"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aimcsim: error: ") and message in err and err.count("\n") == 1
