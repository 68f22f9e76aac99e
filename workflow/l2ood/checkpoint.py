"""A training run's identity and its resume checkpoint (``l2ood.train.fit`` writes and reads it).

A checkpoint holds the model, the optimizer, every RNG state and the run's progress, in tensors
and plain values only (``torch.load(weights_only=True)`` reads nothing else). Only a checkpoint
of the same ``run_identity`` (config, seed, the engine's numeric options, the training data's
content) is resumed; an unreadable one is moved aside (``UNREADABLE``).
"""

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .engine import NUMERIC_ENGINE_OPTIONS
from .fileio import atomic_path, load_error

log = logging.getLogger("l2ood.train")  # the training job's lines: the resume is part of its story

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


def save_model(model: torch.nn.Module, cfg: dict, seed: int, path: Path) -> None:
    """A run's ``model.pt``: ``{"state_dict", "config", "seed"}``, what ``l2ood.inference.load_model``
    reads (written by training, and by ``l2ood.weights`` for an external checkpoint)."""
    atomic_torch_save({"state_dict": model.state_dict(), "config": cfg, "seed": seed}, Path(path))


#: what an unreadable checkpoint is renamed to (``CHECKPOINT`` + this): kept for a look, never read
UNREADABLE = ".unreadable"


def load_checkpoint(path: Path, run) -> dict | None:
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


def save_checkpoint(path: Path, run, progress: dict) -> None:
    """Everything ``load_checkpoint`` needs to continue bit-identically, written atomically, in
    tensors and plain values only (``torch.load(weights_only=True)`` reads nothing else)."""
    state = {**progress, **{k: [torch.from_numpy(a) for a in progress[k]] for k in ("norms", "sq_change")}}
    atomic_torch_save(
        {"digest": run.digest, "identity": run.identity, "model": run.model.state_dict(),
         "optimizer": run.optimizer.state_dict(), "rng": rng_states(run.gen), "state": state},
        path,
    )  # fmt: skip

