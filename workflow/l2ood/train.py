"""The training engine: one loop for every model, recipe and device.

Read top to bottom. ``fit`` sets a run up (``setup``: the model, the optimizer and the uint8
training set on the device, moved once), resumes it from its checkpoint if it has one, probes
the initial features, then each epoch trains (``train_epoch``: shuffle, augment on the device with
``l2ood.augment``, step the optimizer), records the probes (``probe_features``, ``record_probe``)
and writes a checkpoint when one is due; at the end ``write_run`` writes the run's files. ``infer_sets`` gives
every test image's feature norm and logits. The probes and inference share one batched forward
pass, ``batched_forward``.

Resumable: a checkpoint (model, optimizer, every RNG state, history, probes, epoch) is written
atomically to ``<out_dir>/checkpoint.pt`` (``l2ood.layout.CHECKPOINT``), a path Snakemake does not
declare (it deletes a failed job's declared outputs): at the end of an epoch once
``checkpoint_minutes`` have passed since the last one, and at SIGTERM (what SLURM sends before it
preempts or times out a job), then mid-epoch, with the epoch's position (``EpochPosition``). A
restarted job resumes from it; on CPU the result is bit-identical to an uninterrupted run. Only
a checkpoint of the same ``run_identity`` (config, seed, the engine's numeric options, the
training data's content) is resumed; the checkpoint and ``model.pt`` hold tensors and plain values
only and are loaded with ``weights_only=True``, and an unreadable checkpoint is moved aside.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from . import augment as aug
from .collapse import collapse_measures
from .config import NUMERIC_ENGINE_OPTIONS
from .fileio import atomic_path, load_error, reading, remove_stale_temporaries, save_npz
from .layout import CHECKPOINT, TRAIN_OUTPUTS
from .losses import build_loss
from .mix import mix
from .models import build_model

log = logging.getLogger("l2ood.train")

# The version of what training computes. Bump it with any change to this engine, the models,
# the losses or the augmentations that changes the numbers a run produces: it is part of every
# run's params, so the bump retrains every model (and a mere refactor, which does not bump it,
# retrains none). tests/test_rerun.py fails when those files change and this stays the same;
# tests/training_code.sha256 says how to record a change that leaves the numbers alone.
# 2: the collapse measures (collapse.csv) use the sample std for equinormality (ddof=1, as Papyan et
# al.), and inference runs under the engine's TF32 and determinism flags (GPU outputs change).
TRAINING_CODE_VERSION = 2

# The engine's options and their defaults: how training and inference run. Those that change the
# numbers (l2ood.config.NUMERIC_ENGINE_OPTIONS: device, amp, tf32, compile, compile_mode, channels_last,
# deterministic) are part of the train rule's params; the rest rerun nothing. This block is the one place the
# defaults are set (read from this source at parse time): config.yaml's `engine:` changes them.
ENGINE_DEFAULTS = {
    "device": "auto",  # "auto": cuda if available, else cpu
    # bf16 autocast: off, so the paper study trains in float32 as DDU and LogitNorm do (the CCT
    # authors trained with amp). No GPU has measured yet what bf16 does to these runs' losses and
    # feature norms: benchmarks/gpu_check.py compares the losses; turn it on once that shows no
    # difference that matters. (On a CPU without native bf16 it is also 17x slower.)
    "amp": False,
    # TF32 matmuls and convolutions (10-bit mantissa products, float32 accumulation); "auto" = on
    # CUDA. Most of bf16's speed on an H100 at float32's range; cuDNN convolutions use it by default.
    "tf32": "auto",
    "compile": False,  # torch.compile the training step; costs 50-80 s on CPU for no gain, so opt-in
    # torch.compile's mode: default | reduce-overhead (CUDA graphs) | max-autotune (+ kernel search)
    # | max-autotune-no-cudagraphs. The graph is compiled for full batches only (dynamic=False);
    # an epoch's last, shorter batch runs uncompiled, so it forces no second graph and no image is
    # dropped (the same training as without compile).
    "compile_mode": "default",
    # TORCHINDUCTOR_CACHE_DIR (unless set): one compile cache for every job of a run, relative to
    # the working directory (the workflow's, shared by the nodes of a cluster), so 210 jobs do not
    # each compile the same graphs again.
    "compile_cache_dir": "results/.cache/torchinductor",
    "channels_last": "auto",  # NHWC memory format; "auto" = on CUDA (tensor-core friendly)
    "log_every": 50,  # read the loss (a host sync) every N steps only
    # minutes between resume checkpoints, written at the end of an epoch (0 = after every epoch);
    # a SIGTERM (preemption, time limit) writes one at once. A ResNet50 checkpoint is ~170 MiB:
    # one per ~1 s epoch would cost 15-30 % of the run and ~5 TB of writes for the paper.
    "checkpoint_minutes": 10,
    "deterministic": False,  # torch.use_deterministic_algorithms; CPU runs are deterministic anyway
    "infer_batch_size": 1024,  # images per forward pass in inference and in the per-epoch probes
    # GPU jobs sharing one GPU on a workstation (l2ood.gpus; `--resources gpu=` then counts
    # GPUs x jobs_per_gpu). LogitNorm+ and CCT at batch 128 leave an H100 mostly idle.
    "jobs_per_gpu": 1,
}

#: values of engine.compile_mode (torch.compile's modes)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

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
    for key in ("amp", "tf32", "channels_last"):
        if e[key] == "auto":
            e[key] = on_cuda
    if e["compile_mode"] not in COMPILE_MODES:
        raise ValueError(f"engine.compile_mode {e['compile_mode']!r}: choose one of {', '.join(COMPILE_MODES)}")
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
    kernels = optimizer_kernels(next(model.parameters()).device.type)
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe["lr"],
            momentum=recipe["momentum"],
            weight_decay=recipe["weight_decay"],
            nesterov=recipe["nesterov"],
            **kernels,
        )
    return torch.optim.AdamW(
        params, lr=recipe["lr"], betas=tuple(recipe["betas"]), weight_decay=recipe["weight_decay"], **kernels
    )


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


def optimizer_kernels(device_type: str) -> dict:
    """The optimizer's kernel choice for parameters on ``device_type``: one fused kernel per step
    on CUDA (the default there, foreach, still launches a few kernels per parameter group and
    reads AdamW's CPU step counters with a host sync per tensor); PyTorch's default elsewhere."""
    return {"fused": True} if device_type == "cuda" else {}


def run_identity(cfg: dict, seed: int, engine: dict | None = None, data: str | None = None) -> dict:
    """Everything a run's model depends on: the checkpoint stores it, and one of another identity is
    not resumed. ``cfg`` (``l2ood.config.resolve_run``'s, with the thread count and
    ``TRAINING_CODE_VERSION``), the seed, the engine's numeric options (``NUMERIC_ENGINE_OPTIONS``
    of a resolved engine) and ``data``, the content digest of the training split (``data_digest``).
    Plain values only, so that ``torch.load(weights_only=True)`` reads it."""
    numerics = None if engine is None else {k: engine[k] for k in NUMERIC_ENGINE_OPTIONS}
    return {"config": cfg, "seed": seed, "engine": numerics, "data": data}


def config_digest(cfg: dict, seed: int, engine: dict | None = None, data: str | None = None) -> str:
    """The digest of ``run_identity``."""
    return identity_digest(run_identity(cfg, seed, engine, data))


def identity_digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """The content digest of a training split (its arrays as the job read them from the prepared file):
    a split prepared again with another seed or test fraction has another one."""
    h = hashlib.sha256()
    for a in (images, labels):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str} {a.shape};".encode())
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()[:16]


def rng_states(gen: torch.Generator) -> dict:
    """Every RNG state of a run, as tensors and plain values (``torch.load(weights_only=True)`` reads
    no numpy array: numpy's state is stored as a dict with its key as an int64 tensor)."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "data": gen.get_state(),
    }  # fmt: skip


