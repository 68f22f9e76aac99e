"""Prepared data: the uint8 arrays every training and inference step reads.

Contract: ``resources/prepared/{dataset}/{split}.npz`` holds ``images`` (uint8, N x H x W x 3)
and ``labels`` (int64, N). Written atomically (temporary file, then rename) so a failed step
never leaves a file that looks complete.

This module prepares the demo's dataset (scikit-learn's digits) and the paper's two synthetic
OoD sets (Gaussian noise, pixel-scrambled images); the downloaded datasets are read by
``l2ood.sources``.
"""

import os
from pathlib import Path

import numpy as np


def save_split(path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``images``/``labels`` to ``path`` (.npz) atomically, after checking the contract."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # not mkstemp: its 0600 hides files on shared disks
    try:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels.astype(np.int64))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_split(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a prepared split; a clear error if it is missing or breaks the contract."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"prepared split {path} does not exist; build it with `snakemake {path}`")
    with np.load(path) as z:
        images, labels = z["images"], z["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{path}: images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
    return images, labels.astype(np.int64)


# --- the demo: scikit-learn's digits ---------------------------------------------------------


def digits_splits(classes, test_fraction: float, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 1,797 8x8 digits restricted to ``classes``, as RGB uint8.

    Pixel values 0..16 are scaled to 0..255 (rounded) and repeated over three channels; labels
    are re-indexed 0..len(classes)-1 in the order given. ``test_fraction`` > 0 returns a fixed,
    stratified ``train``/``test`` split; 0 returns every image as ``test`` (an OoD set).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    keep = np.isin(bunch.target, classes)
    gray = np.rint(bunch.images[keep] * (255.0 / 16.0)).astype(np.uint8)
    images = np.repeat(gray[..., None], 3, axis=-1)
    remap = {c: i for i, c in enumerate(classes)}
    labels = np.array([remap[t] for t in bunch.target[keep]], dtype=np.int64)
    if test_fraction == 0:
        return {"test": (images, labels)}
    itr, ite = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed)
    return {"train": (images[itr], labels[itr]), "test": (images[ite], labels[ite])}


# --- synthetic OoD sets (the paper's Figure 5) -----------------------------------------------


def gaussian_noise(n: int, height: int, width: int, seed: int, mean: float = 127.5, std: float = 63.75) -> np.ndarray:
    """``n`` images of i.i.d. Gaussian pixels N(mean, std^2), rounded and clipped to 0..255.

    Same arguments, same bytes (numpy's PCG64 generator seeded with ``seed``).
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for start in range(0, n, 4096):  # in chunks: float64 noise for 10k CIFAR images would be 250 MB
        stop = min(n, start + 4096)
        x = rng.normal(mean, std, size=(stop - start, height, width, 3))
        out[start:stop] = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out


def scramble_pixels(images: np.ndarray, seed: int) -> np.ndarray:
    """Each image's pixels permuted independently (a pixel keeps its three channels together)."""
    rng = np.random.default_rng(seed)
    n, h, w, c = images.shape
    flat = images.reshape(n, h * w, c)
    perm = np.argsort(rng.random((n, h * w)), axis=1)
    return np.take_along_axis(flat, perm[..., None], axis=1).reshape(n, h, w, c)


# --- one entry point for the prepare rule ----------------------------------------------------

GENERATED_KINDS = ("digits", "gaussian", "scrambled", "resize")


def prepare(spec: dict, split: str, out, inputs=(), raw_root: str = "resources/datasets", md5=None) -> None:
    """Build ``out`` (one prepared split) from a data set ``spec`` of the config.

    ``inputs``: the prepared split(s) a derived set reads (``like``/``of``), or the raw files;
    ``md5``: checksum overrides of the raw files (config ``download.md5``).
    Synthetic OoD sets (gaussian, scrambled) have only a ``test`` split; their labels are -1
    (gaussian) or the source images' labels (scrambled).
    """
    kind = spec["kind"]
    if kind == "digits":
        splits = digits_splits(spec["classes"], spec.get("test_fraction", 0), spec.get("seed", 0))
        if split not in splits:
            raise ValueError(f"digits set with test_fraction 0 is an OoD set: it has only a test split, not {split!r}")
        save_split(out, *splits[split])
    elif kind in ("gaussian", "scrambled"):
        if split != "test":
            raise ValueError(f"{kind} images are an OoD test set: there is no {split!r} split")
        ref_images, ref_labels = load_split(inputs[0])
        if kind == "gaussian":
            n, h, w = ref_images.shape[:3]
            noise = gaussian_noise(n, h, w, spec.get("seed", 0), spec.get("mean", 127.5), spec.get("std", 63.75))
            save_split(out, noise, np.full(n, -1, dtype=np.int64))
        else:
            save_split(out, scramble_pixels(ref_images, spec.get("seed", 0)), ref_labels)
    elif kind == "resize":
        from .sources import resize_images

        images, labels = load_split(inputs[0])
        save_split(out, resize_images(images, spec["image_size"]), labels)
    else:
        from .sources import prepare_raw

        prepare_raw(kind, raw_root, split, out, size=spec["image_size"], md5=md5)
