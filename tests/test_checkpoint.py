"""load_checkpoint on folders written by transformers, and its UserErrors."""
import json

import pytest
import torch
from safetensors.torch import save_file

from simulator.errors import UserError
from workloads.checkpoint import LoadedModel, load_checkpoint, load_tokenizer, random_model

transformers = pytest.importorskip("transformers")

BERT = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=24, max_position_embeddings=16)
MOBILEBERT = dict(vocab_size=40, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=20, max_position_embeddings=16, embedding_size=8,
                  intra_bottleneck_size=12, num_feedforward_networks=2)
GPT2 = dict(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", ",", "the"]


def _save_hf(model, folder, **kwargs):
    model.save_pretrained(folder, **kwargs)
    return folder


def _random_ids(vocab_size: int):
    return torch.randint(0, vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    """A BertForMaskedLM checkpoint (keys `bert.*` plus an MLM head) with a vocab.txt."""
    torch.manual_seed(0)
    hf_model = transformers.BertForMaskedLM(transformers.BertConfig(**BERT)).eval()
    folder = _save_hf(hf_model, tmp_path_factory.mktemp("bert"))
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return folder, hf_model.bert


def test_bert_task_checkpoint_loads_and_matches_transformers(bert_folder):
    folder, hf_encoder = bert_folder
    loaded = load_checkpoint(folder)
    assert isinstance(loaded, LoadedModel)
    assert (loaded.family, loaded.name, loaded.path) == ("bert", folder.name, folder)
    assert loaded.config["hidden_size"] == 16 and not loaded.model.training
    input_ids = _random_ids(BERT["vocab_size"])
    mask = torch.ones_like(input_ids)
    mask[1, 5:] = 0
    with torch.no_grad():
        expected = hf_encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        got = loaded.model(input_ids, mask)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_tokenizer_built_from_vocab_txt(bert_folder):
    tokenizer = load_checkpoint(bert_folder[0]).tokenizer
    assert tokenizer.encode("Hello worlds, THE end").ids == [2, 5, 6, 7, 8, 9, 1, 3]


def test_vocab_txt_tokenizer_respects_do_lower_case(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    assert load_tokenizer(tmp_path).encode("Hello hello").ids == [2, 1, 5, 3]


def test_fp16_pytorch_bin_mobilebert_loads_as_fp32(tmp_path):
    torch.manual_seed(1)
    hf_model = transformers.MobileBertModel(transformers.MobileBertConfig(**MOBILEBERT)).eval()
    hf_model.half()
    torch.save(hf_model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mobilebert", **MOBILEBERT}))
    loaded = load_checkpoint(tmp_path)
    assert loaded.family == "mobilebert" and loaded.tokenizer is None
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    hf_model.float()  # the same fp16-rounded weights, in fp32
    input_ids = _random_ids(MOBILEBERT["vocab_size"])
    with torch.no_grad():
        expected = hf_model(input_ids=input_ids).last_hidden_state
        got = loaded.model(input_ids)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_gpt2_checkpoint_loads_and_matches_transformers(tmp_path):
    torch.manual_seed(2)
    hf_model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT2)).eval()
    loaded = load_checkpoint(_save_hf(hf_model, tmp_path))
    assert loaded.family == "gpt2"
    input_ids = _random_ids(GPT2["vocab_size"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(input_ids), hf_model(input_ids).logits,
                                   atol=1e-5, rtol=1e-5)


def test_sharded_safetensors_index_loads(bert_folder, tmp_path):
    tensors = load_checkpoint(bert_folder[0]).model.state_dict()
    names = sorted(tensors)
    halves = {"a.safetensors": names[: len(names) // 2], "b.safetensors": names[len(names) // 2:]}
    for shard, keys in halves.items():
        save_file({key: tensors[key].contiguous() for key in keys}, tmp_path / shard)
    weight_map = {key: shard for shard, keys in halves.items() for key in keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **BERT}))
    reloaded = load_checkpoint(tmp_path).model.state_dict()
    assert all(torch.equal(reloaded[key], tensors[key]) for key in names)


def test_random_model_is_seeded_and_has_no_tokenizer():
    first = random_model({"model_type": "mobilebert", **MOBILEBERT}, "tiny")
    again = random_model({"model_type": "mobilebert", **MOBILEBERT}, "tiny")
    assert first.tokenizer is None and first.path is None and first.family == "mobilebert"
    key = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(first.model.state_dict()[key], again.model.state_dict()[key])


# ---- errors -----------------------------------------------------------------------------

def _bert_folder_with(tmp_path, tensors, config=None):
    (tmp_path / "config.json").write_text(json.dumps(config or {"model_type": "bert", **BERT}))
    save_file(tensors, tmp_path / "model.safetensors")
    return tmp_path


def _bert_tensors():
    return {key: value.contiguous()
            for key, value in random_model({"model_type": "bert", **BERT}, "x").model.state_dict().items()}


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match=r"nowhere: checkpoint folder not found .*config.json"):
        load_checkpoint(tmp_path / "nowhere")


def test_missing_and_invalid_config(tmp_path):
    with pytest.raises(UserError, match=r"config.json: missing"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match=r"config.json: not valid JSON"):
        load_checkpoint(tmp_path)


def test_unsupported_model_type_lists_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UserError, match=r"model_type: expected one of gpt2, bert, mobilebert, got 'llama'"):
        load_checkpoint(tmp_path)


def test_no_weight_file_lists_what_was_looked_for(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **BERT}))
    with pytest.raises(UserError, match=r"no weights; looked for model.safetensors, "
                                        r"model.safetensors.index.json, pytorch_model.bin"):
        load_checkpoint(tmp_path)


