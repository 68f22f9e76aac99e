"""The training engine: one loop for every model, recipe and device.

Read top to bottom: ``fit`` loads the uint8 training set onto the device once, then each epoch
shuffles, augments on the device (``l2ood.augment``), steps the optimizer, records the probes
and writes a checkpoint. ``infer`` gives every test image's feature norm and logits.

Resumable: a checkpoint (model, optimizer, every RNG state, history, probes, epoch) is written
atomically after every epoch to ``<out_dir>/checkpoint.pt``, a path Snakemake does not declare
(it deletes a failed job's declared outputs). A restarted job resumes from it; on CPU the
result is bit-identical to an uninterrupted run.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import augment as aug
from .collapse import collapse_measures
from .losses import build_loss
from .mix import mix
from .models import build_model

log = logging.getLogger("l2ood.train")

ENGINE_DEFAULTS = {
    "device": "auto",  # "auto": cuda if available, else cpu
    "amp": "auto",  # bf16 autocast; "auto" = on CUDA only (17x slower on a CPU without native bf16)
    "compile": False,  # torch.compile the model; costs 50-80 s on CPU for no gain, so opt-in
    "channels_last": "auto",  # NHWC memory format; "auto" = on CUDA (tensor-core friendly)
    "log_every": 50,  # read the loss (a host sync) every N steps only
    "checkpoint_every": 1,  # epochs between resume checkpoints
    "deterministic": False,  # torch.use_deterministic_algorithms; CPU runs are deterministic anyway
    "infer_batch_size": 1024,
}


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def resolve_engine(engine: dict | None) -> dict:
    unknown = set(engine or {}) - set(ENGINE_DEFAULTS)
    if unknown:
        raise KeyError(f"unknown engine option(s) {sorted(unknown)}; known: {sorted(ENGINE_DEFAULTS)}")
    e = {**ENGINE_DEFAULTS, **(engine or {})}
    if e["device"] == "auto":
        e["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    on_cuda = torch.device(e["device"]).type == "cuda"
    for key in ("amp", "channels_last"):
        if e[key] == "auto":
            e[key] = on_cuda
    return e


def learning_rate(recipe: dict, epoch: int) -> float:
    """The recipe's learning rate in ``epoch`` (0-based); a pure function, so resuming needs no scheduler state.

    multistep: lr * gamma ** (milestones passed), changing at epoch boundaries (MultiStepLR).
    cosine: per epoch, with the semantics of timm's CosineLRScheduler that the CCT recipe uses:
    linear warm-up from ``warmup_lr`` over ``warmup_epochs`` (overlapping the first cosine
    epochs), cosine from ``lr`` to ``min_lr`` over ``epochs - cooldown_epochs``, then ``min_lr``.
    """
    base = float(recipe["lr"])
    if recipe["schedule"] == "multistep":
        return base * recipe.get("gamma", 0.1) ** sum(epoch >= m for m in recipe["milestones"])
    if recipe["schedule"] == "cosine":
        warmup, lo = int(recipe.get("warmup_epochs", 0)), float(recipe.get("min_lr", 0.0))
        if epoch < warmup:
            start = float(recipe.get("warmup_lr", 0.0))
            return start + epoch * (base - start) / warmup
        span = recipe["epochs"] - int(recipe.get("cooldown_epochs", 0))
        if epoch >= span:
            return lo
        return lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * epoch / span))
    raise ValueError(f"unknown schedule {recipe['schedule']!r}; choose multistep or cosine")


def build_optimizer(model: torch.nn.Module, recipe: dict) -> torch.optim.Optimizer:
    name = recipe["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=recipe["lr"],
            momentum=recipe.get("momentum", 0.9),
            weight_decay=recipe.get("weight_decay", 5e-4),
            nesterov=recipe.get("nesterov", False),
        )
    if name == "adamw":
        return torch.optim.AdamW(
            model.parameters(),
            lr=recipe["lr"],
            betas=tuple(recipe.get("betas", (0.9, 0.999))),
            weight_decay=recipe.get("weight_decay", 0.05),
        )
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adamw")


def config_digest(cfg: dict, seed: int) -> str:
    return hashlib.sha256(json.dumps([cfg, seed], sort_keys=True, default=str).encode()).hexdigest()[:16]


def rng_states(gen: torch.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "data": gen.get_state(),
    }


def set_rng_states(states: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])
    gen.set_state(states["data"])


def atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint intact


def probe_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A fixed, class-stratified subset of training images for the per-epoch probes."""
    size = min(size, len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = np.full(len(classes), size // len(classes))
    per[: size - per.sum()] += 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, per)]
    return np.sort(np.concatenate(picks))


def to_device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 N x H x W x 3 (numpy) -> uint8 N x 3 x H x W on ``device``, moved once."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).contiguous()


