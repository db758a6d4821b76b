"""Training losses: distillation to the FP model (the teacher) or a task loss.

Student outputs carry `sets` chip realisations stacked on the leading dim (slice k is
realisation k); the teacher's output is for one copy of the batch. Each loss is the sum
over slices of the per-slice mean, so every adapter set gets the gradient it would get
trained alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _slices(student: torch.Tensor, sets: int) -> torch.Tensor:
    return student.reshape(sets, -1, *student.shape[1:])


def kl_to_teacher(teacher_logits: torch.Tensor, student_logits: torch.Tensor, sets: int = 1) -> torch.Tensor:
    """sum_k mean over positions of KL(p_teacher || p_student_k), nats per token (LMs)."""
    log_p = F.log_softmax(teacher_logits.float(), dim=-1).flatten(0, -2)
    total = student_logits.new_zeros(())
    for student in _slices(student_logits, sets):
        log_q = F.log_softmax(student.float(), dim=-1).flatten(0, -2)
        total = total + F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    return total


def cosine_to_teacher(teacher_hidden: torch.Tensor, student_hidden: torch.Tensor, mask: torch.Tensor,
                      sets: int = 1) -> torch.Tensor:
    """sum_k mean over real tokens of 1 - cos(teacher, student_k) (encoders: last hidden states)."""
    keep = mask.bool()
    total = student_hidden.new_zeros(())
    for student in _slices(student_hidden, sets):
        total = total + (1.0 - F.cosine_similarity(teacher_hidden[keep], student[keep], dim=-1)).mean()
    return total


def task_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, sets: int = 1) -> torch.Tensor:
    """sum_k cross-entropy of the task head's logits on slice k."""
    return sum(F.cross_entropy(chunk, labels) for chunk in _slices(logits, sets))
