"""Accuracy metrics against values computed by hand."""
import math

import pytest
import torch

from simulator.accuracy.metrics import (embedding_cosine, kl_divergence, mean_std, perplexity,
                                        top1_agreement)


def test_perplexity_of_uniform_logits_is_vocab_size():
    logits = torch.zeros(2, 3, 7)
    targets = torch.tensor([[0, 1, 2], [3, 4, 5]])
    assert perplexity(logits, targets) == pytest.approx(7.0)


def test_perplexity_by_hand_with_mask():
    # position 0: p(target) = e^2 / (e^2 + 1); position 1: p(target) = 1/2; position 2 masked out
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [0.0, 50.0]]], dtype=torch.float64)
    targets = torch.tensor([[0, 1, 0]])
    mask = torch.tensor([[1, 1, 0]])
    nll = (-math.log(math.e ** 2 / (math.e ** 2 + 1)) - math.log(0.5)) / 2
    assert perplexity(logits, targets, mask) == pytest.approx(math.exp(nll), rel=1e-12)


def test_kl_divergence_by_hand():
    # p = softmax([ln 3, 0]) = (3/4, 1/4); q = (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    ref = torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64)
    analog = torch.tensor([[0.0, 0.0]])
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl_divergence(ref, analog) == pytest.approx(expected, rel=1e-12)
    # direction matters: KL(q || p) = 1/2 ln(2/3) + 1/2 ln 2
    assert kl_divergence(analog, ref) == pytest.approx(0.5 * math.log(2 / 3) + 0.5 * math.log(2.0))


def test_kl_divergence_is_mean_over_positions_and_zero_for_equal_logits():
    ref = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0]]], dtype=torch.float64)
    analog = torch.zeros(1, 2, 2)
    one_position = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl_divergence(ref, analog) == pytest.approx(one_position / 2, rel=1e-12)
    assert kl_divergence(ref, analog, mask=torch.tensor([[1, 0]])) == pytest.approx(one_position)
    assert kl_divergence(ref, ref + 5.0) == pytest.approx(0.0, abs=1e-15)  # shift-invariant


def test_top1_agreement_counts_matching_argmax():
    ref = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 2.0, 0.0]]])
    analog = torch.tensor([[[5.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 9.0], [0.0, 3.0, 0.0]]])
    assert top1_agreement(ref, analog) == pytest.approx(0.75)
    assert top1_agreement(ref, analog, mask=torch.tensor([[1, 1, 0, 0]])) == pytest.approx(0.5)


def test_embedding_cosine_by_hand():
    ref = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    emb = torch.tensor([[3.0, 0.0], [1.0, 0.0]])  # cosines 1 and 1/sqrt(2)
    assert embedding_cosine(ref, emb) == pytest.approx((1 + 2 ** -0.5) / 2, rel=1e-12)


def test_mean_std_uses_sample_std():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert std == pytest.approx(math.sqrt(5.0 / 3.0))  # sum of squares 5 over n - 1 = 3


def test_mean_std_single_value_has_zero_spread_and_empty_is_an_error():
    assert mean_std([0.7]) == (0.7, 0.0)
    with pytest.raises(ValueError):
        mean_std([])
