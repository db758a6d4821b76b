"""Sensitivity profile: the GPT-2 suffix probe against full forwards, ranking, summaries, files."""
import json

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from simulator.analysis.profile import (LmSuffixProbe, ProfileResult, degradation, measure_sets, merge_parts,
                                        profile_sensitivity, profile_sets, projection_layer, projection_type,
                                        split_seeds, write_profile_h5)
from simulator.hw.schema import HwConfig
from workloads.gpt2.model import GPT2, GPT2Config

FRAGILE = "transformer.h.1.mlp.c_fc"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: thread start-up dominates, and the machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class CoarseLinear(nn.Module):
    """A deterministic stand-in for AnalogLinear: 4-bit per-tensor weight quantisation plus a
    seeded, time-growing perturbation, one weight copy per seed (leading-dim slices)."""

    def __init__(self, linear: nn.Linear, seeds):
        super().__init__()
        weight = linear.weight.detach()
        scale = weight.abs().max()
        quantised = torch.round(weight / scale * 7) / 7 * scale
        self.noise = torch.stack([torch.randn(weight.shape, generator=torch.Generator().manual_seed(s))
                                  for s in seeds]) * 0.01 * scale
        self.quantised, self.bias, self.t_s = quantised, linear.bias, 0.0

    def set_time(self, t_s):
        self.t_s = t_s

    def forward(self, x):
        weights = self.quantised + self.noise * (1 + self.t_s)
        slices = x.chunk(weights.shape[0], dim=0)
        out = torch.cat([s @ w.T for s, w in zip(slices, weights)])
        return out if self.bias is None else out + self.bias


def coarse_convert(model, names, hw, seeds):
    import copy
    converted = copy.deepcopy(model)
    for name in names:
        converted.set_submodule(name, CoarseLinear(converted.get_submodule(name), seeds))
    return converted


def coarse_set_time(model, t_s):
    for module in model.modules():
        if isinstance(module, CoarseLinear):
            module.t_s = t_s


def tiny_gpt2(fragile: bool) -> GPT2:
    """A 2-block random GPT-2 with weights large enough that its predictions are confident."""
    torch.manual_seed(0)
    model = GPT2(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.3)
        if fragile:  # a huge weight column on an input the LayerNorm silences: harmless in FP,
            # but per-tensor quantisation then rounds every other weight to zero
            model.get_submodule(FRAGILE).weight[:, 5] = 50.0
            model.transformer.h[1].ln_2.weight[5] = 0.0
    return model.eval()


def eval_data(model, n_windows=3, seq=16):
    """Random prompts whose targets are the FP model's own top-1: any damage raises perplexity."""
    ids = torch.randint(0, 64, (n_windows, seq), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return ids, model(ids).argmax(dim=-1)


def probe_for(model, seeds=(0, 1, 2), windows_per_batch=2):
    ids, targets = eval_data(model)
    return LmSuffixProbe(model, HwConfig(), seeds, ids, targets, windows_per_batch=windows_per_batch,
                         layer_factory=lambda linear, hw, seeds, name: CoarseLinear(linear, seeds))


def full_forward_ppl(model, fp_model, seeds):
    """Reference: the converted model's own forward on the repeated batch, per seed."""
    ids, targets = eval_data(fp_model)
    with torch.no_grad():
        logits = model(ids.repeat(len(seeds), 1))
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.repeat(len(seeds), 1).flatten(),
                                            reduction="none").view(len(seeds), -1)
    return nll.mean(dim=1).exp().double().numpy()


@pytest.mark.parametrize("names", [{"lm_head"}, {"transformer.h.1.attn.c_proj"},
                                   {"transformer.h.0.attn.c_attn", "transformer.h.1.mlp.c_proj"}])
def test_suffix_probe_matches_full_forward(names):
    model, seeds = tiny_gpt2(fragile=False), (0, 1, 2)
    probe = probe_for(model, seeds)
    assert probe.fp == pytest.approx(float(full_forward_ppl(model, model, [0])[0]), rel=1e-5)
    converted = coarse_convert(model, sorted(names), None, seeds)
    expected = {}
    for t_s in (0.0, 2.0):
        coarse_set_time(converted, t_s)
        expected[t_s] = full_forward_ppl(converted, model, seeds) - probe.fp
    measured = probe.degradation(frozenset(names), [0.0, 2.0])
    assert measured.shape == (2, 3)
    np.testing.assert_allclose(measured, np.stack([expected[0.0], expected[2.0]]), rtol=1e-4, atol=1e-6)
    assert not np.allclose(measured[0], measured[0][0])  # seeds are distinct realisations


def test_fragile_projection_ranks_first():
    probe = probe_for(tiny_gpt2(fragile=True))
    result = profile_sensitivity(probe, [0.0, 1.0])
    summary = result.to_dict()
    ranked = [entry["name"] for entry in summary["projections"]]
    assert ranked[0] == FRAGILE
    assert len(ranked) == 9
    top = summary["projections"][0]
    assert top["analog_alone_delta"] > 5 * summary["projections"][1]["analog_alone_delta"]
    # with everything else analog, keeping the fragile one digital recovers the most
    recovery = {e["name"]: summary["all_analog"][-1]["delta"] - e["digital_alone_delta"]
                for e in summary["projections"]}
    assert max(recovery, key=recovery.get) == FRAGILE
    assert summary["per_block"][0]["layer"] == 1
    assert summary["per_type"][0]["type"] == "mlp.c_fc"
    healthy = profile_sensitivity(probe_for(tiny_gpt2(fragile=False)), [1.0]).to_dict()
    assert healthy["projections"][0]["name"] != FRAGILE  # the outlier, not the position, did it