def test_missing_tensor_is_named(tmp_path):
    tensors = _bert_tensors()
    del tensors["encoder.layer.1.output.dense.weight"]
    with pytest.raises(UserError, match=r"model.safetensors: 1 tensor\(s\) missing for this "
                                        r"config.json: encoder.layer.1.output.dense.weight \(16, 24\)"):
        load_checkpoint(_bert_folder_with(tmp_path, tensors))


def test_unexpected_tensor_is_named(tmp_path):
    tensors = {**_bert_tensors(), "encoder.layer.2.output.dense.weight": torch.zeros(16, 24)}
    with pytest.raises(UserError, match=r"1 unexpected tensor\(s\) .*encoder.layer.2.output.dense.weight"):
        load_checkpoint(_bert_folder_with(tmp_path, tensors))


def test_shape_mismatch_names_both_shapes(tmp_path):
    config = {"model_type": "bert", **BERT, "intermediate_size": 32}
    # 2 layers x (intermediate weight, intermediate bias, output weight) mismatch; 3 are named
    with pytest.raises(UserError, match=r"6 tensor shape\(s\) differ from config.json: "
                                        r"encoder.layer.0.intermediate.dense.weight \(24, 16\) "
                                        r"\(config.json expects \(32, 16\)\), .*, \.\.\.$"):
        load_checkpoint(_bert_folder_with(tmp_path, _bert_tensors(), config))


def test_unreadable_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **BERT}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"this is not a checkpoint")
    with pytest.raises(UserError, match=r"pytorch_model.bin: cannot read weights"):
        load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(UserError, match=r"model.safetensors: cannot read weights"):
        load_checkpoint(tmp_path)


def test_gamma_beta_layer_norm_names_are_accepted(tmp_path):
    tensors = _bert_tensors()
    renamed = {key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
               for key, value in tensors.items()}
    loaded = load_checkpoint(_bert_folder_with(tmp_path, renamed))
    assert torch.equal(loaded.model.state_dict()["embeddings.LayerNorm.weight"],
                       tensors["embeddings.LayerNorm.weight"])
