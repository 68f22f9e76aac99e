"""Training losses: cross-entropy (with optional label smoothing) and LogitNorm.

``build_loss(name=..., **options)`` returns ``f(logits, targets) -> scalar``; targets are class
indices (B,) or, after mixup/cutmix, probability vectors (B, C).
"""

import torch
import torch.nn.functional as F

LOSSES = ("ce", "logitnorm")


def logitnorm_loss(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """LogitNorm (Wei et al. 2022, Eq. 7): CE on logits / (temperature * ||logits||_2).

    The norm is per image; 1e-7 guards a zero logit vector as in the authors' code.
    """
    norms = logits.norm(p=2, dim=1, keepdim=True) + 1e-7
    return F.cross_entropy(logits / (norms * temperature), targets)


def build_loss(name: str = "ce", label_smoothing: float = 0.0, temperature: float | None = None):
    if name == "ce":
        return lambda logits, targets: F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if name == "logitnorm":
        if temperature is None or temperature <= 0:
            raise ValueError("loss 'logitnorm' needs a positive 'temperature' (the paper's CIFAR-10 value is 0.04)")
        return lambda logits, targets: logitnorm_loss(logits, targets, temperature)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
