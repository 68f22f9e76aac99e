"""Augmentation as pure batched tensor functions ``f(batch, generator) -> batch``.

The whole uint8 training set lives on the device; each step indexes a batch and augments it
there, so no worker process, PIL image or host-to-device copy sits in the loop (torchvision's
DataLoader pipeline manages about 2.5k images/s per CPU core; a ResNet18 on an H100 eats
50-90k). Images are (B, C, H, W) uint8 until ``normalize``.

The paper's recipe exactly: zero padding 4 then a random 32x32 crop, and an independent
horizontal flip per image (no reflect padding, no alternating flips).
"""

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to H x W at a random offset per image."""
    if padding == 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)  # zeros, as torchvision's RandomCrop(padding=4) default
    dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    bidx = torch.arange(b, device=x.device)[:, None, None, None]
    cidx = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bidx, cidx, rows, cols]  # one gather for the whole batch


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image horizontally with probability ``p``, independently."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, (x / 255 - mean) / std per channel; mean/std shaped (1, C, 1, 1)."""
    return (x.float() / 255.0 - mean) / std


def augment(x: torch.Tensor, recipe: dict, generator: torch.Generator) -> torch.Tensor:
    """The recipe's augmentations, in order: crop (``crop_padding``), flip (``flip``)."""
    x = random_crop(x, int(recipe.get("crop_padding", 0)), generator)
    if recipe.get("flip", False):
        x = random_flip(x, generator)
    return x
