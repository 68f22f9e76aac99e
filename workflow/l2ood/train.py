"""The training engine: one loop for every model, recipe and device.

Read top to bottom. ``fit`` sets a run up (``setup``: the model, the optimizer and the uint8
training set on the device, moved once), resumes it from its checkpoint if it has one, probes
the initial features, then each epoch trains (``train_epoch``: shuffle, augment on the device with
``l2ood.augment``, step the optimizer), records the probes (``probe_features``, ``record_probe``)
and writes a checkpoint; at the end ``write_run`` writes the run's files. ``infer_sets`` gives
every test image's feature norm and logits. The probes and inference share one batched forward
pass, ``batched_forward``.

Resumable: a checkpoint (model, optimizer, every RNG state, history, probes, epoch) is written
atomically after every epoch to ``<out_dir>/checkpoint.pt`` (``l2ood.layout.CHECKPOINT``), a path
Snakemake does not declare (it deletes a failed job's declared outputs). A restarted job resumes
from it; on CPU the result is bit-identical to an uninterrupted run.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from . import augment as aug
from .collapse import collapse_measures
from .fileio import atomic_path
from .layout import CHECKPOINT, TRAIN_OUTPUTS
from .losses import build_loss
from .mix import mix
from .models import build_model

log = logging.getLogger("l2ood.train")

# The engine's options and their defaults: how training and inference run, never what they
# compute, so no option is part of a run's config. This block is the one place the defaults are
# set: config.yaml's `engine:` changes them, the schema checks their names and types only.
ENGINE_DEFAULTS = {
    "device": "auto",  # "auto": cuda if available, else cpu
    "amp": "auto",  # bf16 autocast; "auto" = on CUDA only (17x slower on a CPU without native bf16)
    "compile": False,  # torch.compile the model; costs 50-80 s on CPU for no gain, so opt-in
    "channels_last": "auto",  # NHWC memory format; "auto" = on CUDA (tensor-core friendly)
    "log_every": 50,  # read the loss (a host sync) every N steps only
    "checkpoint_every": 1,  # epochs between resume checkpoints
    "deterministic": False,  # torch.use_deterministic_algorithms; CPU runs are deterministic anyway
    "infer_batch_size": 1024,  # images per forward pass in inference and in the per-epoch probes
}

#: what each optimizer reads from the recipe; config.yaml's recipes state every one of them.
OPTIMIZER_KEYS = {
    "sgd": ("lr", "momentum", "nesterov", "weight_decay"),
    "adamw": ("lr", "betas", "weight_decay"),
}


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class MissingRecipeKeyError(KeyError):
    """A recipe does not state a value that training reads (the engine defaults none of them)."""

    def __str__(self) -> str:  # KeyError's own would print the message in quotes
        return str(self.args[0])


def resolve_engine(engine: dict | None) -> dict:
    """``ENGINE_DEFAULTS`` updated by ``engine``, with every "auto" decided for this machine."""
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


def memory_format(e: dict) -> torch.memory_format:
    """The layout of image batches and conv weights for a resolved engine."""
    return torch.channels_last if e["channels_last"] else torch.contiguous_format


def learning_rate(recipe: dict, epoch: int) -> float:
    """The recipe's learning rate in ``epoch`` (0-based); a pure function, so resuming needs no scheduler state.

    multistep: lr * gamma ** (milestones passed), changing at epoch boundaries (MultiStepLR).
    cosine: per epoch, with the semantics of timm's CosineLRScheduler that the CCT recipe uses:
    linear warm-up from ``warmup_lr`` over ``warmup_epochs`` (overlapping the first cosine
    epochs), cosine from ``lr`` to ``min_lr`` over ``epochs - cooldown_epochs``, then ``min_lr``.
    A cosine recipe without warm-up, cool-down or ``min_lr`` has none of them (0).
    """
    base = float(recipe["lr"])
    if recipe["schedule"] == "multistep":
        return base * recipe["gamma"] ** sum(epoch >= m for m in recipe["milestones"])
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


def build_optimizer(model: torch.nn.Module, recipe: dict, recipe_name: str | None = None) -> torch.optim.Optimizer:
    """The recipe's optimizer with the values the recipe states (``OPTIMIZER_KEYS``; none defaulted).

    ``recipe_name`` only names the recipe in the error for a value it leaves out.
    """
    name = recipe["optimizer"]
    if name not in OPTIMIZER_KEYS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZER_KEYS)}")
    missing = [k for k in OPTIMIZER_KEYS[name] if k not in recipe]
    if missing:
        which = "the recipe" if recipe_name is None else f"recipe {recipe_name!r}"
        raise MissingRecipeKeyError(
            f"{which} does not state {', '.join(missing)}, which optimizer {name!r} needs: add "
            f"{' and '.join(missing)} to it in config.yaml (the training code defaults none of them)"
        )
    params = param_groups(model, recipe.get("weight_decay_exempt", "none"))
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe["lr"],
            momentum=recipe["momentum"],
            weight_decay=recipe["weight_decay"],
            nesterov=recipe["nesterov"],
        )
    return torch.optim.AdamW(params, lr=recipe["lr"], betas=tuple(recipe["betas"]), weight_decay=recipe["weight_decay"])


#: recipe ``weight_decay_exempt`` values: "none" decays every parameter (DDU, torch.optim's
#: default); "1d_and_bias" is timm's rule (``param_groups_weight_decay``, the default of the
#: ``create_optimizer_v2`` the CCT authors train with) and official ConvNeXt's (``optim_factory``):
#: no decay for 1-d parameters (norm weights and biases) and any ``.bias``.
WEIGHT_DECAY_EXEMPT = ("none", "1d_and_bias")
#: parameters exempt by name under "1d_and_bias": ConvNeXt's layer scale, the official code's 1-d
#: ``gamma`` (dim,), which the torchvision layout used here stores as (dim, 1, 1).
NO_DECAY_NAMES = ("layer_scale",)


def param_groups(model: torch.nn.Module, exempt: str) -> list[dict]:
    """The optimizer's parameter groups: one, or decayed and exempt (weight decay 0) by ``exempt``."""
    if exempt not in WEIGHT_DECAY_EXEMPT:
        raise ValueError(f"unknown weight_decay_exempt {exempt!r}; choose one of {WEIGHT_DECAY_EXEMPT}")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if exempt == "none":
        return [{"params": [p for _, p in params]}]
    free = {n for n, p in params if p.ndim <= 1 or n.endswith(".bias") or n.rsplit(".", 1)[-1] in NO_DECAY_NAMES}
    return [
        {"params": [p for n, p in params if n not in free]},
        {"params": [p for n, p in params if n in free], "weight_decay": 0.0},
    ]


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
    """``torch.save`` through a temporary file: a kill mid-write leaves the previous file intact."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
            x = to_device_images(x, mean.device)
        logits, z = model(aug.normalize(x, mean, std).contiguous(memory_format=fmt))
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


# --- training ---------------------------------------------------------------------------------


def fit(cfg: dict, images: np.ndarray, labels: np.ndarray, out_dir, seed: int, engine: dict | None = None) -> list:
    """Train the model of ``cfg`` on ``images``/``labels`` and write into ``out_dir``.

    ``cfg``: the resolved run config (model, model_kwargs, head, num_classes, image_size,
    normalize, probe_size, recipe). Writes the ``model``, ``history``, ``collapse`` and
    ``probes`` files of ``l2ood.layout.TRAIN_OUTPUTS``; returns the history rows.
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


