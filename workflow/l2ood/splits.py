"""Prepared splits: the contract every one keeps, writing one as its images are read, and resizing.

A prepared split is an ``.npz`` holding ``images`` (uint8, N x H x W x 3, RGB) and ``labels``
(int64, N); ``check_split`` is that contract, checked wherever images are written or read.
``write_split_stream`` writes one as its images arrive: into the ``images.npy`` member of the
``.npz`` in chunks of ``CHUNK`` images, so memory stays flat whatever the dataset size; the file
appears under its final name only once complete. PIL is imported inside the functions.
"""

import zipfile
from pathlib import Path

import numpy as np

from .fileio import atomic_path
from .layout import record_of
from .sources import CorruptFileError

def record_path(path) -> Path:
    """The record beside a prepared split ``{split}.npz``: ``{split}.json``, its MD5 and the values that
    made it (``l2ood.data.write_record``). The jobs reading a split name both: the split ancient (its
    modification time counts for nothing), the record not (a changed data set replans them)."""
    return Path(record_of(path))


CHUNK = 1024  # images per write: 12 MB at 64x64, so peak memory does not grow with the dataset


def check_split(images: np.ndarray, labels: np.ndarray | None = None, where: str = "") -> None:
    """Raise ``ValueError`` unless ``images`` is uint8 N x H x W x 3 and ``labels`` (if given) has shape (N,).

    ``where`` (a path) starts the message. The labels' dtype is not checked: save_split and load_split cast to int64.
    """
    prefix = f"{where}: " if where else ""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{prefix}images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"{prefix}labels must have shape ({len(images)},), got {labels.shape}")


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
    check_split(images)
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = _resize_one(image, size)
    return out


def write_split_stream(out_path, n: int, size: int, samples) -> None:
    """Write ``samples`` (an iterable of (uint8 H x W x 3 image, int label)) to ``out_path`` as .npz.

    The ``.npz`` holds ``images`` (uint8 n x size x size x 3; each image resized to ``size`` unless
    it already has it) and ``labels`` (int64 n), as ``l2ood.data.load_split`` reads them. Images
    are streamed into the zip member in chunks; the file is written under a temporary name and
    renamed when complete, so a failure (or fewer/more than ``n`` samples) leaves nothing behind.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.empty(n, dtype=np.int64)
    count = 0
    with atomic_path(out_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        # the .npy header first, with the final shape, then the images as raw bytes: np.load reads it as one array
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
