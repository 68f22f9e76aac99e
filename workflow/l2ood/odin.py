"""ODIN (Liang, Li & Srikant, ICLR 2018) in the features job: it needs the network and the images.

For each test image x (the model's normalized input) and each temperature T of the grid:

    x' = x - eps * sign(-grad_x log S_yhat(x; T)) / std_c     (yhat = argmax of the logits of x)
    score = log max_c S_c(x'; T)

S(.; T) is the softmax of logits / T. Dividing the gradient sign by the per-channel std of the
input normalization makes eps a step on the [0, 1] pixel scale, as the original code
(facebookresearch/odin) and OpenOOD v1.5's ``odin_postprocessor`` do; as both, a zero gradient
counts as positive (``torch.ge(grad, 0)``), where pytorch-ood's ``sign`` gives 0. The stored score
is the log of the maximum softmax probability, a strictly increasing function of it (same AUROC and
FPR95), computed in float64 from the float32 logits so that T = 1000 (probabilities all close to
1/C) keeps its digits. Everything runs in float32 without TF32 or autocast: the gradient's sign
decides the step.

Which logits (docs/detectors.md): ``raw`` is W z + b, for both heads (the detectors' main variant;
for an L2 model the normalization turned off at test time), ``normalized`` is W z/||z|| + b, the L2
model's own head (L2 runs only). Each variant is perturbed along, and scored by, its own logits.

The grid (``TEMPERATURES`` x ``EPSILONS``, l2ood.detectors.network) is stored for every test set,
so choosing a pair (config ``detectors: params: odin:``) reruns only the CPU detectors job.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .detectors.network import EPSILONS, TEMPERATURES
from .inference import _check_image_size, _inference_setup, model_input, to_device_images

#: images per forward/backward pass
BATCH = 256


def odin_grid(logits_fn, x: torch.Tensor, std: torch.Tensor, temperatures=TEMPERATURES, epsilons=EPSILONS):
    """(len(temperatures), len(epsilons), B) float64 log max softmax of the perturbed inputs.

    ``logits_fn``: normalized input (B, C, H, W) -> logits (B, classes); ``x``: the normalized
    input; ``std``: the per-channel std of the normalization, shape (1, C, 1, 1) or (C,).
    """
    std = std.reshape(1, -1, *([1] * (x.ndim - 2))).to(x)
    out = torch.empty(len(temperatures), len(epsilons), len(x), dtype=torch.float64)
    x = x.detach()
    for i, t in enumerate(temperatures):
        with torch.enable_grad():
            xg = x.clone().requires_grad_()
            logits = logits_fn(xg).float()
            # cross-entropy with the predicted class = -log S_yhat(x; T)
            loss = F.cross_entropy(logits / t, logits.detach().argmax(dim=1), reduction="sum")
            (grad,) = torch.autograd.grad(loss, xg)
        step = (torch.ge(grad, 0).to(x.dtype) * 2 - 1) / std  # sign(grad of -log S), 0 counted +1
        for j, eps in enumerate(epsilons):
            with torch.no_grad():
                scored = logits if eps == 0 else logits_fn(x - eps * step)
            out[i, j] = torch.log_softmax(scored.detach().double() / t, dim=1).max(dim=1).values.cpu()
    return out


def odin_sets(model_path, sets: dict, engine: dict | None = None) -> dict:
    """``{name: images}`` (uint8 N x H x W x 3) -> ``{name: {"raw": grid, ["normalized": grid]}}``,
    each grid (len(TEMPERATURES), len(EPSILONS), N) float64, plus the grid's axes, for the npz file."""
    e, model, cfg, (mean, std) = _inference_setup(model_path, engine)
    fc = model.fc
    variants = {"raw": lambda x: fc(model.encoder(x))}
    if cfg["head"] == "l2":
        variants["normalized"] = lambda x: model(x)[0]  # the model's own head, W z/||z|| + b
    results = {}
    for name, images in sets.items():
        _check_image_size(name, images, cfg)
        grids = {v: [] for v in variants}
        for start in range(0, len(images), BATCH):
            x = model_input(
                to_device_images(images[start : start + BATCH], mean.device), mean, std, torch.contiguous_format
            )
            for v, fn in variants.items():
                grids[v].append(odin_grid(fn, x, std))
        results[name] = {
            "temperature": np.asarray(TEMPERATURES, dtype=np.float64),
            "epsilon": np.asarray(EPSILONS, dtype=np.float64),
            **{v: torch.cat(g, dim=2).numpy() for v, g in grids.items()},
        }
    return results
