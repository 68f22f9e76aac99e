"""The paper's downloaded datasets: fetch, check, and read them into the prepared-npz contract.

Raw files are the published archives, exactly as their authors serve them, each checked against
its published MD5 (the values torchvision's dataset classes use; TinyImageNet's is the one in
common use for the cs231n zip). They live at ``{root}/{kind}/{file name}`` and are never unpacked:
``prepare_raw`` reads the images straight out of the ``.tar.gz``/``.zip``/``.mat`` it has just
checked, so every byte that reaches a prepared file is covered by a checksum, no half-extracted
folder can look complete, and a cluster file system is spared ~150,000 small files.

Where a file comes from, first match wins (``download``):
  1. already in place (checked);
  2. ``existing``: a folder holding the file, e.g. a shared torchvision root (linked, not copied);
  3. ``{root}/manual/``: where to put a file downloaded by hand (linked);
  4. the network, with torchvision's ``download_url`` into ``name.part``, renamed once checked.

Prepared splits (``prepare_raw``) are written as they are read: images go into the ``images.npy``
member of the ``.npz`` in chunks of ``CHUNK`` images, so memory stays flat whatever the dataset
size; the file appears under its final name only once complete.

This module is imported by Snakemake at parse time on every cluster node: only the standard
library and numpy at the top; torchvision, scipy and PIL are imported inside the functions.
"""

import csv
import hashlib
import io
import logging
import os
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

RAW_KINDS = ("cifar10", "cifar100", "svhn", "gtsrb", "tinyimagenet")

_GTSRB_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"

# kind -> {file name: (url, md5)}. CIFAR, SVHN, GTSRB: as in torchvision 0.29's CIFAR10, CIFAR100,
# SVHN and GTSRB classes (tests/test_sources.py checks they still agree).
FILES = {
    "cifar10": {
        "cifar-10-python.tar.gz": (
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
        ),
    },
    "cifar100": {
        "cifar-100-python.tar.gz": (
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
        ),
    },
    "svhn": {
        "train_32x32.mat": (
            "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
            "e26dedcc434d2e4c54c9b2d4a06d8373",
        ),
        "test_32x32.mat": (
            "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
            "eb5a983be6a315427106f1b164d9cef3",
        ),
    },
    "gtsrb": {
        "GTSRB-Training_fixed.zip": (
            _GTSRB_URL + "GTSRB-Training_fixed.zip",
            "513f3c79a4c5141765e10e952eaa2478",
        ),
        "GTSRB_Final_Test_Images.zip": (
            _GTSRB_URL + "GTSRB_Final_Test_Images.zip",
            "c7e4e6327067d32654124b0fe9e82185",
        ),
        "GTSRB_Final_Test_GT.zip": (
            _GTSRB_URL + "GTSRB_Final_Test_GT.zip",
            "fe31e9c9270bbcd7b84b7f21a9d9d9e5",
        ),
    },
    "tinyimagenet": {
        "tiny-imagenet-200.zip": (
            "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
            "90528d7ca1a48142e341f4ef8d21d0de",
        ),
    },
}

# Resolution of the prepared images unless asked otherwise (GTSRB's vary: they are resized to 32).
NATIVE_SIZE = {"cifar10": 32, "cifar100": 32, "svhn": 32, "gtsrb": 32, "tinyimagenet": 64}
CHUNK = 1024  # images per write: 12 MB at 64x64, so peak memory does not grow with the dataset


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says where to put a manual download."""


class ChecksumError(ValueError):
    """A file's MD5 differs from the published one."""


class CorruptFileError(ValueError):
    """A checked file cannot be read as what it should be (truncated archive or pickle, missing member)."""


# --- where the raw files are ----------------------------------------------------------------


def _files(kind: str, md5: dict | None = None) -> dict:
    """{file name: (url, md5)} of ``kind``; ``md5`` ({file name: md5}) replaces published checksums
    (config ``download.md5``: a re-packed mirror, or the test suite's fake archives)."""
    if kind not in FILES:
        raise ValueError(f"unknown raw dataset kind {kind!r}; known: {', '.join(RAW_KINDS)}")
    md5 = md5 or {}
    return {name: (url, md5.get(name, digest)) for name, (url, digest) in FILES[kind].items()}


def raw_files(kind: str, root) -> list[str]:
    """The files the download step of ``kind`` produces: ``{root}/{kind}/{published file name}``.

    >>> raw_files("svhn", "resources/datasets")
    ['resources/datasets/svhn/train_32x32.mat', 'resources/datasets/svhn/test_32x32.mat']
    """
    return [str(Path(root) / kind / name) for name in _files(kind)]