def _fit(cfg: dict, images, labels, out_dir: Path, seed: int, e: dict, device: torch.device) -> list:
    ckpt_path = out_dir / CHECKPOINT
    run = setup(cfg, images, labels, seed, e, device)
    epochs = run.recipe["epochs"]

    progress = load_checkpoint(ckpt_path, run)
    if progress is None:
        progress = new_progress()
    if not progress["norms"]:  # a fresh run: epoch 0 of the probes is the initialisation
        record_probe(progress, 0, probe_features(run), None, run.probe_labels)
    prev_z = progress["last_probe"].to(device)

    run.model.train()
    for epoch in range(progress["epoch"], epochs):
        # one pass over the shuffled, augmented training set
        row = train_epoch(run, epoch)
        progress["history"].append(row)
        # the probe images' features now, their norms and change since the last epoch
        z = probe_features(run)
        record_probe(progress, epoch + 1, z, prev_z, run.probe_labels)
        prev_z = z
        progress["epoch"] = epoch + 1
        log.info(
            "epoch %d/%d  loss %.4f  acc %.4f  lr %.4g  %.1f s  %.0f img/s  probe NC1 %.3g",
            epoch + 1, epochs, row["loss"], row["accuracy"], row["lr"], row["seconds"], row["images_per_s"],
            progress["collapse"][-1]["nc1"],
        )  # fmt: skip
        # a checkpoint to resume from, unless this was the last epoch (the run's files follow)
        if progress["epoch"] % e["checkpoint_every"] == 0 and progress["epoch"] < epochs:
            save_checkpoint(ckpt_path, run, progress)

    write_run(out_dir, run.model, cfg, seed, progress, run.probe_idx, run.probe_labels)
    ckpt_path.unlink(missing_ok=True)
    return progress["history"]