def set_rng_states(states: dict, gen: torch.Generator) -> None:
    """Restore ``rng_states``; every torch state must be a CPU ByteTensor (the setters take no other)."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    gen.set_state(states["data"])


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` through a temporary file: a kill mid-write leaves the previous file intact.

    Through a file object: a full disk then raises Python's error, which ``atomic_path`` names the
    path in (``torch.save`` to a path says "unexpected pos 6144 vs 6040")."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def probe_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A fixed, class-stratified subset of training images for the per-epoch probes."""
    size = min(size, len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = np.full(len(classes), size // len(classes))
    per[: size - per.sum()] += 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, per)]
    return np.sort(np.concatenate(picks))


def to_device_images(
    images: np.ndarray, device: torch.device, fmt: torch.memory_format = torch.contiguous_format
) -> torch.Tensor:
    """uint8 N x H x W x 3 (numpy) -> uint8 (N, 3, H, W) on ``device``, moved once, in layout ``fmt``.

    channels-last is the layout the arrays come in (NHWC): the tensor is a view of the moved
    array, no copy; contiguous (NCHW) is one copy.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)
    return x.contiguous(memory_format=fmt)


def take(images: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``images[idx]`` along the first axis, keeping the layout (index_select: 20x faster than
    ``images[idx]`` on uint8; it would turn a channels-last tensor contiguous, so a channels-last
    one is gathered as the N x H x W x C array it is)."""
    if images.is_contiguous():
        return images.index_select(0, idx)
    return images.permute(0, 2, 3, 1).index_select(0, idx).permute(0, 3, 1, 2)


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


