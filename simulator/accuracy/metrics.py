"""Accuracy metrics comparing an analog forward with the FP reference.

Pure functions of tensors. Logit metrics take (..., vocab) logits where every leading
index is one position; an optional `mask` (same shape as the leading dims, 1 = count)
leaves out padding. Sums run in float64 so a metric does not depend on the batch order.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _flatten_positions(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(..., vocab) -> (positions, vocab) in float64, keeping only masked-in positions."""
    flat = torch.as_tensor(logits).to(torch.float64).reshape(-1, logits.shape[-1])
    if mask is None:
        return flat
    return flat[torch.as_tensor(mask).reshape(-1).bool()]


def perplexity(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """exp(mean negative log-likelihood of `targets`), in the natural base.

    `logits[..., i, :]` scores `targets[..., i]`: the caller shifts for next-token prediction.
    """
    flat_logits = _flatten_positions(logits, mask)
    flat_targets = torch.as_tensor(targets).reshape(-1)
    if mask is not None:
        flat_targets = flat_targets[torch.as_tensor(mask).reshape(-1).bool()]
    return math.exp(F.cross_entropy(flat_logits, flat_targets.long()).item())


def kl_divergence(p_logits_ref: torch.Tensor, q_logits: torch.Tensor,
                  mask: torch.Tensor | None = None) -> float:
    """KL(ref || analog) in nats, averaged over positions: how much the analog model
    misplaces the probability mass the reference puts on each token."""
    log_p = F.log_softmax(_flatten_positions(p_logits_ref, mask), dim=-1)
    log_q = F.log_softmax(_flatten_positions(q_logits, mask), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean().item()


def top1_agreement(ref_logits: torch.Tensor, logits: torch.Tensor,
                   mask: torch.Tensor | None = None) -> float:
    """Fraction of positions whose arg-max token equals the reference's (1.0 = identical)."""
    ref_top = _flatten_positions(ref_logits, mask).argmax(dim=-1)
    top = _flatten_positions(logits, mask).argmax(dim=-1)
    return (ref_top == top).to(torch.float64).mean().item()


def embedding_cosine(ref_emb: torch.Tensor, emb: torch.Tensor) -> float:
    """Mean cosine similarity between matching rows of (n, dim) embeddings (1.0 = same direction)."""
    ref = torch.as_tensor(ref_emb).to(torch.float64).reshape(-1, ref_emb.shape[-1])
    other = torch.as_tensor(emb).to(torch.float64).reshape(-1, emb.shape[-1])
    return F.cosine_similarity(ref, other, dim=-1).mean().item()


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and spread over noise seeds: sample std (ddof=1) for n > 1, 0.0 for one value.

    ddof=1 because the seeds sample the chip-to-chip spread; one seed has no spread.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std
