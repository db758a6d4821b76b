"""BertEncoder / MobileBert against transformers.BertModel / MobileBertModel on small random configs."""
import dataclasses

import pytest
import torch

from simulator.errors import UserError
from workloads.bert.data import EVAL_SENTENCE_COUNT, eval_batch, eval_sentences
from workloads.bert.model import (BertConfig, BertEncoder, MobileBert, MobileBertConfig,
                                  bert_from_hf_config, mean_pool, mobilebert_from_hf_config,
                                  sentence_embedding)
from workloads.checkpoint import load_tokenizer, random_model

transformers = pytest.importorskip("transformers")

SMALL_BERT = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=48, max_position_embeddings=24, type_vocab_size=2)
SMALL_MOBILEBERT = dict(vocab_size=97, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=40, max_position_embeddings=24, embedding_size=16,
                        intra_bottleneck_size=24, num_feedforward_networks=3)


def _inputs(vocab_size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab_size, (3, 11), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0  # padded sentence
    attention_mask[2, 4:] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[0, 5:] = 1
    return input_ids, attention_mask, token_type_ids


def _hf_model(hf_class, config_class, config: dict, seed: int):
    torch.manual_seed(seed)
    model = hf_class(config_class(**config), add_pooling_layer=False).eval()
    with torch.no_grad():  # HF inits norms to identity; perturb so a swapped weight/bias shows
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def _assert_matches_hf(ours, hf_model, vocab_size: int):
    missing, unexpected = ours.load_state_dict(hf_model.state_dict(), strict=False)
    assert missing == []
    assert set(unexpected) <= {"embeddings.position_ids", "embeddings.token_type_ids"}
    ours.eval()
    input_ids, attention_mask, token_type_ids = _inputs(vocab_size)
    with torch.no_grad():
        expected = hf_model(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).last_hidden_state
        got = ours(input_ids, attention_mask, token_type_ids)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)
    return got


def _hf_linear_names(hf_model) -> set[str]:
    return {name for name, module in hf_model.named_modules() if isinstance(module, torch.nn.Linear)}


def test_bert_matches_transformers_with_padding_and_token_types():
    hf_model = _hf_model(transformers.BertModel, transformers.BertConfig, SMALL_BERT, seed=1)
    ours = BertEncoder(BertConfig.from_hf_dict(SMALL_BERT))
    _assert_matches_hf(ours, hf_model, SMALL_BERT["vocab_size"])
    assert set(ours.projection_names()) == _hf_linear_names(hf_model)
    assert ours.projection_names()[:6] == [
        "encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.key",
        "encoder.layer.0.attention.self.value", "encoder.layer.0.attention.output.dense",
        "encoder.layer.0.intermediate.dense", "encoder.layer.0.output.dense"]


@pytest.mark.parametrize("variant", [
    {},  # the google/mobilebert-uncased layout: trigram, shared key/query bottleneck, NoNorm
    {"use_bottleneck_attention": True, "key_query_shared_bottleneck": False},
    {"normalization_type": "layer_norm", "trigram_input": False, "hidden_act": "gelu"},
    {"use_bottleneck": False, "num_feedforward_networks": 1, "embedding_size": 48,
     "trigram_input": False},
])
def test_mobilebert_matches_transformers(variant):
    config = {**SMALL_MOBILEBERT, **variant}
    hf_model = _hf_model(transformers.MobileBertModel, transformers.MobileBertConfig, config, seed=2)
    ours = MobileBert(MobileBertConfig.from_hf_dict(config))
    _assert_matches_hf(ours, hf_model, config["vocab_size"])
    hf_names = _hf_linear_names(hf_model)
    if not ours.embeddings.transform_needed:
        hf_names.discard("embeddings.embedding_transformation")
    assert set(ours.projection_names()) == hf_names


def test_mobilebert_projection_names_in_execution_order():
    names = MobileBert(MobileBertConfig.from_hf_dict(SMALL_MOBILEBERT)).projection_names()
    assert names[:12] == [
        "embeddings.embedding_transformation",
        "encoder.layer.0.bottleneck.input.dense", "encoder.layer.0.bottleneck.attention.dense",
        "encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.key",
        "encoder.layer.0.attention.self.value", "encoder.layer.0.attention.output.dense",
        "encoder.layer.0.ffn.0.intermediate.dense", "encoder.layer.0.ffn.0.output.dense",
        "encoder.layer.0.ffn.1.intermediate.dense", "encoder.layer.0.ffn.1.output.dense",
        "encoder.layer.0.intermediate.dense"]
    assert names[12:14] == ["encoder.layer.0.output.dense", "encoder.layer.0.output.bottleneck.dense"]
    assert len(names) == 1 + 2 * 13


def test_padding_does_not_change_real_tokens():
    model = BertEncoder(BertConfig.from_hf_dict(SMALL_BERT)).eval()
    input_ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0]])
    with torch.no_grad():
        alone = model(input_ids, torch.ones_like(input_ids))
        with_padding = model(padded, torch.tensor([[1, 1, 1, 1, 0, 0]]))
    torch.testing.assert_close(with_padding[:, :4], alone, atol=1e-6, rtol=1e-6)


