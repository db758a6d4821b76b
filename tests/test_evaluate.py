"""evaluate_accuracy on a tiny GPT-2: FP reference, seed batching, determinism, errors."""
import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simulator.accuracy.evaluate import analog_projection_names, evaluate_accuracy
from simulator.errors import UserError
from simulator.hw.loader import load_hw
from simulator.mapping.mapping import Mapping, Placement
from workloads.gpt2.corpus import eval_documents, token_stream
from workloads.gpt2.model import GPT2, GPT2Config
from workloads.gpt2.train_pydoc import train_tokenizer

WINDOW = 32
EVAL_TOKENS = 4 * WINDOW  # four windows keep the analog runs to a fraction of a second


@pytest.fixture(scope="module")
def tiny_lm():
    tokenizer = train_tokenizer([doc.text for doc in eval_documents()[:5]], vocab_size=300)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=WINDOW, n_embd=32,
                        n_layer=2, n_head=2)
    return types.SimpleNamespace(family="gpt2", name="tiny", config={}, path="",
                                 model=GPT2(config).eval(), tokenizer=tokenizer)


@pytest.fixture(scope="module")
def ideal_hw():
    return load_hw("tiny", {"analog.device.model": "ideal", "analog.periphery.out_noise": 0.0,
                            "analog.dac_bits": 16, "analog.adc_bits": 16,
                            "analog.periphery.out_bound": 64.0,
                            "analog.periphery.drift_compensation": "none"})


