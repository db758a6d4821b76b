"""Published model shapes by name, as Hugging Face `config.json` dicts.

These let the timing side build graphs of models whose weights are not on the machine
(`gpt2-xl`, `mobilebert`); accuracy runs need a real checkpoint folder instead. Each
dict carries only the keys the graph builders read, spelled as HF spells them, so a
checkpoint's own `config.json` can be used in their place.
"""
from __future__ import annotations

GPT2_BASE = {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_inner": None}


def _gpt2(n_layer: int, n_embd: int, n_head: int) -> dict:
    return {**GPT2_BASE, "n_layer": n_layer, "n_embd": n_embd, "n_head": n_head}


# google/mobilebert-uncased (Sun et al. 2020, "MobileBERT"): 24 bottlenecked layers,
# 4 stacked FFNs, trigram embedding 3 x 128 -> 512, NoNorm, ReLU.
MOBILEBERT_UNCASED = {
    "model_type": "mobilebert", "vocab_size": 30522, "hidden_size": 512, "embedding_size": 128,
    "trigram_input": True, "num_hidden_layers": 24, "num_attention_heads": 4,
    "intermediate_size": 512, "intra_bottleneck_size": 128, "use_bottleneck": True,
    "use_bottleneck_attention": False, "key_query_shared_bottleneck": True,
    "num_feedforward_networks": 4, "normalization_type": "no_norm", "hidden_act": "relu",
    "max_position_embeddings": 512, "type_vocab_size": 2,
}

# bert-base-uncased (Devlin et al. 2019).
BERT_BASE = {
    "model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "max_position_embeddings": 512, "type_vocab_size": 2,
}

# Name -> HF config dict. Sizes of GPT-2 from Radford et al. 2019 (Table 2).
NAMED_CONFIGS: dict[str, dict] = {
    "gpt2": _gpt2(12, 768, 12),
    "gpt2-medium": _gpt2(24, 1024, 16),
    "gpt2-large": _gpt2(36, 1280, 20),
    "gpt2-xl": _gpt2(48, 1600, 25),
    "mobilebert": MOBILEBERT_UNCASED,
    "bert-base": BERT_BASE,
}