def md5sum(path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # an integrity check, not security
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path, expected: str) -> None:
    """Raise ``ChecksumError`` naming ``path`` and the expected MD5 unless they match."""
    actual = md5sum(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: MD5 is {actual}, expected {expected} (the published checksum of {Path(path).name}). "
            "The file is truncated, corrupt or another version: delete it (or replace it with a good copy) "
            "and run again."
        )


# --- download -------------------------------------------------------------------------------


def _copies(kind: str, name: str, root, existing) -> list[Path]:
    """Places a copy of ``name`` may already be: ``existing`` (or its torchvision subfolder), then manual/."""
    places = []
    if existing:
        places += [Path(existing) / name, Path(existing) / kind / name]  # e.g. a torchvision root's gtsrb/
    return places + [Path(root) / "manual" / name]


def _link(target: Path, dest: Path) -> None:
    """Symlink ``dest`` -> ``target`` atomically (a temporary link renamed over ``dest``)."""
    tmp = dest.with_name(f".{dest.name}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(target.resolve(), tmp)
    os.replace(tmp, dest)


def _fetch(url: str, dest: Path, md5: str) -> None:
    """torchvision's ``download_url`` into ``dest.part``; renamed to ``dest`` only once its MD5 matches."""
    from torchvision.datasets.utils import download_url

    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)  # download_url would take a stale .part for a finished download
    try:
        download_url(url, str(dest.parent), part.name, md5=None)
        check_md5(part, md5)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def download(kind: str, root, existing=None, md5: dict | None = None) -> None:
    """Put every published file of ``kind`` at ``{root}/{kind}/``, each checked against its MD5.

    ``existing``: a folder that may hold the files already (a shared cluster copy, a torchvision
    root); a copy found there or in ``{root}/manual/`` is checked and symlinked, never fetched.
    Raises ``DownloadError`` (no network) naming the dataset, each URL and where to put a manual
    download; ``ChecksumError`` for a file that is there but wrong.
    """
    dest_dir = Path(root) / kind
    dest_dir.mkdir(parents=True, exist_ok=True)
    missing = []
    files = _files(kind, md5)
    for name, (_, digest) in files.items():
        dest = dest_dir / name
        if dest.exists():
            check_md5(dest, digest)
            log.info("%s: %s already in place, MD5 ok", kind, dest)
            continue
        copy = next((p for p in _copies(kind, name, root, existing) if p.is_file()), None)
        if copy is not None:
            check_md5(copy, digest)
            _link(copy, dest)
            log.info("%s: linked %s -> %s (MD5 ok)", kind, dest, copy.resolve())
        else:
            missing.append(name)
    for i, name in enumerate(missing):
        url, digest = files[name]
        log.info("%s: downloading %s", kind, url)
        try:
            _fetch(url, dest_dir / name, digest)
        except ChecksumError:
            raise
        except Exception as err:  # no network, proxy, HTTP error, disk: the fix is the same manual step
            todo = "\n".join(f"  {files[n][0]}  ->  {Path(root) / 'manual' / n}" for n in missing[i:])
            raise DownloadError(
                f"could not download dataset {kind!r} from {url}: {err}\n"
                f"Without network access here, download these files on another machine and put them at:\n{todo}\n"
                f"(or set download.existing.{kind} in config.yaml to a folder holding them), then run again."
            ) from err
        log.info("%s: %s downloaded, %d bytes, MD5 %s ok", kind, name, (dest_dir / name).stat().st_size, digest)


# --- images ---------------------------------------------------------------------------------


