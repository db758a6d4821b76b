"""LoRA and AHWA on small models: where gradients go, zero-init, recovering a noisy
projection, which weights each method changes, adapter files."""
import pytest
import torch
from torch import nn

from simulator.adapt.files import AdapterFile, load_adapters, model_fingerprint, save_adapters
from simulator.adapt.lora import LoRA, attach_lora, freeze_all_but_adapters, match_targets
from simulator.adapt.periphery import NoiseInjection
from simulator.adapt.train import AdaptConfig, build_student, output_tensors
from simulator.adapt.twin import convert_to_twin, twin_layers
from simulator.analog.layer import convert_to_analog, set_time
from simulator.errors import UserError
from simulator.hw.schema import AnalogConfig, DeviceConfig, HwConfig, PeripheryConfig

NAMES = ["0", "2"]


def _hw(device=None, **periphery):
    return HwConfig(analog=AnalogConfig(rows=32, cols=32, device=device or DeviceConfig(),
                                        periphery=PeripheryConfig(**periphery)))


def _model(width=32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))


class _Loaded:
    """The bits of a LoadedModel that build_student / the file checks read."""

    def __init__(self, model):
        self.model, self.name, self.family = model, "tiny", "gpt2"


def test_gradients_flow_only_into_adapters():
    model = _model()
    twin = convert_to_twin(model, NAMES, _hw(), noise=NoiseInjection())
    adapters = attach_lora(twin, NAMES, rank=4, alpha=8)
    trainable = freeze_all_but_adapters(twin)
    assert len(trainable) == 4
    twin.train()
    twin(torch.randn(16, 32)).pow(2).sum().backward()
    for name, parameter in twin.named_parameters():
        if "lora" in name:
            assert parameter.grad is not None
        else:
            assert parameter.grad is None and not parameter.requires_grad
    assert adapters["0"].lora_B.grad.abs().sum() > 0  # B starts at 0, so A's first gradient is 0


def test_zero_initialised_adapters_leave_outputs_unchanged():
    hw = _hw()
    analog = convert_to_analog(_model(), NAMES, hw, [0, 1])
    x = torch.randn(2 * 5, 32)
    set_time(analog, 3600.0)
    with torch.no_grad():
        plain = analog(x)
        attach_lora(analog, NAMES, rank=4, alpha=32, sets=2)
        set_time(analog, 3600.0)  # same per-MVM noise stream again
        adapted = analog(x)
    assert torch.equal(plain, adapted)