@dataclasses.dataclass
class Run:
    """What one training run works with from its first epoch to its last (set up by ``setup``).

    What changes from epoch to epoch besides the weights is ``progress``, a plain dict, so that the
    checkpoint can hold it as it is.
    """

    cfg: dict
    recipe: dict
    engine: dict  # resolved (resolve_engine)
    device: torch.device
    fmt: torch.memory_format
    model: torch.nn.Module
    step_model: Callable  # the model, compiled if the engine says so; the training steps call it
    optimizer: torch.optim.Optimizer
    loss_fn: Callable
    gen: torch.Generator  # shuffling and augmentation; checkpointed with the global RNGs
    images: torch.Tensor  # the training set, uint8 (N, 3, H, W) on the device
    labels: torch.Tensor  # (N,) int64 on the device
    mean: torch.Tensor
    std: torch.Tensor
    fill: tuple  # RandAugment's fill: timm's mean colour
    mixing: dict  # mixup / cutmix settings of the recipe (the CCT recipe), empty if none
    probe_idx: np.ndarray  # (P,) indices of the probe images in the training set
    probe_images: torch.Tensor  # uint8 (P, 3, H, W) on the device
    probe_labels: np.ndarray  # (P,)
    digest: str  # of config and seed: a checkpoint of another run is not resumed


def setup(cfg: dict, images: np.ndarray, labels: np.ndarray, seed: int, e: dict, device: torch.device) -> Run:
    """Seed every generator, build model, optimizer and loss, move the training set to the device."""
    recipe = cfg["recipe"]
    fmt = memory_format(e)
    torch.manual_seed(seed)  # before building the model: its initial weights come from it
    np.random.seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = build_model(cfg["model"], cfg["num_classes"], cfg["head"], cfg["image_size"], **cfg["model_kwargs"])
    model = model.to(device, memory_format=fmt)
    optimizer = build_optimizer(model, recipe, cfg.get("recipe_name"))
    loss_fn = build_loss(**recipe.get("loss", {"name": "ce"}))
    x_all = to_device_images(images, device)
    mean, std = norm_tensors(cfg, device)
    probe_idx = probe_indices(labels, int(cfg["probe_size"]), seed)
    return Run(
        cfg=cfg,
        recipe=recipe,
        engine=e,
        device=device,
        fmt=fmt,
        model=model,
        step_model=torch.compile(model) if e["compile"] else model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        gen=gen,
        images=x_all,
        labels=torch.from_numpy(labels.astype(np.int64)).to(device),
        mean=mean,
        std=std,
        # label smoothing is not here: it stays in the loss (the same soft target)
        mixing={k: recipe[k] for k in ("mixup_alpha", "cutmix_alpha", "mix_prob", "switch_prob") if k in recipe},
        fill=tuple(round(255 * m) for m in cfg["normalize"]["mean"]),
        probe_idx=probe_idx,
        probe_images=x_all[probe_idx],
        probe_labels=labels[probe_idx],
        digest=config_digest(cfg, seed),
    )


