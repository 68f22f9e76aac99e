"""Layers more than one architecture uses: global average pooling and stochastic depth."""

import torch
from torch import nn


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C), the mean over space.

    Not ``F.adaptive_avg_pool2d``: its CUDA backward has no deterministic implementation, so
    ``torch.use_deterministic_algorithms`` would refuse it.
    """
    return x.mean(dim=(2, 3))


class GlobalAvgPool(nn.Module):
    """``global_avg_pool`` as a module, for models written as an ``nn.Sequential``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_avg_pool(x)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al. 2016), per sample: zero the whole residual branch of a
    sample with probability p and scale the survivors by 1 / (1 - p) (torchvision's "row" mode)."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device) < keep
    return x * mask.to(x.dtype) / keep
