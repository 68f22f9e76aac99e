"""Mixup / CutMix as timm's ``Mixup`` in its default per-batch mode, on the device.

The CCT CIFAR-10 recipe (SHI-Labs/Compact-Transformers, ``mixup 0.8, cutmix 1.0, mixup_prob
1.0, mixup_switch_prob 0.5, mixup_mode batch, smoothing 0.1``) through timm's
``timm/data/mixup.py``; per batch:

- with probability ``mix_prob`` mix at all (else lam = 1);
- if both alphas are positive, CutMix with probability ``switch_prob``, else Mixup;
- lam ~ Beta(alpha, alpha) of the chosen method;
- every image is mixed with its mirror in the batch, ``x.flip(0)`` (image i with image B-1-i);
- Mixup: ``round(lam * x + (1 - lam) * x.flip(0))`` (timm's FastCollateMixup rounds uint8,
  the path its prefetching loader takes);
- CutMix: a box of side ``int(H * sqrt(1 - lam))`` x ``int(W * sqrt(1 - lam))`` around a uniform
  centre, clipped to the image, is pasted from the mirror image; lam is then corrected to
  1 - box area / image area (``correct_lam``);
- targets: ``lam * onehot(y) + (1 - lam) * onehot(y.flip(0))`` with label smoothing folded in
  as ``mixup_target`` does (off = s / C, on = 1 - s + s / C), shape (B, C).

All random draws are tensors from the given ``torch.Generator`` on the batch's device (a fixed
number per call), every branch is computed and selected with ``torch.where``: no host
synchronisation, deterministic given the generator.

Label smoothing: timm folds it into the targets and trains with a soft-target cross-entropy.
Cross-entropy's ``label_smoothing`` is the same linear map of the target (t -> (1 - s) t + s/C),
so ``F.cross_entropy(logits, mix(..., label_smoothing=0)[1], label_smoothing=s)`` equals
``F.cross_entropy(logits, mix(..., label_smoothing=s)[1])``: smooth in one place, not both.
"""

import torch


def sample_beta(alpha: float, generator: torch.Generator, device) -> torch.Tensor:
    """One draw of Beta(alpha, alpha) (float64 scalar tensor) from ``generator``, as the ratio of
    two Gamma(alpha) draws (``torch.distributions`` takes no generator)."""
    a = torch.full((2,), float(alpha), dtype=torch.float64, device=device)
    g = torch._standard_gamma(a, generator=generator)
    return g[0] / (g[0] + g[1])


def cutmix_box(
    height: int, width: int, lam: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's ``rand_bbox`` + ``correct_lam``: (box mask (H, W) bool, corrected lam).

    Side ``int(size * sqrt(1 - lam))``, centre uniform over the pixels, half-sides ``side // 2``
    clipped to the image; corrected lam = 1 - box area / image area."""
    dev = lam.device
    ratio = torch.sqrt(1.0 - lam)
    cut_h, cut_w = torch.floor(height * ratio).long(), torch.floor(width * ratio).long()
    cy = torch.randint(0, height, (), device=dev, generator=generator)
    cx = torch.randint(0, width, (), device=dev, generator=generator)
    yl, yh = (cy - cut_h // 2).clamp(0, height), (cy + cut_h // 2).clamp(0, height)
    xl, xh = (cx - cut_w // 2).clamp(0, width), (cx + cut_w // 2).clamp(0, width)
    rows = torch.arange(height, device=dev)
    cols = torch.arange(width, device=dev)
    mask = ((rows >= yl) & (rows < yh))[:, None] & ((cols >= xl) & (cols < xh))[None, :]
    area = (yh - yl) * (xh - xl)
    return mask, 1.0 - area.double() / (height * width)


def sample_mix(
    height: int,
    width: int,
    generator: torch.Generator,
    device,
    mixup_alpha: float = 0.8,
    cutmix_alpha: float = 1.0,
    mix_prob: float = 1.0,
    switch_prob: float = 0.5,
) -> dict[str, torch.Tensor]:
    """The per-batch parameters, as timm's ``_params_per_batch`` then ``cutmix_bbox_and_lam``:
    ``lam`` (float64 scalar; 1 when not mixing), ``cutmix`` (bool scalar: the box is pasted),
    ``box`` (H, W bool). Always the same draws, whatever the branch taken."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        raise ValueError("mix needs mixup_alpha > 0 or cutmix_alpha > 0 (the CCT recipe: 0.8 and 1.0)")
    u = torch.rand(2, dtype=torch.float64, device=device, generator=generator)
    apply = u[0] < mix_prob
    one = torch.ones((), dtype=torch.float64, device=device)
    lam_mixup = sample_beta(mixup_alpha, generator, device) if mixup_alpha > 0 else one
    lam_cut = sample_beta(cutmix_alpha, generator, device) if cutmix_alpha > 0 else one
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = u[1] < switch_prob
    else:
        use_cutmix = torch.tensor(cutmix_alpha > 0, device=device)
    box, lam_box = cutmix_box(height, width, lam_cut, generator)
    lam = torch.where(apply, torch.where(use_cutmix, lam_box, lam_mixup), one)
    return {"lam": lam, "cutmix": apply & use_cutmix, "box": box}


def mix_images(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Mix each image with its mirror ``x.flip(0)``: paste the box (CutMix) or blend (Mixup;
    uint8 results rounded as timm's FastCollateMixup). lam = 1 and no CutMix: ``x`` unchanged."""
    other = x.flip(0)
    lam = params["lam"]
    blended = x.double() * lam + other.double() * (1.0 - lam)
    if x.dtype == torch.uint8:
        blended = blended.round()
    blended = blended.to(x.dtype)
    pasted = torch.where(params["box"], other, x)
    return torch.where(params["cutmix"], pasted, blended)


def mix_targets(
    y: torch.Tensor, num_classes: int, lam: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """timm's ``mixup_target``: lam * smooth(onehot(y)) + (1 - lam) * smooth(onehot(y.flip(0))),
    smooth(t) = (1 - s) t + s / C; float32 (B, C), each row sums to 1."""
    off = label_smoothing / num_classes
    on = 1.0 - label_smoothing + off

    def smooth_onehot(labels):
        return torch.full(
            (len(labels), num_classes), off, device=labels.device, dtype=torch.float64
        ).scatter_(1, labels.long().view(-1, 1), on)

    lam = lam.to(torch.float64)
    return (smooth_onehot(y) * lam + smooth_onehot(y.flip(0)) * (1.0 - lam)).float()


def mix(
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    num_classes: int,
    mixup_alpha: float = 0.8,
    cutmix_alpha: float = 1.0,
    mix_prob: float = 1.0,
    switch_prob: float = 0.5,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup / CutMix a batch as timm's ``Mixup(mode='batch')``: images (B, C, H, W) (uint8 or
    float) and labels (B,) -> mixed images (same dtype) and soft targets (B, num_classes) float32.

    timm asserts an even batch; here an odd one is allowed (its middle image mixes with itself),
    so the last, short batch of an epoch needs no special case."""
    params = sample_mix(
        x.shape[-2], x.shape[-1], generator, x.device, mixup_alpha, cutmix_alpha, mix_prob, switch_prob
    )
    return mix_images(x, params), mix_targets(y, num_classes, params["lam"], label_smoothing)
