"""Training batches and text domains for adaptation, all from text every CPython carries offline.

* LMs (`gpt2`): windows of the training split of the `gpt2-pydoc` corpus (the pydoc topics
  not held out; the held-out topics stay for evaluation).
* Encoders: prose sentences of two domains, `pydoc` (language-reference topics) and
  `docstrings` (standard-library docstrings), each split by a stable hash into training
  and evaluation sentences (the `pydoc` evaluation set is the one `aimcsim accuracy`
  scores). The classification task `source` labels a sentence by its domain (0 pydoc,
  1 docstrings).

Batch k of a run is drawn from a generator seeded by (seed, k), so a resumed run sees
the same batches as an uninterrupted one.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from simulator.errors import UserError
from workloads.bert.data import _SENTENCE_END, _is_eval_sentence, _prose_paragraphs, eval_sentences
from workloads.gpt2.corpus import pydoc_topics, split_topics, stdlib_docstring_documents, token_stream, windows

DOMAINS = ("pydoc", "docstrings")
TASKS = ("source",)
EVAL_SENTENCES_PER_DOMAIN = 64
_HOLDOUT_MODULUS = 5


def batch_generator(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step, 0xADA])


# ---------------------------------------------------------------- language models

@lru_cache(maxsize=4)
def _lm_windows(tokenizer_json: str, seq: int) -> np.ndarray:
    from tokenizers import Tokenizer
    train_topics, _ = split_topics(pydoc_topics())
    stream = token_stream(Tokenizer.from_str(tokenizer_json), train_topics)
    inputs, _ = windows(stream, seq)
    return inputs


def lm_batch(loaded, seq: int, batch: int, seed: int, step: int) -> torch.Tensor:
    """`batch` training windows of `seq` tokens (int64), chosen by (seed, step)."""
    if loaded.tokenizer is None:
        raise UserError(f"{loaded.name}: no tokenizer; LM adaptation trains on the gpt2-pydoc corpus text")
    seq = min(seq, loaded.model.config.n_positions)
    pool = _lm_windows(loaded.tokenizer.to_str(), seq)
    rows = batch_generator(seed, step).integers(0, len(pool), size=batch)
    return torch.from_numpy(pool[rows])


# ---------------------------------------------------------------- encoders

def _sentences(texts) -> list[str]:
    found = [sentence for text in texts for paragraph in _prose_paragraphs(text)
             for sentence in _SENTENCE_END.split(paragraph) if _is_eval_sentence(sentence)]
    return list(dict.fromkeys(found))


def _is_held_out(sentence: str) -> bool:
    return zlib.crc32(sentence.encode("utf-8")) % _HOLDOUT_MODULUS == 0


@dataclass(frozen=True)
class DomainText:
    train: tuple[str, ...]
    eval: tuple[str, ...]


@lru_cache(maxsize=2)
def domain_text(domain: str) -> DomainText:
    """Training and evaluation sentences of a domain (disjoint)."""
    if domain == "pydoc":
        held_out = eval_sentences()
        train = tuple(s for s in _sentences(text for _, text in sorted(_topics().items())) if s not in set(held_out))
        return DomainText(train, held_out)
    if domain == "docstrings":
        sentences = _sentences(doc.text for doc in stdlib_docstring_documents())
        held = [s for s in sentences if _is_held_out(s)]
        picked = tuple(held[i * len(held) // EVAL_SENTENCES_PER_DOMAIN] for i in range(EVAL_SENTENCES_PER_DOMAIN))
        return DomainText(tuple(s for s in sentences if not _is_held_out(s)), picked)
    raise UserError(f"--domain: expected one of {', '.join(DOMAINS)}, got {domain!r}")


def _topics() -> dict[str, str]:
    from pydoc_data.topics import topics
    return topics


def encode_sentences(loaded, sentences) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask / token_type_ids, right-padded, truncated to 128 tokens."""
    from tokenizers import Tokenizer
    if loaded.tokenizer is None:
        raise UserError(f"{loaded.name}: no tokenizer; encoder adaptation trains on English sentences")
    tokenizer = Tokenizer.from_str(loaded.tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=min(128, int(loaded.config.get("max_position_embeddings", 512))))
    rows = [encoding.ids for encoding in tokenizer.encode_batch(list(sentences))]
    longest = max(len(row) for row in rows)
    pad = int(loaded.config.get("pad_token_id") or 0)
    input_ids = torch.full((len(rows), longest), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, :len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[index, :len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": torch.zeros_like(input_ids)}


def encoder_batch(loaded, domain: str, batch: int, seed: int, step: int) -> dict[str, torch.Tensor]:
    pool = domain_text(domain).train
    rows = batch_generator(seed, step).integers(0, len(pool), size=batch)
    return encode_sentences(loaded, [pool[i] for i in rows])


def task_sentences(split: str) -> tuple[list[str], torch.Tensor]:
    """The `source` task: sentences of both domains and their labels (0 pydoc, 1 docstrings)."""
    texts = [getattr(domain_text(domain), split) for domain in DOMAINS]
    count = min(len(t) for t in texts)
    sentences = [s for t in texts for s in t[:count]]
    labels = torch.tensor([label for label in range(len(DOMAINS)) for _ in range(count)], dtype=torch.long)
    return sentences, labels


def task_batch(loaded, batch: int, seed: int, step: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    sentences, labels = task_sentences("train")
    rows = batch_generator(seed, step).integers(0, len(sentences), size=batch)
    return encode_sentences(loaded, [sentences[i] for i in rows]), labels[torch.from_numpy(rows)]
