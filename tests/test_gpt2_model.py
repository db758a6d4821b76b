"""Our GPT-2 forward against transformers.GPT2LMHeadModel, and HF state-dict round trips."""
import pytest
import torch

from simulator.errors import UserError
from workloads.gpt2.model import (
    GPT2, GPT2Config, from_hf_config, load_hf_state_dict, to_hf_state_dict,
)

transformers = pytest.importorskip("transformers")

SMALL = dict(vocab_size=97, n_positions=32, n_embd=48, n_layer=3, n_head=4,
             layer_norm_epsilon=1e-5, activation_function="gelu_new")


def _reference_model(**overrides):
    torch.manual_seed(0)
    config = transformers.GPT2Config(**{**SMALL, **overrides}, resid_pdrop=0.0,
                                     embd_pdrop=0.0, attn_pdrop=0.0)
    reference = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # HF inits biases to zero; make them count in the comparison
        for name, parameter in reference.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.1)
    return reference, config.to_dict()


@pytest.mark.parametrize("overrides", [{}, {"n_inner": 80}])
def test_logits_match_transformers(overrides):
    reference, hf_config = _reference_model(**overrides)
    model = load_hf_state_dict(from_hf_config(hf_config), reference.state_dict()).eval()
    ids = torch.randint(0, SMALL["vocab_size"], (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(ids).logits
        actual = model(ids)
    assert actual.shape == (2, 17, SMALL["vocab_size"])
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_projections_are_linear_modules_at_hf_names():
    model = GPT2(GPT2Config(**SMALL))
    modules = dict(model.named_modules())
    names = model.projection_names()
    assert len(names) == 4 * SMALL["n_layer"] + 1
    assert names[:4] == ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
                         "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj"]
    assert all(isinstance(modules[name], torch.nn.Linear) for name in names)
    assert modules["transformer.h.0.attn.c_attn"].weight.shape == (3 * 48, 48)
    assert model.lm_head.weight is model.transformer.wte.weight


def test_hf_state_dict_round_trip_loads_into_transformers():
    model = GPT2(GPT2Config(**SMALL)).eval()
    exported = to_hf_state_dict(model)
    assert exported["transformer.h.0.mlp.c_fc.weight"].shape == (48, 4 * 48)  # Conv1D layout
    reference = transformers.GPT2LMHeadModel(transformers.GPT2Config(**model.config.to_hf_dict()))
    reference.load_state_dict(exported, strict=False)
    reference.tie_weights()
    ids = torch.arange(10).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference.eval()(ids).logits, atol=1e-5, rtol=1e-5)


def test_bare_gpt2model_keys_are_accepted():
    model = GPT2(GPT2Config(**SMALL))
    bare = {k.removeprefix("transformer."): v for k, v in to_hf_state_dict(model).items()}
    fresh = load_hf_state_dict(GPT2(GPT2Config(**SMALL)), bare)
    torch.testing.assert_close(fresh.transformer.h[1].mlp.c_fc.weight, model.transformer.h[1].mlp.c_fc.weight)


def test_bad_state_dicts_name_the_key():
    model = GPT2(GPT2Config(**SMALL))
    state = to_hf_state_dict(model)
    wrong_shape = dict(state, **{"transformer.h.0.attn.c_attn.weight": torch.zeros(48, 10)})
    with pytest.raises(UserError, match=r"transformer\.h\.0\.attn\.c_attn\.weight: shape \(48, 10\)"):
        load_hf_state_dict(GPT2(GPT2Config(**SMALL)), wrong_shape)
    missing = {k: v for k, v in state.items() if k != "transformer.ln_f.bias"}
    with pytest.raises(UserError, match="missing 1 tensor.*ln_f.bias"):
        load_hf_state_dict(GPT2(GPT2Config(**SMALL)), missing)
    untied = dict(state, **{"lm_head.weight": torch.ones(97, 48)})
    with pytest.raises(UserError, match="lm_head.weight differs"):
        load_hf_state_dict(GPT2(GPT2Config(**SMALL)), untied)


def test_bad_config_names_the_key():
    with pytest.raises(UserError, match="missing key 'n_head'"):
        from_hf_config({k: v for k, v in SMALL.items() if k != "n_head"})
    with pytest.raises(UserError, match="n_embd .* divisible"):
        from_hf_config(dict(SMALL, n_head=5))
    with pytest.raises(UserError, match="activation_function: expected one of"):
        from_hf_config(dict(SMALL, activation_function="swish"))
