"""Training losses against hand computations: cross-entropy (label smoothing) and LogitNorm."""

import math

import pytest
import torch

from l2ood.losses import build_loss, logitnorm_loss


def test_logitnorm_by_hand():
    # logits (3, 4) have norm 5; with temperature 0.5 the CE sees (3, 4) / 2.5 = (1.2, 1.6).
    # Target 1: -log(e^1.6 / (e^1.2 + e^1.6)) = log(1 + e^-0.4).
    loss = build_loss("logitnorm", temperature=0.5)
    got = loss(torch.tensor([[3.0, 4.0]]), torch.tensor([1]))
    assert got.item() == pytest.approx(math.log(1 + math.exp(-0.4)), rel=1e-6)
    # Target 0 on the same image: log(1 + e^0.4); the batch loss is the mean of the two.
    two = loss(torch.tensor([[3.0, 4.0], [3.0, 4.0]]), torch.tensor([1, 0]))
    expected = (math.log(1 + math.exp(-0.4)) + math.log(1 + math.exp(0.4))) / 2
    assert two.item() == pytest.approx(expected, rel=1e-6)


def test_logitnorm_paper_temperature_by_hand():
    # Wei et al. 2022 use temperature 0.04 on CIFAR-10: logits (0, 7, 0) have norm 7, so the
    # CE sees (0, 7, 0) / (7 * 0.04) = (0, 25, 0). Target 0: log(2 + e^25) - 0.
    got = logitnorm_loss(torch.tensor([[0.0, 7.0, 0.0]]), torch.tensor([0]), temperature=0.04)
    assert got.item() == pytest.approx(math.log(2 + math.exp(25.0)), rel=1e-6)


def test_logitnorm_ignores_logit_scale_per_image():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 10), torch.randint(0, 10, (6,))
    scale = torch.rand(6, 1) * 10 + 0.1  # a different positive scale per image
    loss = build_loss("logitnorm", temperature=0.04)
    torch.testing.assert_close(loss(logits * scale, targets), loss(logits, targets))


def test_logitnorm_accepts_soft_targets():
    # After mixup the target is a probability vector: the loss is the mix of the two hard losses.
    loss = build_loss("logitnorm", temperature=0.5)
    logits = torch.tensor([[3.0, 4.0]])
    soft = loss(logits, torch.tensor([[0.25, 0.75]]))
    hard = 0.25 * loss(logits, torch.tensor([0])) + 0.75 * loss(logits, torch.tensor([1]))
    assert soft.item() == pytest.approx(hard.item(), rel=1e-6)


def test_cross_entropy_with_label_smoothing_by_hand():
    # logits (0, ln 3): softmax = (1/4, 3/4). Smoothing 0.1 over 2 classes: target (0.05, 0.95).
    loss = build_loss("ce", label_smoothing=0.1)
    got = loss(torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([1]))
    expected = -(0.05 * math.log(0.25) + 0.95 * math.log(0.75))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    plain = build_loss("ce")(torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([1]))
    assert plain.item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_build_loss_errors_name_the_fix():
    with pytest.raises(ValueError, match="temperature"):
        build_loss("logitnorm")
    with pytest.raises(ValueError, match="temperature"):
        build_loss("logitnorm", temperature=0.0)
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal")
