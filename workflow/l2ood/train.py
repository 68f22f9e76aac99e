"""The training engine: one loop for every model, recipe and device.

Read top to bottom. ``fit`` sets a run up (``setup``: the model, the optimizer and the uint8
training set on the device, moved once), resumes it from its checkpoint if it has one, probes
the initial features, then each epoch trains (``train_epoch``: shuffle, augment on the device with
``l2ood.augment``, step the optimizer), records the probes (``probe_features``, ``record_probe``)
and writes a checkpoint when one is due; at the end ``write_run`` writes the run's files. The
probes and inference (``l2ood.inference``) share one batched forward pass, ``batched_forward``.
The defaults of the engine and of a recipe are in ``l2ood.engine``; the optimizer and the
schedule in ``l2ood.optim``.

Resumable: a checkpoint (``l2ood.checkpoint``: model, optimizer, every RNG state, history, probes,
epoch) is written atomically to ``<out_dir>/checkpoint.pt`` (``l2ood.layout.CHECKPOINT``), a path
Snakemake does not declare (it deletes a failed job's declared outputs): at the end of an epoch once
``checkpoint_minutes`` have passed since the last one, and at SIGTERM (what SLURM sends before it
preempts or times out a job), then mid-epoch, with the epoch's position (``EpochPosition``). A
restarted job resumes from it; on CPU the result is bit-identical to an uninterrupted run.
"""

import contextlib
import dataclasses
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import augment as aug
from .checkpoint import data_digest, identity_digest, load_checkpoint, run_identity, save_checkpoint, save_model
from .collapse import collapse_measures
from .engine import recipe_value
from .epochlog import EpochClock, log_epoch
from .fileio import atomic_path, remove_stale_temporaries, save_npz
from .inference import batched_forward, engine_flags, eval_mode, memory_format, model_input, norm_tensors
from .inference import resolve_engine, to_device_images
from .layout import CHECKPOINT, TRAIN_OUTPUTS
from .losses import build_loss
from .mix import mix
from .models import build_model
from .optim import build_optimizer, learning_rate

log = logging.getLogger("l2ood.train")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def probe_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A fixed, class-stratified subset of training images for the per-epoch probes."""
    size = min(size, len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = np.full(len(classes), size // len(classes))
    per[: size - per.sum()] += 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, per)]
    return np.sort(np.concatenate(picks))


def take(images: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``images[idx]`` along the first axis, keeping the layout (index_select: 20x faster than
    ``images[idx]`` on uint8; it would turn a channels-last tensor contiguous, so a channels-last
    one is gathered as the N x H x W x C array it is)."""
    if images.is_contiguous():
        return images.index_select(0, idx)
    return images.permute(0, 2, 3, 1).index_select(0, idx).permute(0, 3, 1, 2)


# --- training ---------------------------------------------------------------------------------


