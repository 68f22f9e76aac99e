"""Read a split of a raw dataset kind straight out of its published archives.

``read(kind, split, paths)`` returns (number of images, iterator of (uint8 H x W x 3 RGB image,
int label)); the images are decoded one at a time as the iterator is consumed, so a reader holds
no more than its archive's index (CIFAR: its pickles, 150 MB). A truncated or damaged file, or
one that lacks a member the layout needs, raises ``CorruptFileError`` naming it.

The file layouts are documented in ``docs/datasets.md`` ("How each dataset is read") and match
torchvision's own readers (``tests/test_sources.py`` compares them). scipy and PIL are imported
inside the functions.
"""

import csv
import gzip
import io
import pickle
import tarfile
import zipfile
import zlib

import numpy as np

from .sources import CorruptFileError


def read(kind: str, split: str, paths: dict):
    """(n, samples) of ``split`` ("train" or "test") of ``kind``; ``paths``: {published file name: path}
    of the files ``l2ood.sources.split_files(kind, split)`` names. TinyImageNet's "test" is its
    labelled val set."""
    if kind in _CIFAR:
        return _read_cifar(paths, split, kind)
    readers = {"svhn": _read_svhn, "gtsrb": _read_gtsrb, "tinyimagenet": _read_tinyimagenet, "mnist": _read_mnist,
               "dtd": _read_dtd, "places365": _read_places365}  # fmt: skip
    return readers[kind](paths, split)


def _decode(data: bytes, where: str) -> np.ndarray:
    """Encoded image bytes (JPEG, PPM, PNG...) -> uint8 H x W x 3; grayscale and palette become RGB."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as err:
        raise CorruptFileError(f"{where}: cannot decode the image ({err})") from err


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
        absent = sorted({n for n, _ in pairs} - set(_zip_names(path)))
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



def _idx(path, magic: int, dims: int) -> np.ndarray:
    """An MNIST IDX file (gzip): big-endian int32 magic and ``dims`` sizes, then uint8 values."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
        head = np.frombuffer(data[: 4 * (1 + dims)], dtype=">i4")
        if head[0] != magic:
            raise ValueError(f"magic number {head[0]}, expected {magic}")
        shape = tuple(int(v) for v in head[1:])
        return np.frombuffer(data, dtype=np.uint8, offset=4 * (1 + dims)).reshape(shape)
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise _corrupt(path, "the IDX file", err) from err


def _read_mnist(paths: dict, split: str):
    """MNIST's test set from the IDX files (as torchvision's MNIST): 28 x 28 gray, replicated to RGB."""
    images = _idx(paths["t10k-images-idx3-ubyte.gz"], 2051, 3)
    labels = _idx(paths["t10k-labels-idx1-ubyte.gz"], 2049, 1).astype(np.int64)
    if len(images) != len(labels):
        raise CorruptFileError(f"MNIST: {len(images)} images but {len(labels)} labels")
    return len(labels), ((np.repeat(images[i][..., None], 3, axis=2), labels[i]) for i in range(len(labels)))


def _center_square(image: np.ndarray) -> np.ndarray:
    """The centred square of side min(H, W): resized afterwards, as OpenOOD's Resize + CenterCrop."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def _read_dtd(paths: dict, split: str):
    """All 5,640 DTD images (``dtd/images/{class}/*.jpg``, the union of its train, val and test lists,
    as OpenOOD's Textures), in archive order; label = the class's index in the sorted class names;
    each image centre-cropped to a square. Two passes over the gzip stream: the count, then the images."""
    (path,) = paths.values()

    def members(tar):
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 4 and parts[:2] == ["dtd", "images"] and parts[3].endswith(".jpg"):
                yield m, parts[2]

    try:
        with tarfile.open(path, "r:gz") as tar:
            classes = [c for _, c in members(tar)]
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise _corrupt(path, "the archive", err) from err
    if not classes:
        raise CorruptFileError(f"{path}: no dtd/images/<class>/*.jpg members; is this dtd-r1.0.1.tar.gz?")
    index = {c: i for i, c in enumerate(sorted(set(classes)))}

    def samples():
        try:
            with tarfile.open(path, "r:gz") as tar:
                for m, c in members(tar):
                    yield _center_square(_decode(tar.extractfile(m).read(), f"{path}:{m.name}")), index[c]
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise _corrupt(path, "the archive", err) from err

    return len(classes), samples()


def _read_places365(paths: dict, split: str):
    """Places365-Standard's 36,500 validation images at 256 x 256 (``val_256.tar``), in the order and with
    the labels of ``places365_val.txt`` from the devkit (``filelist_places365-standard.tar``), as
    torchvision's Places365(split="val", small=True)."""
    devkit, path = paths["filelist_places365-standard.tar"], paths["val_256.tar"]
    try:
        with tarfile.open(devkit) as tar:
            member = next((m for m in tar if m.name.split("/")[-1] == "places365_val.txt"), None)
            if member is None:
                raise CorruptFileError(f"{devkit}: no places365_val.txt; is this filelist_places365-standard.tar?")
            lines = tar.extractfile(member).read().decode().split("\n")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise _corrupt(devkit, "places365_val.txt", err) from err
    listed = [(name.lstrip("/"), int(label)) for name, label in (line.split() for line in lines if line.strip())]
    try:
        with tarfile.open(path) as tar:  # uncompressed: the index is read once, members are seeked to
            found = {m.name.split("/")[-1]: m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, EOFError, OSError) as err:
        raise _corrupt(path, "the archive", err) from err
    absent = [name for name, _ in listed if name not in found]
    if absent or not listed:
        raise CorruptFileError(f"{path}: {len(absent)} of the {len(listed)} listed images missing, e.g. {absent[:1]}")

    def samples():
        try:
            with tarfile.open(path) as tar:
                for name, label in listed:
                    yield _decode(tar.extractfile(found[name]).read(), f"{path}:{name}"), label
        except (tarfile.TarError, EOFError, OSError) as err:
            raise _corrupt(path, "the archive", err) from err

    return len(listed), samples()