def _hand_perplexity(tiny_lm, tokens):
    stream = token_stream(tiny_lm.tokenizer, eval_documents())
    nll, count = 0.0, 0
    with torch.no_grad():
        for k in range(tokens // WINDOW):
            ids = torch.from_numpy(stream[k * WINDOW:(k + 1) * WINDOW + 1].astype(np.int64))
            logits = tiny_lm.model(ids[None, :-1])[0]
            nll += F.cross_entropy(logits, ids[1:], reduction="sum").item()
            count += WINDOW
    return math.exp(nll / count)


def test_all_digital_is_the_fp_reference_everywhere(tiny_lm, ideal_hw):
    result = evaluate_accuracy(tiny_lm, ideal_hw, {}, [0.0, 3600.0], seeds=3, max_tokens=EVAL_TOKENS)
    assert result.metric == "perplexity" and result.analog_projections == ()
    assert result.eval_tokens == EVAL_TOKENS
    assert result.fp == pytest.approx(_hand_perplexity(tiny_lm, EVAL_TOKENS), rel=1e-6)
    for entry in result.results:
        assert entry["values"] == [result.fp] * 3 and entry["std"] == 0.0 and entry["delta"] == 0.0
    assert [entry["t_s"] for entry in result.results] == [0.0, 3600.0]


def test_ideal_analog_tiles_reproduce_fp(tiny_lm, ideal_hw):
    names = tiny_lm.model.projection_names()
    result = evaluate_accuracy(tiny_lm, ideal_hw, {name: "analog" for name in names},
                               [86400.0], seeds=[0, 1], max_tokens=EVAL_TOKENS)
    assert result.analog_projections == tuple(names)
    assert result.results[0]["values"] == pytest.approx([result.fp] * 2, rel=1e-3)


def test_progress_counts_every_analog_forward(tiny_lm, ideal_hw):
    calls = []
    evaluate_accuracy(tiny_lm, ideal_hw, {"lm_head": "analog"}, [0.0, 3600.0], seeds=2,
                      max_tokens=EVAL_TOKENS, progress=lambda done, total: calls.append((done, total)))
    steps = calls[-1][1]
    assert steps >= 2 and calls == [(k, steps) for k in range(0, steps + 1)]  # 0: before programming


def test_noisy_tiles_move_away_from_fp_and_seeds_are_reproducible(tiny_lm):
    pcm_hw = load_hw("tiny")
    targets = {"transformer.h.0.mlp.c_fc": "analog", "lm_head": "analog"}
    run = lambda seeds: evaluate_accuracy(tiny_lm, pcm_hw, targets, [3600.0, 3.15e7], seeds,
                                          metric="kl", max_tokens=EVAL_TOKENS)
    both, again, second_alone = run([7, 8]), run([7, 8]), run([8])
    assert both.fp == 0.0
    assert both.results == again.results
    values = np.array([entry["values"] for entry in both.results])
    assert (values > 0).all()
    assert values[:, 0] != pytest.approx(values[:, 1])  # two different chips
    # realisation k of the batched forward is exactly the chip of seed k
    assert [entry["values"][0] for entry in second_alone.results] == pytest.approx(values[:, 1])


def test_seeds_in_groups_give_the_numbers_of_all_at_once(tiny_lm):
    """What lets `accuracy` evaluate seeds that do not fit in memory together: groups of
    them, one after another, with the batches sized for all, give the same numbers."""
    pcm_hw = load_hw("tiny")
    targets = {"transformer.h.0.mlp.c_fc": "analog", "lm_head": "analog"}
    calls = []
    run = lambda at_once, progress=None: evaluate_accuracy(tiny_lm, pcm_hw, targets, [3600.0, 3.15e7], 3,  # noqa: E731
                                                           max_tokens=EVAL_TOKENS, seeds_at_once=at_once,
                                                           progress=progress)
    whole = run(None)
    grouped = run(2, progress=lambda done, total: calls.append((done, total)))
    assert grouped.results == whole.results and grouped.fp == whole.fp and grouped.seeds == (0, 1, 2)
    steps = calls[-1][1]  # one bar over both groups
    assert calls == [(k, steps) for k in range(0, steps + 1)]


def test_top1_agreement_and_mapping_targets(tiny_lm):
    mapping = Mapping(placements=(Placement("lm_head", "analog"),
                                  Placement("transformer.h.1.attn.c_proj", "digital")))
    result = evaluate_accuracy(tiny_lm, load_hw("tiny"), mapping, [0.0], seeds=2,
                               metric="top1", max_batches=1)
    assert result.analog_projections == ("lm_head",)
    assert result.fp == 1.0
    assert all(0.0 <= v <= 1.0 for v in result.results[0]["values"])
    assert result.to_dict()["seeds"] == [0, 1]


def test_bad_inputs_are_user_errors(tiny_lm, ideal_hw):
    with pytest.raises(UserError, match="'cosine' is not available for gpt2 models"):
        evaluate_accuracy(tiny_lm, ideal_hw, {}, [0.0], 1, metric="cosine")
    with pytest.raises(UserError, match="projection 'transformer.h.9.mlp.c_fc' is not in the model"):
        analog_projection_names(tiny_lm.model, {"transformer.h.9.mlp.c_fc": "analog"})
    with pytest.raises(UserError, match="lm_head: expected 'analog' or 'digital', got 'tile'"):
        analog_projection_names(tiny_lm.model, {"lm_head": "tile"})
    with pytest.raises(UserError, match="at least one seed"):
        evaluate_accuracy(tiny_lm, ideal_hw, {}, [0.0], [])
    encoder = types.SimpleNamespace(family="t5", model=tiny_lm.model)
    with pytest.raises(UserError, match="family 't5' has no accuracy evaluation"):
        evaluate_accuracy(encoder, ideal_hw, {}, [0.0], 1)


def test_encoder_cosine_against_fp(ideal_hw):
    from workloads.checkpoint import random_model
    config = {"model_type": "bert", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
              "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
    encoder = random_model(config, "tiny-bert")
    analog = {name: "analog" for name in ("encoder.layer.0.attention.self.query",
                                         "encoder.layer.0.intermediate.dense")}
    digital = evaluate_accuracy(encoder, ideal_hw, {}, [0.0], seeds=2)
    assert digital.metric == "cosine" and digital.eval_tokens is None
    assert digital.results[0]["values"] == [1.0, 1.0]
    ideal = evaluate_accuracy(encoder, ideal_hw, analog, [3600.0], seeds=2)
    assert ideal.results[0]["values"] == pytest.approx([1.0, 1.0], abs=1e-9)
    noisy = evaluate_accuracy(encoder, load_hw("tiny"), analog, [3600.0], seeds=2).results[0]
    assert evaluate_accuracy(encoder, load_hw("tiny"), analog, [3600.0], seeds=2,
                             seeds_at_once=1).results[0] == noisy  # one seed at a time: the same
    # a random encoder's output is mostly its embedding (residual + LayerNorm), so the
    # analog error is small, but it is far above the ideal tiles' rounding error
    assert all(0.99 < v < 1.0 - 1e-8 for v in noisy["values"])
    assert noisy["values"][0] != noisy["values"][1]


@pytest.fixture(scope="module")
def embedded():
    from workloads.registry import load_model
    return load_model("gpt2-pydoc")


def test_embedded_model_on_ideal_tiles_matches_fp(embedded, ideal_hw):
    names = embedded.model.projection_names()
    result = evaluate_accuracy(embedded, ideal_hw, {name: "analog" for name in names}, [86400.0],
                               seeds=1, max_tokens=256)
    assert len(result.analog_projections) == 49 and result.eval_tokens == 256
    assert result.results[0]["values"] == pytest.approx([result.fp], rel=1e-3)


@pytest.mark.slow  # the whole held-out split: about 20 s
def test_embedded_fp_perplexity_is_the_published_one(embedded, ideal_hw):
    provenance = embedded.config["aimcsim_corpus"]
    result = evaluate_accuracy(embedded, ideal_hw, {}, [0.0], seeds=1)
    assert result.fp == pytest.approx(provenance["fp_perplexity"], rel=1e-4)
    assert result.eval_tokens == (provenance["eval_tokens"] - 1) // 256 * 256
