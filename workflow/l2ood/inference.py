"""The engine on a device, and inference: what training's probes, inference and feature
extraction share, so that a model's features are computed alike wherever they are.

``resolve_engine`` decides the engine's "auto" options for this machine, ``engine_flags`` sets
torch's algorithm flags for a resolved engine, and ``batched_forward`` is the one batched forward
pass (eval mode, test-time preprocessing only). ``infer_sets`` gives every test image's feature
norm and logits (the infer rule), ``infer_features`` the penultimate features (the features rule).
"""

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import torch

from .engine import COMPILE_MODES, ENGINE_DEFAULTS
from .fileio import reading
from .models import build_model

def resolve_engine(engine: dict | None) -> dict:
    """``ENGINE_DEFAULTS`` updated by ``engine``, with every "auto" decided for this machine."""
    unknown = set(engine or {}) - set(ENGINE_DEFAULTS)
    if unknown:
        raise KeyError(f"unknown engine option(s) {sorted(unknown)}; known: {sorted(ENGINE_DEFAULTS)}")
    e = {**ENGINE_DEFAULTS, **(engine or {})}
    if e["device"] == "auto":
        e["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    on_cuda = torch.device(e["device"]).type == "cuda"
    for key in ("amp", "tf32", "channels_last"):
        if e[key] == "auto":
            e[key] = on_cuda
    if e["compile_mode"] not in COMPILE_MODES:
        raise ValueError(f"engine.compile_mode {e['compile_mode']!r}: choose one of {', '.join(COMPILE_MODES)}")
    return e


def memory_format(e: dict) -> torch.memory_format:
    """The layout of image batches and conv weights for a resolved engine."""
    return torch.channels_last if e["channels_last"] else torch.contiguous_format


def to_device_images(
    images: np.ndarray, device: torch.device, fmt: torch.memory_format = torch.contiguous_format
) -> torch.Tensor:
    """uint8 N x H x W x 3 (numpy) -> uint8 (N, 3, H, W) on ``device``, moved once, in layout ``fmt``.

    channels-last is the layout the arrays come in (NHWC): the tensor is a view of the moved
    array, no copy; contiguous (NCHW) is one copy.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)
    return x.contiguous(memory_format=fmt)


def model_input(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """uint8 (B, C, H, W) -> the model's float input in layout ``fmt``: ``augment.normalize``'s
    arithmetic, with the layout change folded into the one uint8 -> float conversion."""
    return x.to(torch.float32, memory_format=fmt).div_(255.0).sub_(mean).div_(std)


def norm_tensors(cfg: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(cfg["normalize"]["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg["normalize"]["std"], device=device).view(1, -1, 1, 1)
    return mean, std


@torch.no_grad()
def batched_forward(
    model, images, mean: torch.Tensor, std: torch.Tensor, batch_size: int, fmt: torch.memory_format
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(logits (B, C), features (B, d))``, float32 on the device, batch by batch.

    ``images``: uint8, either a (N, 3, H, W) tensor already on the device (the probe images) or a
    (N, H, W, 3) numpy array (a test set, moved to the device one batch at a time). ``model`` must
    be in eval mode (``eval_mode``); ``mean``/``std`` are ``norm_tensors`` on the device.
    """
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        if isinstance(x, np.ndarray):
            x = to_device_images(x, mean.device, fmt)
        logits, z = model(model_input(x, mean, std, fmt))
        yield logits.float(), z.float()


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """The model in eval mode inside the block, back in its previous mode after it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def engine_flags(e: dict):
    """``backend_flags`` of a resolved engine: training, its probes, inference and feature extraction
    all run inside it, so that a model's features are computed alike wherever they are."""
    return backend_flags(e["deterministic"], torch.device(e["device"]), e["tf32"])


@contextlib.contextmanager
def backend_flags(deterministic: bool, device: torch.device, tf32: bool = False):
    """Set torch's process-wide algorithm flags for one training run and restore them after."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
             torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)  # fmt: skip
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic  # picks the fastest conv kernels for fixed shapes
        torch.set_float32_matmul_precision("high" if tf32 else "highest")  # "high": TF32 matmuls
        torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
        torch.set_float32_matmul_precision(saved[2])
        torch.backends.cudnn.allow_tf32 = saved[3]


def load_model(path, device="cpu"):
    """(model in eval mode, config) from a ``model.pt`` written by ``fit``, loaded with
    ``weights_only=True`` (a pickle that would run code is refused). A file that cannot be read,
    or that does not fit its own config, raises ``l2ood.fileio.DamagedFileError`` naming it and the fix."""
    fix = "Delete it and run snakemake again: the train rule trains that run and seed again"
    with reading(path, fix):
        ckpt = torch.load(path, map_location=device, weights_only=True)
        cfg = ckpt["config"]
        model = build_model(cfg["model"], cfg["num_classes"], cfg["head"], cfg["image_size"], **cfg["model_kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), cfg


def _inference_setup(model_path, engine: dict | None):
    """What inference and feature extraction share: the resolved engine, the model (eval mode, in the
    engine's memory format) with its config, and the normalization tensors on the device."""
    e = resolve_engine(engine)
    device = torch.device(e["device"])
    model, cfg = load_model(model_path, device)
    model = model.to(memory_format=memory_format(e))
    return e, model, cfg, norm_tensors(cfg, device)


def _check_image_size(name: str, images: np.ndarray, cfg: dict) -> None:
    if images.shape[1] != cfg["image_size"] or images.shape[2] != cfg["image_size"]:
        raise ValueError(
            f"{name}: images are {images.shape[1]}x{images.shape[2]} but the model was trained at "
            f"{cfg['image_size']}x{cfg['image_size']}; use the resized data set (name suffix -r{cfg['image_size']})"
        )


def infer_sets(model_path, sets: dict, engine: dict | None = None) -> dict:
    """``{name: (images, labels)}`` -> ``{name: outputs}``, loading the model once.

    Outputs per image: pre-normalization feature norm, logits, label; plus the classifier bias and
    head (the fields ``l2ood.outputs`` describes).
    """
    e, model, cfg, (mean, std) = _inference_setup(model_path, engine)
    fmt = memory_format(e)
    results = {}
    for name, (images, labels) in sets.items():
        _check_image_size(name, images, cfg)
        logits, norms = [], []
        with engine_flags(e):
            for lo, z in batched_forward(model, images, mean, std, e["infer_batch_size"], fmt):
                logits.append(lo.cpu())
                norms.append(z.norm(dim=1).cpu())
        results[name] = {
            "feature_norm": torch.cat(norms).numpy(),
            "logits": torch.cat(logits).numpy(),
            "labels": labels.astype(np.int64),
            "fc_bias": model.fc.bias.detach().float().cpu().numpy(),
            "head": np.array(cfg["head"]),
        }
    return results


def infer_features(model_path, sets: dict, engine: dict | None = None) -> tuple[dict, dict]:
    """Penultimate features for the post-hoc detectors (``l2ood.detectors``), loading the model once.

    ``sets``: ``{name: (images, labels)}``, each passed in eval mode with the test-time preprocessing
    only (no augmentation), the training split included. Returns ``({name: {"features": (N, d) float16,
    "labels": (N,) int64}}, {"weight": (C, d), "bias": (C,) float32, "head": "l2" | "nol2"})``. The
    features are z *before* any L2 normalization. float16 halves the disk (docs/detectors.md); a value
    beyond its range (65504) raises instead of being stored as infinity.
    """
    e, model, cfg, (mean, std) = _inference_setup(model_path, engine)
    fmt = memory_format(e)
    results = {}
    for name, (images, labels) in sets.items():
        _check_image_size(name, images, cfg)
        with engine_flags(e):
            z = torch.cat([z.cpu() for _, z in batched_forward(model, images, mean, std, e["infer_batch_size"], fmt)])
        half = z.half()
        if not torch.isfinite(half).all():
            raise ValueError(f"{name}: features exceed float16's range (max |z| = {z.abs().max():.4g} > 65504)")
        results[name] = {"features": half.numpy(), "labels": np.asarray(labels, dtype=np.int64)}
    head = {
        "weight": model.fc.weight.detach().float().cpu().numpy(),
        "bias": model.fc.bias.detach().float().cpu().numpy(),
        "head": np.array(cfg["head"]),
    }
    return results, head

