"""Prepared data: the uint8 arrays every training and inference step reads.

Contract (``l2ood.splits.check_split``): ``resources/prepared/{dataset}/{split}.npz`` holds
``images`` (uint8, N x H x W x 3) and ``labels`` (int64, N). Written atomically (temporary file,
then rename: ``l2ood.fileio.atomic_path``) so a failed step never leaves a file that looks complete.

This module prepares every data set kind of the config: the demo's (scikit-learn's digits), the
paper's two synthetic OoD sets (Gaussian noise, pixel-scrambled images), resized copies, and the
downloaded datasets (``prepare_raw``, from the files ``l2ood.sources`` declares).
"""

import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from . import own_data, readers, sources
from .download import check_md5, md5sum
from .fileio import atomic_path
from .sources import CorruptFileError
from .splits import check_split, record_path, resize_images, write_split_stream

log = logging.getLogger(__name__)


def save_split(path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``images``/``labels`` to ``path`` (.npz) atomically, after checking the contract."""
    images, labels = np.asarray(images), np.asarray(labels)
    check_split(images, labels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels.astype(np.int64))


def load_split(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a prepared split; a clear error if it is missing or breaks the contract."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"prepared split {path} does not exist; build it with `snakemake {path}`")
    try:
        with np.load(path) as z:
            images, labels = z["images"], z["labels"]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise CorruptFileError(
            f"{path} is not a complete prepared split ({type(err).__name__}: {err}): it was cut short or is "
            f"corrupt. Delete it (rm {path}) and run again; it is prepared again from the downloads."
        ) from err
    check_split(images, labels, where=str(path))
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


def gaussian_noise(n: int, height: int, width: int, seed: int, mean: float, std: float) -> np.ndarray:
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


# --- the downloaded datasets ----------------------------------------------------------------


def prepare_raw(kind: str, paths, split: str, out_path, size: int | None = None, md5: dict | None = None) -> None:
    """Read ``split`` ("train" or "test") of ``kind`` from its raw files into ``out_path`` (.npz).

    ``paths``: the raw files, where the download step put them (``l2ood.sources.raw_files``);
    the split's own files (``sources.split_files``) are picked out of them by name. Checks each
    of those files' MD5 first (``md5``: config ``download.md5``'s overrides), then streams:
    images (uint8 N x size x size x 3, RGB) and labels (int64). ``size`` defaults to the native
    resolution (GTSRB: 32, its images vary); other sizes are made with ``resize_images``' method.
    TinyImageNet's "test" is its labelled val set.
    """
    given = {Path(p).name: Path(p) for p in paths}
    needed = sources.split_files(kind, split)
    absent = [name for name in needed if name not in given]
    if absent:
        raise ValueError(
            f"{kind}/{split} is read from {', '.join(needed)}; {', '.join(absent)} is not among the inputs given "
            f"({', '.join(map(str, paths)) or 'none'}): pass the files l2ood.sources.raw_files({kind!r}, root) names"
        )
    published = sources.files(kind, md5)
    for name in needed:
        path = given[name]
        if not path.exists():
            verified = path.parent / sources.VERIFIED
            raise FileNotFoundError(
                f"{path} is missing: run the download step again (`snakemake --force {verified}`), or put the file there"
            )
        check_md5(path, published[name][1])
    n, samples = readers.read(kind, split, {name: given[name] for name in needed})
    size = size or sources.NATIVE_SIZE[kind]
    write_split_stream(out_path, n, size, samples)
    log.info("%s/%s: %d images at %dx%d -> %s", kind, split, n, size, size, out_path)


# --- one entry point for the prepare rule ----------------------------------------------------

GENERATED_KINDS = ("digits", "gaussian", "scrambled", "resize")
#: the values a data set's spec may leave out (config.yaml states them for the paper's sets)
DEFAULTS = {"seed": 0, "test_fraction": 0, "mean": 127.5, "std": 63.75}


def prepare(spec: dict, split: str, out, inputs=(), md5=None) -> None:
    """Build ``out`` (one prepared split) from a data set ``spec`` of the config.

    ``inputs``: the rule's declared inputs: the prepared split(s) a derived set reads
    (``like``/``of``), or the raw files; ``md5``: checksum overrides of the raw files (config
    ``download.md5``). Synthetic OoD sets (gaussian, scrambled) have only a ``test`` split; their
    labels are -1 (gaussian) or the source images' labels (scrambled).
    """
    kind, spec = spec["kind"], {**DEFAULTS, **spec}
    if kind == "digits":
        splits = digits_splits(spec["classes"], spec["test_fraction"], spec["seed"])
        if split not in splits:
            raise ValueError(f"digits set with test_fraction 0 is an OoD set: it has only a test split, not {split!r}")
        save_split(out, *splits[split])
    elif kind in ("gaussian", "scrambled"):
        if split != "test":
            raise ValueError(f"{kind} images are an OoD test set: there is no {split!r} split")
        ref_images, ref_labels = load_split(inputs[0])
        if kind == "gaussian":
            n, h, w = ref_images.shape[:3]
            noise = gaussian_noise(n, h, w, spec["seed"], spec["mean"], spec["std"])
            save_split(out, noise, np.full(n, -1, dtype=np.int64))
        else:
            save_split(out, scramble_pixels(ref_images, spec["seed"]), ref_labels)
    elif kind == "resize":
        images, labels = load_split(inputs[0])
        save_split(out, resize_images(images, spec["image_size"]), labels)
    elif kind in own_data.KINDS:
        save_split(out, *own_data.prepare_own(spec, split))
    else:
        prepare_raw(kind, inputs, split, out, size=spec["image_size"], md5=md5)


# --- the record beside each prepared split, and making a deleted split again -------------------


def write_record(path, spec: dict, md5: dict | None = None) -> None:
    """Write the record of the prepared split ``path`` (``splits.record_path``): the MD5 of its bytes,
    the data set's values that made it (``spec``) and the replaced raw MD5s (``md5``). Deterministic:
    made again with the same bytes, the record is the same file, and nothing that reads it reruns."""
    record = {"file": Path(path).name, "md5": md5sum(path), "prepare": spec, "raw_md5": dict(md5 or {})}
    with atomic_path(record_path(path)) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_record(path) -> dict | None:
    """The record of the prepared split ``path``; None if there is none or it cannot be read."""
    try:
        return json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        return None


def restore(path, spec: dict, split: str, inputs=(), md5=None) -> bool | None:
    """Make the prepared split ``path`` again when it was deleted by hand and its record is still there
    with the same values (``spec``, ``md5``): ``True`` if the bytes match the recorded MD5 (what read
    the split is still valid), ``False`` if not (the record is removed, so the workflow makes the
    split again and reruns what read it), ``None`` if there is nothing to restore."""
    path = Path(path)
    record = read_record(path)
    if path.exists() or record is None or (record.get("prepare"), record.get("raw_md5")) != (spec, dict(md5 or {})):
        return None
    prepare(spec, split, path, inputs=inputs, md5=md5)
    if md5sum(path) == record.get("md5"):
        return True
    record_path(path).unlink()
    return False