def new_progress() -> dict:
    """The progress of a run before its first epoch (``record_probe`` and the loop fill it)."""
    return {"epoch": 0, "history": [], "collapse": [], "norms": [], "sq_change": []}


def load_checkpoint(path: Path, run: Run) -> dict | None:
    """Resume from ``path``: load model, optimizer and RNG states into ``run`` and return the
    saved progress; None if there is no checkpoint or it belongs to another config or seed."""
    if not path.exists():
        return None
    ckpt = torch.load(path, map_location=run.device, weights_only=False)
    if ckpt["digest"] != run.digest:
        log.warning("ignoring %s: it belongs to another config or seed", path)
        return None
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    set_rng_states(ckpt["rng"], run.gen)
    progress = ckpt["state"]
    log.info("resumed from %s at epoch %d of %d", path, progress["epoch"], run.recipe["epochs"])
    return progress


def save_checkpoint(path: Path, run: Run, progress: dict) -> None:
    """Everything ``load_checkpoint`` needs to continue bit-identically, written atomically."""
    atomic_torch_save(
        {"digest": run.digest, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
         "rng": rng_states(run.gen), "state": progress},
        path,
    )  # fmt: skip


def train_epoch(run: Run, epoch: int) -> dict:
    """One pass over the training set in a new random order; returns the epoch's history row.

    Raises ``NonFiniteLossError`` (at the next loss read, every ``log_every`` steps) if the loss
    became NaN or infinite.
    """
    recipe, device, e = run.recipe, run.device, run.engine
    n, bs = len(run.labels), int(recipe["batch_size"])
    # drop_last: the last partial batch is left out, as the LogitNorm and timm (CCT) loaders do
    steps = n // bs if recipe.get("drop_last", False) else math.ceil(n / bs)
    if steps == 0:
        raise ValueError(f"drop_last with batch_size {bs} > {n} training images: no batch to train on")
    seen = min(n, steps * bs)  # the images trained on this epoch
    t0 = time.perf_counter()
    perm = torch.randperm(n, device=device, generator=run.gen)
    # the epoch's bookkeeping stays on the device: no host sync per step
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    first_bad = torch.full((), -1, device=device, dtype=torch.long)
    lr = learning_rate(recipe, epoch)  # both schedules change per epoch
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    mixing = bool(run.mixing) and epoch < recipe.get("mixup_off_epoch", recipe["epochs"])  # the CCT recipe stops it
    for step in range(steps):
        # the batch: the next slice of the permutation, augmented (index_select: 20x faster on uint8)
        idx = perm[step * bs : (step + 1) * bs]
        x = aug.augment(run.images.index_select(0, idx), recipe, run.gen, run.fill)
        y = target = run.labels[idx]
        # mixup / cutmix: mixed images, soft targets (B, C)
        if mixing:
            x, target = mix(x, y, run.gen, run.cfg["num_classes"], **run.mixing)
        x = aug.normalize(x, run.mean, run.std).contiguous(memory_format=run.fmt)
        # forward (bf16 autocast if the engine says so), loss in float32
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=e["amp"]):
            logits, _ = run.step_model(x)
        loss = run.loss_fn(logits.float(), target)
        # backward and step
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        # bookkeeping: loss, accuracy and the first non-finite step, on the device
        loss_sum += loss.detach() * len(idx)
        correct += (logits.argmax(1) == y).sum()
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
        # every log_every steps and at the end: read the NaN flag (a host sync) and stop on it
        if (step + 1) % e["log_every"] == 0 or step == steps - 1:
            if first_bad.item() >= 0:
                raise NonFiniteLossError(
                    f"loss became NaN or infinite at epoch {epoch + 1}, step {first_bad.item() + 1} of {steps} "
                    f"(lr {lr:.4g}); lower the learning rate or check the input data"
                )
    seconds = time.perf_counter() - t0
    return {
        "epoch": epoch + 1,
        "loss": loss_sum.item() / seen,
        "accuracy": correct.item() / seen,
        "lr": lr,
        "seconds": seconds,
        "images_per_s": seen / seconds,
    }