def test_same_seed_same_weights_and_seed_changes_them():
    config = MobileBertConfig.from_hf_dict(SMALL_MOBILEBERT)
    first, again, other = MobileBert(config, seed=3), MobileBert(config, seed=3), MobileBert(config, seed=4)
    name = "encoder.layer.1.ffn.0.intermediate.dense.weight"
    assert torch.equal(first.state_dict()[name], again.state_dict()[name])
    assert not torch.equal(first.state_dict()[name], other.state_dict()[name])
    assert first.state_dict()[name].std().item() == pytest.approx(0.02, rel=0.1)


def test_mean_pool_and_sentence_embedding_by_hand():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(mean_pool(hidden, mask), torch.tensor([[2.0, 2.0]]))
    half_root2 = 2 ** -0.5
    torch.testing.assert_close(sentence_embedding(hidden, mask), torch.tensor([[half_root2, half_root2]]))


def test_sequence_longer_than_positions_is_rejected():
    model = BertEncoder(BertConfig.from_hf_dict(SMALL_BERT))
    with pytest.raises(ValueError, match="max_position_embeddings=24"):
        model(torch.zeros((1, 25), dtype=torch.long))


@pytest.mark.parametrize("change, message", [
    ({"hidden_size": None, "num_attention_heads": 4}, "missing key 'hidden_size'"),
    ({"num_attention_heads": 5}, "must be divisible by num_attention_heads"),
    ({"hidden_act": "tanh"}, "hidden_act: expected one of"),
    ({"num_hidden_layers": "two"}, "num_hidden_layers: expected a positive integer, got 'two'"),
    ({"position_embedding_type": "relative_key"}, "only 'absolute' is supported"),
])
def test_bad_bert_config_raises_user_error(change, message):
    config = {**SMALL_BERT, **change}
    config = {key: value for key, value in config.items() if value is not None}
    with pytest.raises(UserError, match=message):
        bert_from_hf_config(config, "ckpt/config.json")


@pytest.mark.parametrize("change, message", [
    ({"normalization_type": "batch_norm"}, "normalization_type: expected one of"),
    ({"key_query_shared_bottleneck": False}, "use_bottleneck without .* needs intra_bottleneck_size"),
    ({"trigram_input": "yes"}, "trigram_input: expected true or false, got 'yes'"),
])
def test_bad_mobilebert_config_raises_user_error(change, message):
    with pytest.raises(UserError, match=f"ckpt/config.json: {message}"):
        mobilebert_from_hf_config({**SMALL_MOBILEBERT, **change}, "ckpt/config.json")


# ---- eval data (workloads/bert/data.py) --------------------------------------------------

def test_eval_sentences_are_fixed_prose():
    sentences = eval_sentences()
    assert len(sentences) == EVAL_SENTENCE_COUNT == len(set(sentences))
    assert all(8 <= len(s.split()) <= 60 and s[0].isupper() and s.endswith(".") for s in sentences)
    assert not any("::=" in s or ">>>" in s for s in sentences)


def test_eval_batch_without_tokenizer_is_seeded_random_ids():
    loaded = random_model({"model_type": "mobilebert", **SMALL_MOBILEBERT}, "tiny")
    batch = eval_batch(loaded, max_sentences=5, seed=7)
    lengths = [min(len(s.split()) + 2, 24) for s in eval_sentences()[:5]]
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["input_ids"].shape == (5, max(lengths))
    assert int(batch["input_ids"].max()) < SMALL_MOBILEBERT["vocab_size"]
    assert torch.equal(batch["input_ids"], eval_batch(loaded, max_sentences=5, seed=7)["input_ids"])
    assert not torch.equal(batch["input_ids"], eval_batch(loaded, max_sentences=5, seed=8)["input_ids"])
    assert torch.all(batch["input_ids"][batch["attention_mask"] == 0] == 0)
    with torch.no_grad():
        assert loaded.model(**batch).shape == (5, max(lengths), SMALL_MOBILEBERT["hidden_size"])


def test_eval_batch_tokenizes_truncates_and_pads(tmp_path):
    words = sorted({w.strip(".,()\"'").lower() for s in eval_sentences()[:3] for w in s.split()})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words]) + "\n")
    config = {"model_type": "bert", **SMALL_BERT, "vocab_size": 4 + len(words), "max_position_embeddings": 10}
    loaded = dataclasses.replace(random_model(config, "tiny"), tokenizer=load_tokenizer(tmp_path))
    batch = eval_batch(loaded, max_sentences=3)
    assert batch["input_ids"].shape == (3, 10)  # every sentence is truncated to 10 tokens
    assert batch["input_ids"][:, 0].tolist() == [2, 2, 2] and batch["input_ids"][:, -1].tolist() == [3, 3, 3]
    assert int(batch["attention_mask"].sum()) == 30
