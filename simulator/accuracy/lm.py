"""Language-model evaluation: perplexity, KL to FP and top-1 agreement on held-out text.

The text is the held-out split of the `gpt2-pydoc` corpus (`workloads.gpt2.corpus`),
tokenised with the model's own tokenizer, so any GPT-2 checkpoint can be scored
offline. Metrics are accumulated as per-token sums over batches and divided once at
the end, so batching never changes how tokens are weighted.

Several chip realisations run in one forward: the batch is repeated R times along the
leading dim and realisation k reads slice k (the AnalogLinear convention).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from simulator.accuracy.metrics import kl_divergence, perplexity, top1_agreement
from simulator.errors import UserError
from workloads.gpt2.corpus import eval_documents, token_stream, warn_if_eval_text_changed, windows

EVAL_WINDOW_TOKENS = 256  # context per window, capped by the model's n_positions
TOKENS_PER_FORWARD = 4096  # bounds the (R * b, T, vocab) logits (and float64 metric copies)
LM_METRICS = ("perplexity", "kl", "top1")
# The metric's value for the FP model against itself (perplexity is measured instead).
_SELF_REFERENCE_VALUE = {"kl": 0.0, "top1": 1.0}


@dataclass(frozen=True)
class LMEvalSet:
    """Held-out windows: inputs and next-token targets, (windows, T) int64 each."""

    inputs: np.ndarray
    targets: np.ndarray


@dataclass(frozen=True)
class LMScores:
    """FP value, values per (drift time, realisation), and how many tokens were scored."""

    fp: float
    values: np.ndarray  # (len(times_s), replicas)
    tokens: int


def lm_eval_set(loaded_model, max_tokens: int | None = None) -> LMEvalSet:
    """Tokenise the held-out text into windows; `max_tokens` keeps a prefix (>= 1 window)."""
    if loaded_model.tokenizer is None:
        raise UserError(f"{loaded_model.path or loaded_model.name}: no tokenizer (tokenizer.json, "
                        "or vocab.json + merges.txt); perplexity needs one to read the eval text")
    window = min(EVAL_WINDOW_TOKENS, loaded_model.model.config.n_positions)
    documents = eval_documents()
    provenance = loaded_model.config.get("aimcsim_corpus") or {}  # {} for foreign checkpoints
    warn_if_eval_text_changed(provenance.get("eval_sha256"), provenance.get("python"), documents)
    stream = token_stream(loaded_model.tokenizer, documents)
    max_windows = None if max_tokens is None else max(1, max_tokens // window)
    return LMEvalSet(*windows(stream, window, max_windows=max_windows))


def _batches(eval_set: LMEvalSet, replicas: int, max_batches: int | None):
    """(inputs, targets) tensors, sized so R repeats of a batch fit one forward."""
    window = eval_set.inputs.shape[1]
    batch_windows = max(1, TOKENS_PER_FORWARD // (replicas * window))
    starts = range(0, len(eval_set.inputs), batch_windows)
    if max_batches is not None:
        starts = starts[:max_batches]
    return [(torch.from_numpy(eval_set.inputs[first:first + batch_windows]),
             torch.from_numpy(eval_set.targets[first:first + batch_windows])) for first in starts]


def forward_count(eval_set: LMEvalSet, replicas: int, times: int, max_batches: int | None = None) -> int:
    """Analog forwards `evaluate_lm` runs: one per (drift time, eval batch)."""
    return times * len(_batches(eval_set, replicas, max_batches))


def _metric_sum(metric: str, fp_logits, logits, targets) -> float:
    """The metric's per-token mean on one batch, times its tokens, so batches add up."""
    tokens = targets.numel()
    if metric == "perplexity":
        return tokens * math.log(perplexity(logits, targets))
    if metric == "kl":
        return tokens * kl_divergence(fp_logits, logits)
    return tokens * top1_agreement(fp_logits, logits)


def _finish(metric: str, total: np.ndarray | float, tokens: int):
    mean_per_token = np.asarray(total) / tokens
    return np.exp(mean_per_token) if metric == "perplexity" else mean_per_token


@torch.no_grad()
def evaluate_lm(fp_model: torch.nn.Module, analog_model: torch.nn.Module | None,
                set_time: Callable[[torch.nn.Module, float], None], eval_set: LMEvalSet,
                times_s: list[float], replicas: int, metric: str = "perplexity",
                max_batches: int | None = None,
                progress: Callable[[int, int], None] | None = None, batch_replicas: int | None = None,
                fp_value: float | None = None) -> LMScores:
    """Score the FP model once, then every (drift time, realisation) of the analog copy.

    Times are the outer loop because moving the analog copy to a new time is costly.
    KL and top-1 need the FP logits of each batch: they are recomputed per time rather
    than held for the whole split (tokens x vocab floats); the FP forward is a small
    fraction of the R-fold analog one. `analog_model` None: every realisation equals FP.
    `progress(done, total)` after each analog (time, batch) forward. `batch_replicas`: the
    realisations the batches are sized for (default `replicas`; a group of a larger seed
    set passes the whole set's count, so each seed sees the same forwards); `fp_value`: the
    FP score if already known (not recomputed).
    """
    batches = _batches(eval_set, batch_replicas or replicas, max_batches)
    tokens = sum(targets.numel() for _, targets in batches)
    if fp_value is None:
        fp_value = (float(_finish(metric, sum(_metric_sum(metric, None, fp_model(inputs), targets)
                                              for inputs, targets in batches), tokens))
                    if metric == "perplexity" else _SELF_REFERENCE_VALUE[metric])
    if analog_model is None:
        return LMScores(fp_value, np.full((len(times_s), replicas), fp_value), tokens)
    totals = np.zeros((len(times_s), replicas))
    steps = len(times_s) * len(batches)
    for time_index, t_s in enumerate(times_s):
        set_time(analog_model, t_s)
        for batch_index, (inputs, targets) in enumerate(batches):
            fp_logits = None if metric == "perplexity" else fp_model(inputs)
            logits = analog_model(inputs.repeat(replicas, 1))
            logits = logits.view(replicas, *inputs.shape, logits.shape[-1])
            totals[time_index] += [_metric_sum(metric, fp_logits, logits[k], targets)
                                   for k in range(replicas)]
            if progress:
                progress(time_index * len(batches) + batch_index + 1, steps)
    return LMScores(fp_value, _finish(metric, totals, tokens), tokens)
