"""Augmentation as pure batched tensor functions ``f(batch, generator) -> batch``.

The whole uint8 training set lives on the device; each step indexes a batch and augments it
there, so no worker process, PIL image or host-to-device copy sits in the loop (torchvision's
DataLoader pipeline manages about 2.5k images/s per CPU core; a ResNet18 on an H100 eats
50-90k). Images are (B, C, H, W) uint8 until ``normalize``.

The paper's recipe exactly: zero padding 4 then a random 32x32 crop, and an independent
horizontal flip per image (no reflect padding, no alternating flips).
"""

import math

import torch
import torch.nn.functional as F

from .engine import RANDOM_RESIZED_CROP_DEFAULTS, recipe_value


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to H x W at a random offset per image."""
    if padding == 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)  # zeros, as torchvision's RandomCrop(padding=4) default
    dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W) view, no copy
    return windows[torch.arange(b, device=x.device), :, dy, dx]  # one gather: 3x faster than 4-index


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image horizontally with probability ``p``, independently."""
    b = x.shape[0]
    flip = torch.rand(b, device=x.device, generator=generator) < p
    both = torch.cat([x, x.flip(3)])  # pick each image from the plain or flipped half: 4x faster than where
    return both.index_select(0, torch.arange(b, device=x.device) + b * flip.long())


def crop_boxes(b: int, generator: torch.Generator, scale, ratio, device) -> tuple[torch.Tensor, ...]:
    """``b`` random crop boxes (width, height, centre x, centre y) in ``affine_grid``'s [-1, 1]
    coordinates: area fraction uniform in ``scale``, aspect ratio log-uniform in ``ratio``; a box
    wider or taller than the image is clipped to it (timm retries 10 times, then falls back to a
    centre crop), its centre uniform over the positions where it fits."""
    area = torch.empty(b, device=device).uniform_(scale[0], scale[1], generator=generator)
    logr = torch.empty(b, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    cw = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)  # crop size as a fraction of the image
    ch = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
    cx = (torch.rand(b, device=device, generator=generator) * 2 - 1) * (1 - cw)  # centre in [-1, 1] coordinates
    cy = (torch.rand(b, device=device, generator=generator) * 2 - 1) * (1 - ch)
    return cw, ch, cx, cy


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale=RANDOM_RESIZED_CROP_DEFAULTS["scale"],
    ratio=RANDOM_RESIZED_CROP_DEFAULTS["ratio"],
) -> torch.Tensor:
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio`` (log-uniform) and
    resize it back to H x W; per image, bilinear or bicubic at random (timm's
    ``train_interpolation: random``, as the CCT recipe). Boxes: ``crop_boxes``.

    Fixed-shape tensor ops only, so no step waits for the host (the CCT recipe's step can be
    queued, or captured in a CUDA graph, whole): both interpolations resample the whole batch
    and ``torch.where`` keeps each image's own, instead of resampling the two subsets picked by
    a boolean mask (whose size the host must read). Twice the resampling work, a few
    microseconds per batch on a GPU; every image's output is the one the masked version gave.
    """
    b, _, h, w = x.shape
    dev = x.device
    cw, ch, cx, cy = crop_boxes(b, generator, scale, ratio, dev)
    zero = torch.zeros_like(cw)
    theta = torch.stack([torch.stack([cw, zero, cx], 1), torch.stack([zero, ch, cy], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, (b, x.shape[1], h, w), align_corners=False)
    bicubic = torch.rand(b, device=dev, generator=generator) < 0.5
    xf = x.float()
    out = torch.where(
        bicubic.view(b, 1, 1, 1),
        F.grid_sample(xf, grid, mode="bicubic", padding_mode="border", align_corners=False),
        F.grid_sample(xf, grid, mode="bilinear", padding_mode="border", align_corners=False),
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, (x / 255 - mean) / std per channel; mean/std shaped (1, C, 1, 1)."""
    return x.float().div_(255.0).sub_(mean).div_(std)  # in place: one float buffer, not three


def augment(x: torch.Tensor, recipe: dict, generator: torch.Generator, fill=(128, 128, 128)) -> torch.Tensor:
    """The recipe's image augmentations, in timm's order: crop (``random_resized_crop`` or
    ``crop_padding``), flip (``flip``), RandAugment (``randaugment``; ``fill``: the colour of
    pixels that rotations and shifts uncover, timm's mean colour). Mixup/cutmix act on
    the targets too, so the training loop applies them (``l2ood.mix``)."""
    rrc = recipe_value(recipe, "random_resized_crop")
    if rrc is not None:
        x = random_resized_crop(x, generator, **{**RANDOM_RESIZED_CROP_DEFAULTS, **rrc})
    else:
        x = random_crop(x, int(recipe_value(recipe, "crop_padding")), generator)
    if recipe_value(recipe, "flip"):
        x = random_flip(x, generator)
    if recipe_value(recipe, "randaugment"):
        from .randaugment import rand_augment

        x = rand_augment(x, generator, fill=fill, **recipe["randaugment"])
    return x
