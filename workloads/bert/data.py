"""Evaluation inputs for BERT-family encoders: real English sentences, tokenised and padded.

The sentences come from `pydoc_data.topics` (the language-reference text every CPython
install carries), read at run time, so the eval set needs no download and no data file.
A fixed rule picks them, so the same Python version always gives the same sentences.
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import torch
from pydoc_data.topics import topics
from tokenizers import Tokenizer

from workloads.checkpoint import LoadedModel

EVAL_SENTENCE_COUNT = 64
MIN_WORDS, MAX_WORDS = 8, 60
ENCODER_FAMILIES = ("bert", "mobilebert")
# Sentence boundary: end punctuation, whitespace, then a capital letter.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# Code, grammar rules, markup and footnote marks: not prose.
_NOT_PROSE = re.compile(r"[\\{}<>|=_*`]|::|\(\)|\.\.\.|\[\d+\]")


def _prose_paragraphs(text: str):
    """Paragraphs that are running text: not indented (code, grammar) and not headings."""
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.split("\n")
        if not lines[0] or lines[0][0].isspace():
            continue
        if len(lines) > 1 and lines[1].strip() and set(lines[1].strip()) <= set("*=-"):
            continue  # a heading underlined with *** or ===
        yield " ".join(line.strip() for line in lines)


def _is_eval_sentence(sentence: str) -> bool:
    return (MIN_WORDS <= len(sentence.split()) <= MAX_WORDS and sentence[0].isupper()
            and sentence.endswith(".")
            and not _NOT_PROSE.search(sentence))


@lru_cache(maxsize=1)
def eval_sentences() -> tuple[str, ...]:
    """EVAL_SENTENCE_COUNT prose sentences of 8-60 words, spread evenly over all pydoc topics."""
    candidates = [sentence for name in sorted(topics) for paragraph in _prose_paragraphs(topics[name])
                  for sentence in _SENTENCE_END.split(paragraph) if _is_eval_sentence(sentence)]
    candidates = list(dict.fromkeys(candidates))  # drop repeats, keep order
    if len(candidates) < EVAL_SENTENCE_COUNT:
        raise RuntimeError(f"pydoc_data.topics yields only {len(candidates)} eval sentences")
    return tuple(candidates[i * len(candidates) // EVAL_SENTENCE_COUNT]
                 for i in range(EVAL_SENTENCE_COUNT))


def eval_batch(loaded: LoadedModel, max_sentences: int | None = None,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask`, `token_type_ids` (long, batch x longest) for the eval set.

    With a tokenizer: the eval sentences, truncated to the model's positions, padded on
    the right with `pad_token_id`. Without one (weights from a config alone): random token
    ids drawn with `seed`, one row per sentence with that sentence's word count + 2 tokens,
    so batch shapes resemble the real ones. `max_sentences` keeps the first sentences.
    """
    if loaded.family not in ENCODER_FAMILIES:
        raise ValueError(f"eval_batch is for {ENCODER_FAMILIES} encoders, not {loaded.family!r}")
    if max_sentences is not None and max_sentences < 1:
        raise ValueError(f"max_sentences must be at least 1, got {max_sentences}")
    sentences = eval_sentences()[:max_sentences]
    max_tokens = int(loaded.config.get("max_position_embeddings", 512))
    if loaded.tokenizer is None:
        rows = _random_rows(sentences, int(loaded.config["vocab_size"]), max_tokens, seed)
    else:
        rows = _tokenized_rows(loaded, sentences, max_tokens)
    return _pad(rows, pad_id=int(loaded.config.get("pad_token_id") or 0))


def _tokenized_rows(loaded: LoadedModel, sentences, max_tokens: int) -> list[list[int]]:
    tokenizer = Tokenizer.from_str(loaded.tokenizer.to_str())  # a copy to configure
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return [encoding.ids for encoding in tokenizer.encode_batch(list(sentences))]


def _random_rows(sentences, vocab_size: int, max_tokens: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    lengths = [min(len(sentence.split()) + 2, max_tokens) for sentence in sentences]
    return [rng.integers(0, vocab_size, size=length).tolist() for length in lengths]


def _pad(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    longest = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, :len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[index, :len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "token_type_ids": torch.zeros_like(input_ids)}