def test_adapter_recovers_a_deliberately_noisy_projection():
    """One projection with large Gaussian programming noise (30 % of g_max): a chip-specific
    adapter trained on that chip brings its output error down by more than half."""
    torch.manual_seed(0)
    linear = nn.Linear(32, 32)
    fp = nn.Sequential(linear)
    hw = _hw(DeviceConfig(model="gaussian", gaussian_sigma=0.3), out_noise=0.0)
    chip = convert_to_analog(fp, ["0"], hw, [3])
    twin = convert_to_twin(fp, ["0"], hw, programmed=chip).train()
    adapter = attach_lora(twin, ["0"], rank=16, alpha=16)["0"]
    optimizer = torch.optim.Adam(freeze_all_but_adapters(twin), lr=1e-2)
    inputs = torch.randn(512, 32, generator=torch.Generator().manual_seed(1))
    for step in range(150):
        batch = inputs[(step * 64) % 512:][:64]
        loss = (twin(batch) - linear(batch).detach()).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = torch.randn(256, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = linear(test)
        before = (chip(test) - reference).norm()
        attach_lora(chip, ["0"], rank=16, alpha=16)
        chip.get_submodule("0").lora_A.copy_(adapter.lora_A)
        chip.get_submodule("0").lora_B.copy_(adapter.lora_B)
        after = (chip(test) - reference).norm()  # the numba inference kernels + the adapter
    assert after < 0.5 * before


def _one_step(student, trainable, rows=8):
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    student.train()
    student(torch.randn(rows, 32)).pow(2).mean().backward()
    optimizer.step()


def test_ahwa_changes_the_analog_weights_and_lora_does_not():
    loaded = _Loaded(_model())
    fp_weights = [w.detach().clone() for w in loaded.model.parameters()]
    for method, changes_analog in (("hwa", True), ("lora", False)):
        config = AdaptConfig(method=method, rank=4, alpha=8, dropout=0.0)
        student, trainable = build_student(loaded, _hw(), NAMES, config)
        before = [layer.weight.detach().clone() for layer in twin_layers(student)]
        _one_step(student, trainable)
        after = [layer.weight.detach() for layer in twin_layers(student)]
        assert all(not torch.equal(b, a) for b, a in zip(before, after)) == changes_analog
        assert all(torch.equal(b, a) for b, a in zip(before, after)) != changes_analog
        tensors = output_tensors(student, config)
        assert (set(tensors) == set(loaded.model.state_dict())) == (method == "hwa")
    assert all(torch.equal(w, v) for w, v in zip(fp_weights, loaded.model.parameters()))  # FP untouched


def _lora_file(tmp_path, loaded, sets=1, chips=(0,), **changes):
    config = AdaptConfig(rank=4, alpha=8, mode="specific" if sets > 1 else "agnostic", chips=tuple(chips))
    student, trainable = build_student(loaded, _hw(), NAMES, config)
    for _ in range(2):
        _one_step(student, trainable, rows=8 * sets)
    tensors = output_tensors(student, config)
    tensors.update(changes.pop("tensors", {}))
    meta = {"method": "lora", "mode": config.mode, "model": loaded.name, "rank": 4, "alpha": 8.0,
            "fingerprint": model_fingerprint(loaded.model), "chips": list(chips), **changes}
    path = str(tmp_path / "adapters.safetensors")
    save_adapters(path, tensors, meta)
    return path, tensors


def test_adapter_file_round_trips_and_reproduces_the_adapted_output(tmp_path):
    loaded = _Loaded(_model())
    path, tensors = _lora_file(tmp_path, loaded)
    adapters = load_adapters(path)
    assert set(adapters.tensors) == set(tensors)
    assert all(torch.equal(adapters.tensors[k], tensors[k]) for k in tensors)
    assert adapters.meta["rank"] == 4 and adapters.method == "lora"
    adapters.check_model(loaded)
    x = torch.randn(6, 32)
    analog = convert_to_analog(loaded.model, NAMES, _hw(), [0, 1])
    attached = adapters.attach(analog, NAMES, [0, 1])
    assert all(isinstance(analog.get_submodule(n), LoRA) for n in NAMES) and set(attached) == set(NAMES)
    with torch.no_grad():
        adapted = analog(x)
        plain = convert_to_analog(loaded.model, NAMES, _hw(), [0, 1])
        set_time(analog, 0.0)
        set_time(plain, 0.0)
        assert torch.allclose(analog[0](x), plain[0](x) + attached["0"].delta(x), atol=1e-6)
        assert not torch.equal(adapted, plain(x))


def test_chip_specific_file_picks_each_chips_set(tmp_path):
    loaded = _Loaded(_model())
    path, tensors = _lora_file(tmp_path, loaded, sets=3, chips=(0, 1, 2))
    adapters = load_adapters(path)
    analog = convert_to_analog(loaded.model, NAMES, _hw(), [2, 0])
    attached = adapters.attach(analog, NAMES, [2, 0])
    assert torch.equal(attached["0"].lora_A[0], tensors["0.lora_A"][2])
    assert torch.equal(attached["0"].lora_A[1], tensors["0.lora_A"][0])
    with pytest.raises(UserError, match="seed 5 has none"):
        adapters.attach(convert_to_analog(loaded.model, NAMES, _hw(), [5]), NAMES, [5])


@pytest.mark.parametrize("problem, message", [
    ("shape", "adapter shapes"), ("name", "matches no analog projection"), ("model", "trained for model"),
])
def test_bad_adapter_files_are_user_errors(tmp_path, problem, message):
    loaded = _Loaded(_model())
    changes = {}
    if problem == "shape":
        changes["tensors"] = {"0.lora_A": torch.zeros(1, 4, 31)}
    elif problem == "name":
        changes["tensors"] = {"9.lora_A": torch.zeros(1, 4, 32), "9.lora_B": torch.zeros(1, 32, 4)}
    elif problem == "model":
        changes["fingerprint"] = "0" * 16
    path, _ = _lora_file(tmp_path, loaded, **changes)
    adapters = load_adapters(path)
    with pytest.raises(UserError, match=message):
        adapters.check_model(loaded)
        adapters.attach(convert_to_analog(loaded.model, NAMES, _hw(), [0]), NAMES, [0])


def test_not_an_adapter_file(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not a safetensors adapter file"):
        load_adapters(str(junk))
    with pytest.raises(UserError, match="no such file"):
        load_adapters(str(tmp_path / "missing.safetensors"))


def test_targets_globs_must_match():
    names = ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc", "lm_head"]
    assert match_targets(names, ["*.attn.*", "lm_head"]) == ["transformer.h.0.attn.c_attn", "lm_head"]
    with pytest.raises(UserError, match="matches no analog projection"):
        match_targets(names, ["*.query"])