def _decode(data: bytes, where: str) -> np.ndarray:
    """Encoded image bytes (JPEG, PPM, PNG...) -> uint8 H x W x 3; grayscale and palette become RGB."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as err:
        raise CorruptFileError(f"{where}: cannot decode the image ({err})") from err


def _resize_one(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    from PIL import Image

    # PIL's bilinear filter widens its support by the scale factor when shrinking: antialiased.
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 N x H x W x 3 -> uint8 N x size x size x 3, bilinear with antialiasing (PIL).

    Each image is resized on its own (``PIL.Image.resize`` with ``BILINEAR``, which averages over
    the scaled filter support when shrinking, so detail is not aliased; plain bilinear
    interpolation when enlarging) straight into the preallocated output: memory is the input plus
    the output. Aspect ratio is not kept. Same as torch's ``interpolate(mode="bilinear",
    antialias=True)`` to within one grey level.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = _resize_one(image, size)
    return out


# --- writing a prepared split as it is read -------------------------------------------------


def write_split_stream(out_path, n: int, size: int, samples) -> None:
    """Write ``samples`` (an iterable of (uint8 H x W x 3 image, int label)) to ``out_path`` as .npz.

    The ``.npz`` holds ``images`` (uint8 n x size x size x 3; each image resized to ``size`` unless
    it already has it) and ``labels`` (int64 n), as ``l2ood.data.load_split`` reads them. Images
    are streamed into the zip member in chunks; the file is written under a temporary name and
    renamed when complete, so a failure (or fewer/more than ``n`` samples) leaves nothing behind.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")  # not mkstemp: keep umask's permissions
    try:
        labels = np.empty(n, dtype=np.int64)
        count = 0
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open("images.npy", "w", force_zip64=True) as f:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False}
                np.lib.format.write_array_header_1_0(f, {**header, "shape": (n, size, size, 3)})
                buf = np.empty((CHUNK, size, size, 3), dtype=np.uint8)
                for image, label in samples:
                    if count == n:
                        raise CorruptFileError(f"{out_path}: more than the {n} images listed")
                    buf[count % CHUNK] = _resize_one(image, size)
                    labels[count] = label
                    count += 1
                    if count % CHUNK == 0:
                        f.write(buf.tobytes())
                f.write(buf[: count % CHUNK].tobytes())
            if count != n:
                raise CorruptFileError(f"{out_path}: read {count} images, expected {n}")
            with zf.open("labels.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, labels)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- readers: (number of images, iterator of (image, label)) per kind and split -------------


def _corrupt(path, what, err) -> CorruptFileError:
    return CorruptFileError(
        f"{path}: cannot read {what} ({type(err).__name__}: {err}); the file is truncated or corrupt. "
        "Delete it and run again to fetch a fresh copy."
    )


_CIFAR = {  # kind -> (folder in the archive, members per split, label key, meta member, its class-name key)
    "cifar10": (
        "cifar-10-batches-py",
        {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        "labels",
        "batches.meta",
        "label_names",
    ),
    "cifar100": (
        "cifar-100-python",
        {"train": ["train"], "test": ["test"]},
        "fine_labels",
        "meta",
        "fine_label_names",
    ),
}


def _read_cifar(paths: dict, split: str, kind: str):
    """CIFAR python pickles inside the published .tar.gz: 'data' (N x 3072, CHW), labels, meta."""
    folder, members, key, meta, meta_key = _CIFAR[kind]
    (path,) = paths.values()
    wanted = {f"{folder}/{m}": m for m in members[split] + [meta]}
    found, what = {}, "the archive"
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:  # one pass: a gzip stream cannot seek back
                if member.name in wanted:
                    what = f"member {member.name}"
                    found[wanted[member.name]] = pickle.load(tar.extractfile(member), encoding="latin1")
                    what = "the archive"
    except (
        tarfile.TarError,
        EOFError,
        OSError,
        zlib.error,
        pickle.UnpicklingError,
        ValueError,
        KeyError,
    ) as err:
        raise _corrupt(path, what, err) from err
    for m in wanted.values():
        if m not in found:
            raise CorruptFileError(f"{path}: no member {folder}/{m}; is this the right archive?")
    classes = len(found[meta][meta_key])
    data = [np.asarray(found[m]["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for m in members[split]]
    labels = [np.asarray(found[m][key], dtype=np.int64) for m in members[split]]
    for m, x, y in zip(members[split], data, labels, strict=True):
        if len(x) != len(y) or y.min() < 0 or y.max() >= classes:
            raise CorruptFileError(
                f"{path}: {m} has {len(x)} images and {len(y)} labels, not all in 0..{classes - 1}"
            )
    samples = (
        (img.transpose(1, 2, 0), lab)
        for x, y in zip(data, labels, strict=True)
        for img, lab in zip(x, y, strict=True)
    )
    return sum(len(y) for y in labels), samples


def _read_svhn(paths: dict, split: str):
    """SVHN's MATLAB file: X is 32 x 32 x 3 x N, y is N x 1 with 1..10 where 10 means the digit 0."""
    from scipy.io import loadmat

    path = paths[f"{split}_32x32.mat"]
    try:
        mat = loadmat(path, variable_names=["X", "y"])
        images, labels = mat["X"], mat["y"].astype(np.int64).ravel()
    except Exception as err:
        raise _corrupt(path, "the .mat file", err) from err
    labels[labels == 10] = 0
    if images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise CorruptFileError(f"{path}: X has shape {images.shape} for {len(labels)} labels")
    return len(labels), ((images[..., i], labels[i]) for i in range(len(labels)))


# what reading a member of a truncated or damaged zip raises (KeyError: a missing member)
_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, zlib.error, KeyError)


def _zip_images(path, names_labels):
    """Decode (member name, label) pairs from the zip at ``path`` one at a time."""
    try:
        with zipfile.ZipFile(path) as zf:
            for name, label in names_labels:
                yield _decode(zf.read(name), f"{path}:{name}"), label
    except _ZIP_ERRORS as err:
        raise _corrupt(path, "the zip archive", err) from err


def _zip_names(path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise _corrupt(path, "the zip archive (no central directory)", err) from err


def _read_gtsrb(paths: dict, split: str):
    """GTSRB .ppm images, as torchvision's GTSRB reads them from the unpacked archives.

    train: ``GTSRB/Training/{class:05d}/*.ppm``, label = the folder's class id, in sorted path
    order; test: ``GTSRB/Final_Test/Images/{Filename}`` with ``ClassId`` from ``GT-final_test.csv``
    (semicolon-separated), in the CSV's order.
    """
    if split == "train":
        path = paths["GTSRB-Training_fixed.zip"]
        names = sorted(n for n in _zip_names(path) if n.startswith("GTSRB/Training/") and n.endswith(".ppm"))
        pairs = [(n, int(n.split("/")[2])) for n in names]
    else:
        gt, path = paths["GTSRB_Final_Test_GT.zip"], paths["GTSRB_Final_Test_Images.zip"]
        try:
            with zipfile.ZipFile(gt) as zf:
                text = zf.read("GT-final_test.csv").decode("utf-8")
        except _ZIP_ERRORS as err:
            raise _corrupt(gt, "GT-final_test.csv", err) from err
        rows = csv.DictReader(io.StringIO(text), delimiter=";", skipinitialspace=True)
        pairs = [(f"GTSRB/Final_Test/Images/{r['Filename']}", int(r["ClassId"])) for r in rows]
        absent = sorted(set(n for n, _ in pairs) - set(_zip_names(path)))
        if absent:
            raise CorruptFileError(
                f"{path}: {len(absent)} test images listed in GT-final_test.csv are missing, e.g. {absent[0]}"
            )
    if not pairs:
        raise CorruptFileError(f"{path}: no GTSRB images found")
    return len(pairs), _zip_images(path, pairs)


def _read_tinyimagenet(paths: dict, split: str):
    """TinyImageNet-200 JPEGs inside the cs231n zip; label = index of the wnid in sorted(wnids.txt).

    train: ``train/{wnid}/images/*.JPEG`` in sorted path order (torchvision ImageFolder's order and
    labels); test = the labelled val set: ``val/images/{file}`` with its wnid from
    ``val/val_annotations.txt``, in that file's order.
    """
    (path,) = paths.values()
    top = "tiny-imagenet-200/"
    names = _zip_names(path)
    try:
        with zipfile.ZipFile(path) as zf:
            wnids = sorted(zf.read(top + "wnids.txt").decode().split())
            annotations = zf.read(top + "val/val_annotations.txt").decode() if split == "test" else ""
    except _ZIP_ERRORS as err:
        raise _corrupt(path, "wnids.txt / val/val_annotations.txt", err) from err
    index = {w: i for i, w in enumerate(wnids)}
    if split == "train":
        members = sorted(n for n in names if n.startswith(top + "train/") and n.endswith(".JPEG"))
        pairs = [(n, n.split("/")[2]) for n in members]
    else:
        rows = [line.split("\t") for line in annotations.splitlines() if line.strip()]
        pairs = [(f"{top}val/images/{r[0]}", r[1]) for r in rows]
    unknown = {w for _, w in pairs} - set(index)
    if unknown or not pairs:
        raise CorruptFileError(
            f"{path}: {len(pairs)} {split} images, wnids not in wnids.txt: {sorted(unknown)[:3]}"
        )
    return len(pairs), _zip_images(path, [(n, index[w]) for n, w in pairs])


def _split_files(kind: str, split: str) -> list[str]:
    if kind == "svhn":
        return [f"{split}_32x32.mat"]
    if kind == "gtsrb":
        return (
            ["GTSRB-Training_fixed.zip"]
            if split == "train"
            else ["GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip"]
        )
    return list(_files(kind))


def prepare_raw(kind: str, root, split: str, out_path, size: int | None = None, md5: dict | None = None) -> None:
    """Read ``split`` ("train" or "test") of ``kind`` from its raw files into ``out_path`` (.npz).

    Checks each file's MD5 first, then streams: images (uint8 N x size x size x 3, RGB) and
    labels (int64). ``size`` defaults to the native resolution (GTSRB: 32, its images vary);
    other sizes are made with ``resize_images``' method. TinyImageNet's "test" is its labelled
    val set.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    paths = {name: Path(root) / kind / name for name in _split_files(kind, split)}
    for name, path in paths.items():
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run the download step (`snakemake {path}`) first")
        check_md5(path, _files(kind, md5)[name][1])
    if kind in ("cifar10", "cifar100"):
        n, samples = _read_cifar(paths, split, kind)
    else:
        n, samples = {"svhn": _read_svhn, "gtsrb": _read_gtsrb, "tinyimagenet": _read_tinyimagenet}[kind](
            paths, split
        )
    size = size or NATIVE_SIZE[kind]
    write_split_stream(out_path, n, size, samples)
    log.info("%s/%s: %d images at %dx%d -> %s", kind, split, n, size, size, out_path)