def test_summaries_from_hand_made_numbers(tmp_path):
    names = ("transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn", "lm_head")
    analog = np.array([[[1.0, 3.0]], [[4.0, 4.0]], [[0.5, 0.5]]])  # [projection, time, seed]
    digital = np.array([[[9.0, 9.0]], [[7.0, 7.0]], [[8.0, 8.0]]])
    result = ProfileResult("perplexity", 20.0, (3600.0,), names, analog, digital, np.array([[10.0, 12.0]]))
    summary = result.to_dict()
    assert [e["name"] for e in summary["projections"]] == [names[1], names[0], names[2]]
    first_block0 = summary["projections"][1]
    assert first_block0["analog_alone_delta"] == 2.0
    assert first_block0["std"] == pytest.approx(np.sqrt(2.0))
    assert summary["all_analog"][0] == {"t_s": 3600.0, "delta": 11.0, "std": pytest.approx(np.sqrt(2.0))}
    per_type = {g["type"]: g for g in summary["per_type"]}
    assert per_type["attn.c_attn"]["analog_alone_delta_sum"] == 6.0
    assert per_type["attn.c_attn"]["digital_alone_delta_mean"] == 8.0
    assert [g["layer"] for g in summary["per_block"]] == [1, 0, -1]
    json.dumps(summary)
    path = tmp_path / "profile.h5"
    write_profile_h5(result, str(path))
    with h5py.File(path) as f:
        assert f.attrs["metric"] == "perplexity"
        np.testing.assert_array_equal(f["analog_alone"][()], analog)
        assert [n.decode() for n in f["projections"][()]] == list(names)
    assert [p.name for p in tmp_path.iterdir()] == ["profile.h5"]  # no temp file left


def test_name_helpers_and_degradation_direction():
    assert projection_layer("transformer.h.11.mlp.c_proj") == 11
    assert projection_type("transformer.h.11.mlp.c_proj") == "mlp.c_proj"
    assert projection_type("encoder.layer.3.attention.self.query") == "attention.self.query"
    assert projection_layer("lm_head") == -1 and projection_type("lm_head") == "lm_head"
    np.testing.assert_allclose(degradation("perplexity", 10.0, [12.0, 9.0]), [2.0, -1.0])
    np.testing.assert_allclose(degradation("embedding_cosine", 1.0, [0.9]), [0.1])


def test_reused_analog_layers_equal_fresh_conversions():
    """Programmed once and composed per run (in any order, times interleaved, digital-alone runs
    resumed from the all-analog block inputs) gives the numbers of a freshly converted copy per
    set; the FP model is left untouched."""
    from simulator.analog.layer import convert_to_analog, set_time
    model, seeds = tiny_gpt2(fragile=False), (0, 1)
    ids, targets = eval_data(model)
    hw = HwConfig()
    probe = LmSuffixProbe(model, hw, seeds, ids, targets, windows_per_batch=3)  # one MVM call per run
    everything = frozenset(probe.projections)
    sets = [frozenset({"transformer.h.1.mlp.c_fc"}), frozenset({"transformer.h.0.attn.c_attn", "lm_head"}),
            everything - {"transformer.h.1.mlp.c_fc"}, everything - {"lm_head"}, everything,
            frozenset({"transformer.h.0.attn.c_attn", "lm_head", "transformer.h.1.mlp.c_fc"})]
    # 2 and 3 resume from the all-analog run (run first), 5 from run 1 at block 1
    times = [0.0, 86400.0]
    measured = probe.degradations(sets, times)
    measured_again = probe.degradation(sets[0], times[::-1])  # layers already at the other time
    for names, result in zip(sets, measured):
        fresh = convert_to_analog(model, sorted(names), hw, seeds)
        for k, t_s in enumerate(times):
            set_time(fresh, t_s)
            np.testing.assert_allclose(result[k], full_forward_ppl(fresh, model, seeds) - probe.fp, rtol=1e-5)
    np.testing.assert_allclose(measured_again, measured[0][::-1], rtol=1e-6)
    assert probe._start(everything - {"transformer.h.1.attn.c_proj"}, 0.0)[0] == 1
    assert probe._start(everything - {"lm_head", "transformer.h.1.mlp.c_proj"}, 0.0)[0] == 1
    assert probe._start(sets[3], 0.0)[0] == 2  # kept itself: only ln_f + lm_head re-run
    assert probe._start(frozenset({"transformer.h.0.mlp.c_fc"}), 0.0) == (0, None)
    assert all(type(m) is nn.Linear for _, m in model.named_modules() if "c_fc" in _ or _ == "lm_head")


def test_seed_shares_side_by_side_equal_one_probe_of_all_seeds():
    """What lets profile split its seeds over Dask workers: a seed's values do not depend on
    which other seeds share its forwards."""
    model = tiny_gpt2(fragile=True)
    names = ("transformer.h.0.attn.c_attn", "transformer.h.1.mlp.c_fc", "lm_head")
    sets = profile_sets(names)
    whole = measure_sets(_restricted(probe_for(model, seeds=(0, 1, 2)), names), sets, [0.0, 1e4])
    assert split_seeds((0, 1, 2), 2) == [(0, 1), (2,)] and split_seeds((0,), 4) == [(0,)]
    shares = [("perplexity", 0.0, measure_sets(_restricted(probe_for(model, seeds=share), names), sets, [0.0, 1e4]))
              for share in split_seeds((0, 1, 2), 2)]
    _, _, merged = merge_parts(shares)
    for together, apart in zip(whole, merged):
        np.testing.assert_allclose(apart, together, rtol=1e-12, atol=1e-12)


def _restricted(probe, names):
    probe.projections = names
    return probe