def probe_features(run: Run) -> torch.Tensor:
    """Eval-mode features (P, d), float32 on the device, of the probe images; the model's mode is kept."""
    with eval_mode(run.model):
        batches = batched_forward(
            run.model, run.probe_images, run.mean, run.std, run.engine["infer_batch_size"], run.fmt
        )
        return torch.cat([z for _, z in batches])


def record_probe(progress: dict, epoch: int, z: torch.Tensor, prev_z: torch.Tensor | None, labels) -> None:
    """Add epoch ``epoch``'s probe features ``z`` (P, d) to ``progress``: their norms, the squared
    change since ``prev_z`` (the previous epoch's; None at epoch 0) and the collapse measures."""
    progress["norms"].append(z.norm(dim=1).cpu().numpy())
    if prev_z is not None:
        progress["sq_change"].append(((z - prev_z) ** 2).sum(dim=1).cpu().numpy())
    progress["last_probe"] = z.cpu()  # one copy to the host, kept in the checkpoint for the next change
    progress["collapse"].append({"epoch": epoch, **collapse_measures(progress["last_probe"].numpy(), labels)})


def write_run(out_dir: Path, model, cfg: dict, seed: int, progress: dict, probe_idx, probe_labels) -> None:
    """The run's files, named by ``l2ood.layout.TRAIN_OUTPUTS`` (the names the train rule declares).

    ``model`` last, written atomically, so that its presence means the rest is complete.
    """
    import pandas as pd

    out = {role: Path(out_dir) / name for role, name in TRAIN_OUTPUTS.items()}
    pd.DataFrame(progress["history"]).to_csv(out["history"], index=False)
    coll = pd.DataFrame(progress["collapse"])
    norms = np.stack(progress["norms"])
    coll["norm_mean"] = norms.mean(axis=1)
    coll["norm_cv"] = norms.std(axis=1) / norms.mean(axis=1)
    coll.to_csv(out["collapse"], index=False)
    np.savez(
        out["probes"],
        indices=probe_idx,
        labels=probe_labels,
        norms=norms.astype(np.float32),  # (epochs + 1, P): epoch 0 = initialisation
        sq_change=np.stack(progress["sq_change"]).astype(np.float32),  # (epochs, P): ||z_e - z_{e-1}||^2
        features=progress["last_probe"].numpy().astype(np.float16),  # (P, d) at the end
    )
    atomic_torch_save({"state_dict": model.state_dict(), "config": cfg, "seed": seed}, out["model"])


# --- inference --------------------------------------------------------------------------------


def load_model(path, device="cpu"):
    """(model in eval mode, config) from a ``model.pt`` written by ``fit``."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    cfg = ckpt["config"]
    model = build_model(cfg["model"], cfg["num_classes"], cfg["head"], cfg["image_size"], **cfg["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), cfg


def infer_sets(model_path, sets: dict, engine: dict | None = None) -> dict:
    """``{name: (images, labels)}`` -> ``{name: outputs}``, loading the model once.

    Outputs per image: pre-normalization feature norm, logits, label; plus the classifier bias and
    head (the fields ``l2ood.outputs`` describes).
    """
    e = resolve_engine(engine)
    device = torch.device(e["device"])
    fmt = memory_format(e)
    model, cfg = load_model(model_path, device)
    model = model.to(memory_format=fmt)
    mean, std = norm_tensors(cfg, device)
    results = {}
    for name, (images, labels) in sets.items():
        if images.shape[1] != cfg["image_size"] or images.shape[2] != cfg["image_size"]:
            raise ValueError(
                f"{name}: images are {images.shape[1]}x{images.shape[2]} but the model was trained at "
                f"{cfg['image_size']}x{cfg['image_size']}; use the resized data set (name suffix -r{cfg['image_size']})"
            )
        logits, norms = [], []
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


def infer(model_path, images: np.ndarray, labels: np.ndarray, engine: dict | None = None) -> dict:
    """``infer_sets`` for one set of images."""
    return infer_sets(model_path, {"images": (images, labels)}, engine)["images"]