class EpochClock:
    """Elapsed time and ETA of the epochs this process trains, and which epoch lines reach the terminal.

    Every epoch's line goes to the job's log file; the terminal (a record with ``terminal=True``,
    ``workflow/scripts/_common.py``) gets the first and the last epoch, and between them one line about
    every tenth of the run but at most one per ``TERMINAL_SECONDS``: two demo jobs training at once
    print a few lines each, not one per epoch.
    """

    TERMINAL_SECONDS = 30.0

    def __init__(self, start_epoch: int, epochs: int):
        self.start, self.epochs = start_epoch, epochs
        self.t0 = self.shown_at = time.perf_counter()
        self.shown_epoch = start_epoch

    def tick(self, epoch: int) -> tuple[float, float, bool]:
        """(elapsed s, ETA s, show on the terminal) after ``epoch`` (1-based) of ``epochs``."""
        now = time.perf_counter()
        elapsed = now - self.t0
        eta = elapsed / (epoch - self.start) * (self.epochs - epoch)
        due = epoch - self.shown_epoch >= max(1, self.epochs // 10) and now - self.shown_at >= self.TERMINAL_SECONDS
        show = epoch == self.start + 1 or epoch == self.epochs or due
        if show:
            self.shown_at, self.shown_epoch = now, epoch
        return elapsed, eta, show


def _hms(seconds: float) -> str:
    """``0:07:05``: hours, minutes, seconds."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def log_epoch(name: str, seed: int, row: dict, epochs: int, nc1: float, clock: EpochClock) -> None:
    """One line per epoch naming the run and seed: ``run seed 0: epoch 12/60  loss ... ETA 0:00:41``."""
    elapsed, eta, show = clock.tick(row["epoch"])
    log.info(
        "%s seed %d: epoch %d/%d  loss %.4f  acc %.4f  lr %.4g  %.1f s  %.0f img/s  probe NC1 %.3g  elapsed %s  ETA %s",
        name, seed, row["epoch"], epochs, row["loss"], row["accuracy"], row["lr"], row["seconds"], row["images_per_s"],
        nc1, _hms(elapsed), _hms(eta), extra={"terminal": show},
    )  # fmt: skip


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
    loss_fn = build_loss(**recipe.get("loss", {"name": "ce"}))
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


#: what an unreadable checkpoint is renamed to (``CHECKPOINT`` + this): kept for a look, never read
UNREADABLE = ".unreadable"


def load_checkpoint(path: Path, run: Run) -> dict | None:
    """Resume from ``path``: load model, optimizer and RNG states into ``run`` and return the
    saved progress; None if there is no checkpoint, or it belongs to another run identity
    (``run_identity``: config, seed, engine numerics, training data), or it cannot be read.

    Each None but the first is said in the log. A checkpoint of another identity is left for this
    run's first checkpoint to replace; an unreadable one (cut short, written by an older version
    of this package, or a pickle that would run code: it is loaded with ``weights_only=True``) is
    renamed to ``<path>.unreadable``, so that no retry meets it again.
    """
    if not path.exists():
        return None
    # To the CPU, whatever the device: the RNG setters take CPU ByteTensors only (a CUDA run
    # mapping the file to its GPU crashed at every resume). The model copies its weights to its
    # device; the optimizer moves its state next to each parameter, except the step counters of
    # a non-fused AdamW, which PyTorch keeps on the CPU.
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        digest = ckpt["digest"]
    except MemoryError:  # the machine's trouble, not the file's
        raise
    except Exception as err:  # whatever is wrong with the file, training starts afresh (it is kept)
        aside = path.with_name(path.name + UNREADABLE)
        os.replace(path, aside)
        log.warning("cannot resume from %s: %s; moved it to %s, training starts from epoch 1",
                    path, load_error(err), aside.name)  # fmt: skip
        return None
    if digest != run.digest:
        log.warning("not resuming %s: its %s; training starts from epoch 1 (its first checkpoint replaces it)",
                    path, identity_differences(ckpt.get("identity"), run.identity))  # fmt: skip
        return None
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    set_rng_states(ckpt["rng"], run.gen)
    progress = ckpt["state"]
    for key in ("norms", "sq_change"):  # stored as tensors (weights_only), kept as numpy arrays
        progress[key] = [t.numpy() for t in progress[key]]
    where = f"epoch {progress['epoch']}"
    if "position" in progress:
        where += f", step {progress['position']['step']} of epoch {progress['epoch'] + 1}"
    epochs = run.recipe["epochs"]
    log.info("resumed from %s at %s of %d", path, where, epochs, extra={"terminal": True})
    return progress


def identity_differences(saved: dict | None, now: dict) -> str:
    """How a checkpoint's ``run_identity`` differs from this run's, in words:
    ``engine differs: amp False, now True``."""
    if not isinstance(saved, dict):
        return "run identity is not recorded (written by an older version of this package)"
    out = []
    for key, what in (("config", "config"), ("seed", "seed"), ("engine", "engine"), ("data", "training data")):
        old, new = saved.get(key), now[key]
        if old == new:
            continue
        if key == "data":
            out.append("training data differ (another prepared split: its content digest changed)")
        else:
            out.append(f"{what} differs: " + ", ".join(_changed(old, new, "")))
    return "; ".join(out) or "digest differs"


def _changed(old, new, where: str) -> list[str]:
    """``["recipe.lr 0.1, now 0.2", ...]``: the values that differ between two nested dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new), key=str)
        return [c for k in keys for c in _changed(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))]
    return [] if old == new else [f"{where} {old!r}, now {new!r}".lstrip()]


def save_checkpoint(path: Path, run: Run, progress: dict) -> None:
    """Everything ``load_checkpoint`` needs to continue bit-identically, written atomically, in
    tensors and plain values only (``torch.load(weights_only=True)`` reads nothing else)."""
    state = {**progress, **{k: [torch.from_numpy(a) for a in progress[k]] for k in ("norms", "sq_change")}}
    atomic_torch_save(
        {"digest": run.digest, "identity": run.identity, "model": run.model.state_dict(),
         "optimizer": run.optimizer.state_dict(), "rng": rng_states(run.gen), "state": state},
        path,
    )  # fmt: skip


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
    steps = n // bs if recipe.get("drop_last", False) else math.ceil(n / bs)
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
    mixing = bool(run.mixing) and epoch < recipe.get("mixup_off_epoch", recipe["epochs"])  # the CCT recipe stops it
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
    atomic_torch_save({"state_dict": model.state_dict(), "config": cfg, "seed": seed}, out["model"])


# --- inference --------------------------------------------------------------------------------


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


def infer(model_path, images: np.ndarray, labels: np.ndarray, engine: dict | None = None) -> dict:
    """``infer_sets`` for one set of images."""
    return infer_sets(model_path, {"images": (images, labels)}, engine)["images"]


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
