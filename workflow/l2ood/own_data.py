"""Your own data sets: a folder of images (``kind: image_folder``) or a NumPy archive (``kind: npz``).

Both are named in ``config.yaml`` like any other data set and prepared into the same contract
(``l2ood.splits.check_split``: uint8 N x H x W x 3 images, int64 labels), so they serve as an ID
set (``train`` and ``test``) or an OoD set (``test`` only) without a change to the code::

    datasets:
      my-ood:   {kind: image_folder, test: data/my_ood, image_size: 32}
      my-id:    {kind: npz, train: data/my_id_train.npz, test: data/my_id_test.npz, num_classes: 10}

``image_folder``: ``<path>/<class>/<image>`` (class subfolders, in sorted order, give the labels 0,
1, ...; any file PIL opens: PNG, JPEG, BMP, ...), or images directly in ``<path>`` (one unlabelled
set, labels -1: an OoD set). Every image is converted to RGB and resized to ``image_size`` (PIL's
antialiased bilinear, as ``l2ood.splits.resize_images``); without ``image_size`` all images must
have one size. ``npz``: ``images`` uint8 N x H x W x 3 (N x H x W grey is repeated to RGB) and
``labels`` integers N, resized to ``image_size`` when it is given.

Every bad input stops with the file it is about: an empty folder, an image PIL cannot read, mixed
sizes without ``image_size``, labels outside ``[0, num_classes)``.
"""

import zipfile
from pathlib import Path

import numpy as np

from .splits import _resize_one, check_split

#: the data set kinds this module prepares
KINDS = ("image_folder", "npz")


class OwnDataError(ValueError):
    """A data set of your own that cannot be prepared; the message names the file and the fix."""


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise OwnDataError(f"{path}: not an image PIL can read ({err}); remove or replace that file") from err


def read_image_folder(root, image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 N x S x S x 3, labels int64 N, class names) of an image folder (module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise OwnDataError(f"{root}: no such folder; `image_folder` data sets name a folder of class subfolders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes:
        files = [(path, label) for label, name in enumerate(classes) for path in _image_files(root / name)]
    else:  # a flat folder of images: one unlabelled set
        files = [(path, -1) for path in _image_files(root)]
    if not files:
        raise OwnDataError(f"{root}: no images found (looked for <class>/<image> and <image> files); add images")
    images, sizes = [], {}
    for path, _ in files:
        image = _read_image(path)
        sizes.setdefault(image.shape[:2], path)
        if image_size is None and len(sizes) > 1:
            (first, first_path), (other, other_path) = list(sizes.items())[:2]
            raise OwnDataError(
                f"{root}: images of different sizes ({first_path} is {first[0]}x{first[1]}, {other_path} is "
                f"{other[0]}x{other[1]}); give the data set an `image_size` to resize them all to"
            )
        images.append(image if image_size is None else _resize_one(image, image_size))
    labels = np.array([label for _, label in files], dtype=np.int64)
    return np.stack(images), labels, classes


def read_npz(path, image_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N x S x S x 3, labels int64 N) of an ``.npz`` with ``images`` and ``labels``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [key for key in ("images", "labels") if key not in z.files]
            if missing:
                raise OwnDataError(f"{path}: has {sorted(z.files)}, needs `images` and `labels` (missing {missing})")
            images, labels = z["images"], z["labels"]
    except OwnDataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise OwnDataError(f"{path}: not a readable .npz ({type(err).__name__}: {err})") from err
    if images.ndim == 3:  # grey N x H x W
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.dtype != np.uint8:
        raise OwnDataError(f"{path}: `images` must be uint8 (0..255), got {images.dtype}; convert with .astype(np.uint8)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise OwnDataError(f"{path}: `labels` must be integers, got {labels.dtype}")
    try:
        check_split(images, labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels)
    except ValueError as err:
        raise OwnDataError(f"{path}: {err}") from err
    labels = labels.reshape(-1).astype(np.int64)
    if image_size is not None and images.shape[1:3] != (image_size, image_size):
        images = np.stack([_resize_one(image, image_size) for image in images])
    return images, labels


def check_labels(labels: np.ndarray, num_classes: int | None, where) -> None:
    """An ID set's labels must be class indices below ``num_classes``."""
    if num_classes is None or labels.size == 0:
        return
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise OwnDataError(
            f"{where}: {int(bad.sum())} labels outside [0, {num_classes}) (values {int(labels.min())}..{int(labels.max())}); "
            f"set the data set's `num_classes` or fix the labels"
        )


def prepare_own(spec: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``split`` of a data set of your own (``spec``: its config entry)."""
    if split not in spec:
        have = [s for s in ("train", "test") if s in spec]
        raise OwnDataError(f"this {spec['kind']} data set names no `{split}` path (it has {have}); add `{split}: <path>`")
    path = spec[split]
    size = spec.get("image_size")
    if spec["kind"] == "image_folder":
        images, labels, _ = read_image_folder(path, size)
    else:
        images, labels = read_npz(path, size)
    if split == "train" or spec.get("num_classes") is not None and (labels >= 0).any():
        check_labels(labels, spec.get("num_classes"), path)
    return images, labels
