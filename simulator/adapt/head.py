"""The `source` classification head: which domain (pydoc topics or stdlib docstrings) a
sentence comes from, a linear layer on the FP encoder's sentence embedding.

Trained on the FP model only (the analog model is then scored with the same head), fully
determined by the seed, so evaluation can rebuild it instead of storing it.
"""
from __future__ import annotations

import torch
from torch import nn

from simulator.adapt import data

HEAD_SENTENCES_PER_DOMAIN = 256
HEAD_STEPS = 300


@torch.no_grad()
def sentence_embeddings(model: nn.Module, loaded, sentences, batch: int = 64) -> torch.Tensor:
    from workloads.bert.model import sentence_embedding
    parts = []
    for start in range(0, len(sentences), batch):
        inputs = data.encode_sentences(loaded, sentences[start:start + batch])
        parts.append(sentence_embedding(model(**inputs), inputs["attention_mask"]))
    return torch.cat(parts)


def train_source_head(loaded, seed: int = 0) -> nn.Linear:
    sentences, labels = data.task_sentences("train")
    per_domain = len(sentences) // len(data.DOMAINS)
    rng = torch.Generator().manual_seed(seed)
    picked = torch.cat([d * per_domain + torch.randperm(per_domain, generator=rng)[:HEAD_SENTENCES_PER_DOMAIN]
                        for d in range(len(data.DOMAINS))])
    features = sentence_embeddings(loaded.model, loaded, [sentences[i] for i in picked.tolist()])
    targets = labels[picked]
    head = nn.Linear(features.shape[1], len(data.DOMAINS))
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01, generator=rng)
        head.bias.zero_()
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(HEAD_STEPS):
        optimizer.zero_grad()
        nn.functional.cross_entropy(head(features), targets).backward()
        optimizer.step()
    return head.eval().requires_grad_(False)