def norm_tensors(cfg: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(cfg["normalize"]["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg["normalize"]["std"], device=device).view(1, -1, 1, 1)
    return mean, std


@torch.no_grad()
def extract(model, images: torch.Tensor, mean, std, batch_size: int, memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode (logits, pre-normalization features) of uint8 device images, float32."""
    was_training = model.training
    model.eval()
    logits, feats = [], []
    for start in range(0, len(images), batch_size):
        x = aug.normalize(images[start : start + batch_size], mean, std).contiguous(memory_format=memory_format)
        lo, z = model(x)
        logits.append(lo.float())
        feats.append(z.float())
    model.train(was_training)
    return torch.cat(logits), torch.cat(feats)


def fit(cfg: dict, images: np.ndarray, labels: np.ndarray, out_dir, seed: int, engine: dict | None = None) -> dict:
    """Train the model of ``cfg`` on ``images``/``labels`` and write into ``out_dir``.

    ``cfg``: the resolved run config (model, model_kwargs, head, num_classes, image_size,
    normalize, probe_size, recipe). Writes ``model.pt``, ``history.csv``, ``probes.npz``,
    ``collapse.csv``; returns the history rows.
    """
    e = resolve_engine(engine)
    device = torch.device(e["device"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with backend_flags(e["deterministic"], device):
        return _fit(cfg, images, labels, out_dir, seed, e, device)


@contextlib.contextmanager
def backend_flags(deterministic: bool, device: torch.device):
    """Set torch's process-wide algorithm flags for one training run and restore them after."""
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic  # picks the fastest conv kernels for fixed shapes
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]


def _fit(cfg: dict, images, labels, out_dir: Path, seed: int, e: dict, device: torch.device) -> dict:
    ckpt_path = out_dir / "checkpoint.pt"
    recipe = cfg["recipe"]
    memory_format = torch.channels_last if e["channels_last"] else torch.contiguous_format

    torch.manual_seed(seed)
    np.random.seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)  # shuffling + augmentation, checkpointed
    model = build_model(
        cfg["model"], cfg["num_classes"], cfg["head"], cfg["image_size"], **cfg.get("model_kwargs", {})
    ).to(device, memory_format=memory_format)
    optimizer = build_optimizer(model, recipe)
    loss_fn = build_loss(**recipe.get("loss", {"name": "ce"}))
    step_model = torch.compile(model) if e["compile"] else model

    x_all = to_device_images(images, device)
    y_all = torch.from_numpy(labels.astype(np.int64)).to(device)
    mean, std = norm_tensors(cfg, device)
    probe_idx = probe_indices(labels, int(cfg.get("probe_size", 1000)), seed)
    probe_x, probe_y = x_all[probe_idx], labels[probe_idx]
    n, bs = len(y_all), int(recipe["batch_size"])
    # mixup / cutmix (the CCT recipe); label smoothing stays in the loss (same soft target)
    mixing = {k: recipe[k] for k in ("mixup_alpha", "cutmix_alpha", "mix_prob", "switch_prob") if k in recipe}
    fill = tuple(round(255 * m) for m in cfg["normalize"]["mean"])  # RandAugment's fill: timm's mean colour
    steps = math.ceil(n / bs)
    digest = config_digest(cfg, seed)

    state = {"epoch": 0, "history": [], "collapse": [], "norms": [], "sq_change": []}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["digest"] == digest:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            set_rng_states(ckpt["rng"], gen)
            state = ckpt["state"]
            log.info("resumed from %s at epoch %d of %d", ckpt_path, state["epoch"], recipe["epochs"])
        else:
            log.warning("ignoring %s: it belongs to another config or seed", ckpt_path)

    def record_probe(epoch: int, prev: torch.Tensor | None) -> torch.Tensor:
        _, z = extract(model, probe_x, mean, std, e["infer_batch_size"], memory_format)
        state["norms"].append(z.norm(dim=1).cpu().numpy())
        if prev is not None:
            state["sq_change"].append(((z - prev) ** 2).sum(dim=1).cpu().numpy())
        state["last_probe"] = z.cpu()  # one copy to the host, kept in the checkpoint for the next change
        state["collapse"].append({"epoch": epoch, **collapse_measures(state["last_probe"].numpy(), probe_y)})
        return z

    if state["epoch"] == 0 and not state["norms"]:
        record_probe(0, None)
    prev_probe = state["last_probe"].to(device)

    model.train()
    for epoch in range(state["epoch"], recipe["epochs"]):
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        first_bad = torch.full((), -1, device=device, dtype=torch.long)
        lr = learning_rate(recipe, epoch)  # both schedules change per epoch
        for group in optimizer.param_groups:
            group["lr"] = lr
        for step in range(steps):
            idx = perm[step * bs : (step + 1) * bs]
            x = aug.augment(x_all.index_select(0, idx), recipe, gen, fill)  # index_select: 20x faster on uint8
            y = target = y_all[idx]
            if mixing and epoch < recipe.get("mixup_off_epoch", recipe["epochs"]):
                x, target = mix(x, y, gen, cfg["num_classes"], **mixing)  # soft targets (B, C)
            x = aug.normalize(x, mean, std).contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=e["amp"]):
                logits, _ = step_model(x)
            loss = loss_fn(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # bookkeeping stays on the device: no host sync per step
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y).sum()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
            if (step + 1) % e["log_every"] == 0 or step == steps - 1:
                if first_bad.item() >= 0:
                    raise NonFiniteLossError(
                        f"loss became NaN or infinite at epoch {epoch + 1}, step {first_bad.item() + 1} of {steps} "
                        f"(lr {lr:.4g}); lower the learning rate or check the input data"
                    )
        seconds = time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "loss": loss_sum.item() / n,
            "accuracy": correct.item() / n,
            "lr": lr,
            "seconds": seconds,
            "images_per_s": n / seconds,
        }
        state["history"].append(row)
        prev_probe = record_probe(epoch + 1, prev_probe)
        state["epoch"] = epoch + 1
        log.info(
            "epoch %d/%d  loss %.4f  acc %.4f  lr %.4g  %.1f s  %.0f img/s  probe NC1 %.3g",
            epoch + 1, recipe["epochs"], row["loss"], row["accuracy"], lr, seconds, row["images_per_s"],
            state["collapse"][-1]["nc1"],
        )  # fmt: skip
        if state["epoch"] % e["checkpoint_every"] == 0 and state["epoch"] < recipe["epochs"]:
            atomic_torch_save(
                {"digest": digest, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": rng_states(gen), "state": state},
                ckpt_path,
            )  # fmt: skip

    write_run(out_dir, model, cfg, seed, state, probe_idx, probe_y)
    ckpt_path.unlink(missing_ok=True)
    return state["history"]


def write_run(out_dir: Path, model, cfg: dict, seed: int, state: dict, probe_idx, probe_y) -> None:
    """The run's files; model.pt last, so its presence means the rest is complete."""
    import pandas as pd

    pd.DataFrame(state["history"]).to_csv(out_dir / "history.csv", index=False)
    coll = pd.DataFrame(state["collapse"])
    norms = np.stack(state["norms"])
    coll["norm_mean"] = norms.mean(axis=1)
    coll["norm_cv"] = norms.std(axis=1) / norms.mean(axis=1)
    coll.to_csv(out_dir / "collapse.csv", index=False)
    np.savez(
        out_dir / "probes.npz",
        indices=probe_idx,
        labels=probe_y,
        norms=norms.astype(np.float32),  # (epochs + 1, P): epoch 0 = initialisation
        sq_change=np.stack(state["sq_change"]).astype(np.float32),  # (epochs, P): ||z_e - z_{e-1}||^2
        features=state["last_probe"].numpy().astype(np.float16),  # (P, d) at the end
    )
    atomic_torch_save({"state_dict": model.state_dict(), "config": cfg, "seed": seed}, out_dir / "model.pt")


def load_model(path, device="cpu"):
    """(model in eval mode, config) from a ``model.pt`` written by ``fit``."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    cfg = ckpt["config"]
    model = build_model(cfg["model"], cfg["num_classes"], cfg["head"], cfg["image_size"], **cfg.get("model_kwargs", {}))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), cfg


def infer_sets(model_path, sets: dict, engine: dict | None = None) -> dict:
    """``{name: (images, labels)}`` -> ``{name: outputs}``, loading the model once. Outputs per
    image: pre-normalization feature norm, logits, label; plus the classifier bias and head."""
    e = resolve_engine(engine)
    device = torch.device(e["device"])
    memory_format = torch.channels_last if e["channels_last"] else torch.contiguous_format
    model, cfg = load_model(model_path, device)
    model = model.to(memory_format=memory_format)
    mean, std = norm_tensors(cfg, device)
    results = {}
    for name, (images, labels) in sets.items():
        if images.shape[1] != cfg["image_size"] or images.shape[2] != cfg["image_size"]:
            raise ValueError(
                f"{name}: images are {images.shape[1]}x{images.shape[2]} but the model was trained at "
                f"{cfg['image_size']}x{cfg['image_size']}; use the resized data set (name suffix -r{cfg['image_size']})"
            )
        logits, feats = [], []
        with torch.inference_mode():
            for start in range(0, len(images), e["infer_batch_size"]):
                x = to_device_images(images[start : start + e["infer_batch_size"]], device)
                lo, z = model(aug.normalize(x, mean, std).contiguous(memory_format=memory_format))
                logits.append(lo.float().cpu())
                feats.append(z.float().norm(dim=1).cpu())
        results[name] = {
            "feature_norm": torch.cat(feats).numpy(),
            "logits": torch.cat(logits).numpy(),
            "labels": labels.astype(np.int64),
            "fc_bias": model.fc.bias.detach().float().cpu().numpy(),
            "head": np.array(cfg["head"]),
        }
    return results


def infer(model_path, images: np.ndarray, labels: np.ndarray, engine: dict | None = None) -> dict:
    """``infer_sets`` for one set of images."""
    return infer_sets(model_path, {"images": (images, labels)}, engine)["images"]