def fit(cfg: dict, images: np.ndarray, labels: np.ndarray, out_dir, seed: int, engine: dict | None = None) -> list:
    """Train the model of ``cfg`` on ``images``/``labels`` and write into ``out_dir``.

    ``cfg``: the resolved run config (model, model_kwargs, head, num_classes, image_size,
    normalize, probe_size, recipe). Writes the ``model``, ``history``, ``collapse`` and
    ``probes`` files of ``l2ood.layout.TRAIN_OUTPUTS``; returns the history rows.

    Raises ``TrainingInterrupted`` after a SIGTERM, once the checkpoint is written.
    """
    e = resolve_engine(engine)
    device = torch.device(e["device"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "threads" in cfg:  # the config's, not the job's (--cores): CPU float reductions depend on it
        torch.set_num_threads(cfg["threads"])
    for tmp in remove_stale_temporaries(out_dir):  # of a writer killed mid-write (kill -9)
        log.warning("removed %s, left by a process killed while writing it", tmp)
    with engine_flags(e), interrupt_on_sigterm() as stop:
        return _fit(cfg, images, labels, out_dir, seed, e, device, stop)


class TrainingInterrupted(RuntimeError):
    """Training stopped at a SIGTERM; the checkpoint it wrote resumes it."""


@contextlib.contextmanager
def interrupt_on_sigterm():
    """Inside the block a SIGTERM only sets the yielded event, which the loop checks after every
    step; the previous handler is back after the block. Outside the main thread (where Python
    allows no handler) the event is never set."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fit(cfg: dict, images, labels, out_dir: Path, seed: int, e: dict, device: torch.device, stop) -> list:
    ckpt_path = out_dir / CHECKPOINT
    run = setup(cfg, images, labels, seed, e, device)
    epochs = run.recipe["epochs"]

    progress = load_checkpoint(ckpt_path, run)
    if progress is None:
        progress = new_progress()
    if not progress["norms"]:  # a fresh run: epoch 0 of the probes is the initialisation
        record_probe(progress, 0, probe_features(run), None, run.probe_labels)
    prev_z = progress["last_probe"].to(device)
    last_save = time.monotonic()

    run.model.train()
    clock = EpochClock(progress["epoch"], epochs)
    for epoch in range(progress["epoch"], epochs):
        # one pass over the shuffled, augmented training set (from where a SIGTERM stopped it)
        row = train_epoch(run, epoch, progress.pop("position", None), stop)
        if isinstance(row, EpochPosition):  # SIGTERM mid-epoch: save where it stands, stop
            save_checkpoint(ckpt_path, run, {**progress, "position": dict(row)})
            raise TrainingInterrupted(f"SIGTERM at epoch {epoch + 1}, step {row['step']}: checkpoint written")
        progress["history"].append(row)
        # the probe images' features now, their norms and change since the last epoch
        z = probe_features(run)
        record_probe(progress, epoch + 1, z, prev_z, run.probe_labels)
        prev_z = z
        progress["epoch"] = epoch + 1
        log_epoch(cfg["run"], seed, row, epochs, progress["collapse"][-1]["nc1"], clock)
        # a checkpoint to resume from, every checkpoint_minutes and at a SIGTERM, unless this was
        # the last epoch (the run's files follow)
        due = time.monotonic() - last_save >= 60 * e["checkpoint_minutes"] or stop.is_set()
        if due and progress["epoch"] < epochs:
            save_checkpoint(ckpt_path, run, progress)
            last_save = time.monotonic()
            if stop.is_set():
                raise TrainingInterrupted(f"SIGTERM after epoch {epoch + 1}: checkpoint written")

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
    identity: dict  # run_identity: a checkpoint of another is not resumed
    digest: str  # config_digest of the identity


class EpochPosition(dict):
    """Where an interrupted epoch stands after step ``step`` (1-based count of steps done): the
    epoch's permutation, its running loss and accuracy sums, the first non-finite step, seconds."""


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
    loss_fn = build_loss(**recipe_value(recipe, "loss"))
    x_all = to_device_images(images, device, fmt)
    mean, std = norm_tensors(cfg, device)
    probe_idx = probe_indices(labels, int(cfg["probe_size"]), seed)
    identity = run_identity(cfg, seed, e, data_digest(images, labels))
    return Run(
        cfg=cfg,
        recipe=recipe,
        engine=e,
        device=device,
        fmt=fmt,
        model=model,
        step_model=compile_model(model, e) if e["compile"] else model,
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
        probe_images=take(x_all, torch.from_numpy(probe_idx).to(device)),
        probe_labels=labels[probe_idx],
        identity=identity,
        digest=identity_digest(identity),
    )


def compile_model(model: torch.nn.Module, e: dict) -> Callable:
    """``torch.compile`` for full batches of one shape (``dynamic=False``), with ``compile_mode``,
    caching its kernels in ``compile_cache_dir`` (unless TORCHINDUCTOR_CACHE_DIR is set)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(e["compile_cache_dir"]).resolve()))
    return torch.compile(model, mode=e["compile_mode"], dynamic=False)


def new_progress() -> dict:
    """The progress of a run before its first epoch (``record_probe`` and the loop fill it)."""
    return {"epoch": 0, "history": [], "collapse": [], "norms": [], "sq_change": []}


def train_epoch(run: Run, epoch: int, position: dict | None = None, stop=None) -> dict:
    """One pass over the training set in a new random order; returns the epoch's history row.

    ``position``: an ``EpochPosition`` to continue the epoch from (a resumed SIGTERM checkpoint).
    ``stop``: an event (``interrupt_on_sigterm``) checked after every step; once set, the epoch
    stops there and its ``EpochPosition`` is returned instead of the row.
    Raises ``NonFiniteLossError`` (at the next loss read, every ``log_every`` steps) if the loss
    became NaN or infinite.
    """
    recipe, device, e = run.recipe, run.device, run.engine
    n, bs = len(run.labels), int(recipe["batch_size"])
    # drop_last: the last partial batch is left out, as the LogitNorm and timm (CCT) loaders do
    steps = n // bs if recipe_value(recipe, "drop_last") else math.ceil(n / bs)
    if steps == 0:
        raise ValueError(f"drop_last with batch_size {bs} > {n} training images: no batch to train on")
    seen = min(n, steps * bs)  # the images trained on this epoch
    t0 = time.perf_counter()
    if position is None:
        perm = torch.randperm(n, device=device, generator=run.gen)
        # the epoch's bookkeeping stays on the device: no host sync per step
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        first_bad = torch.full((), -1, device=device, dtype=torch.long)
        start, done_seconds = 0, 0.0
    else:
        keys = ("perm", "loss_sum", "correct", "first_bad")
        perm, loss_sum, correct, first_bad = (position[k].to(device) for k in keys)
        start, done_seconds = position["step"], position["seconds"]
    lr = learning_rate(recipe, epoch)  # both schedules change per epoch
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    off = recipe_value(recipe, "mixup_off_epoch")  # the CCT recipe stops mixing before the end
    mixing = bool(run.mixing) and (off is None or epoch < off)
    for step in range(start, steps):
        # the batch: the next slice of the permutation, augmented
        idx = perm[step * bs : (step + 1) * bs]
        x = aug.augment(take(run.images, idx), recipe, run.gen, run.fill)
        y = target = run.labels[idx]
        # mixup / cutmix: mixed images, soft targets (B, C)
        if mixing:
            x, target = mix(x, y, run.gen, run.cfg["num_classes"], **run.mixing)
        x = model_input(x, run.mean, run.std, run.fmt)
        # forward (bf16 autocast if the engine says so), loss in float32; a compiled model has a
        # graph for full batches only, the last short batch runs uncompiled (no second graph)
        forward = run.step_model if len(idx) == bs else run.model
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=e["amp"]):
            logits, _ = forward(x)
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
        if stop is not None and stop.is_set() and step < steps - 1:
            return EpochPosition(
                step=step + 1, perm=perm.cpu(), loss_sum=loss_sum.cpu(), correct=correct.cpu(),
                first_bad=first_bad.cpu(), seconds=done_seconds + time.perf_counter() - t0,
            )  # fmt: skip
    seconds = done_seconds + time.perf_counter() - t0
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
    with atomic_path(out["history"]) as tmp:  # atomic_path: a full disk is named
        pd.DataFrame(progress["history"]).to_csv(tmp, index=False)
    coll = pd.DataFrame(progress["collapse"])
    norms = np.stack(progress["norms"])
    coll["norm_mean"] = norms.mean(axis=1)
    coll["norm_cv"] = norms.std(axis=1) / norms.mean(axis=1)
    with atomic_path(out["collapse"]) as tmp:
        coll.to_csv(tmp, index=False)
    save_npz(
        out["probes"],
        indices=probe_idx,
        labels=probe_labels,
        norms=norms.astype(np.float32),  # (epochs + 1, P): epoch 0 = initialisation
        sq_change=np.stack(progress["sq_change"]).astype(np.float32),  # (epochs, P): ||z_e - z_{e-1}||^2
        features=progress["last_probe"].numpy().astype(np.float16),  # (P, d) at the end
    )
    save_model(model, cfg, seed, out["model"])
