"""Tiny fake datasets in the exact on-disk layout of each real download.

Each ``make_*(folder, ...)`` writes the published file(s) of one dataset kind into ``folder``
under their real names, with the real member names and formats inside, and returns
``(md5s, expected)``: ``md5s`` maps file name -> MD5 of the fake (to patch over the published
ones), ``expected`` maps split -> (images uint8 N x H x W x 3 at the prepared size, labels int64)
in the order the real readers list them.

Layouts (as torchvision 0.29's readers and the archives' own readmes describe them):
- CIFAR-10/100: ``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/{data_batch_1..5,
  test_batch, batches.meta, readme.html}``; each batch a Python-2-style pickle of a dict with
  ``data`` (uint8 N x 3072, channel-major), ``labels`` (CIFAR-100: ``fine_labels``,
  ``coarse_labels`` in ``cifar-100-python/{train,test,meta}``), ``filenames``, ``batch_label``.
- SVHN: ``{train,test}_32x32.mat`` (MATLAB 5), ``X`` 32 x 32 x 3 x N uint8, ``y`` N x 1 with 1..10,
  10 meaning the digit 0.
- GTSRB: ``GTSRB-Training_fixed.zip`` with ``GTSRB/Training/{class:05d}/{track:05d}_{i:05d}.ppm`` and
  ``GT-{class:05d}.csv`` per class; ``GTSRB_Final_Test_Images.zip`` with
  ``GTSRB/Final_Test/Images/{i:05d}.ppm`` and a ``GT-final_test.test.csv`` without class ids;
  ``GTSRB_Final_Test_GT.zip`` with ``GT-final_test.csv`` (``;``-separated, ``ClassId`` last).
  Images of many sizes, some smaller and some larger than 32 x 32, one exactly 32 x 32.
- TinyImageNet: ``tiny-imagenet-200.zip`` with ``tiny-imagenet-200/{wnids.txt, words.txt,
  train/{wnid}/images/{wnid}_{i}.JPEG, train/{wnid}/{wnid}_boxes.txt, val/images/val_{i}.JPEG,
  val/val_annotations.txt, test/images/test_{i}.JPEG}``; some JPEGs grayscale.
- MNIST (test only): ``t10k-images-idx3-ubyte.gz`` (IDX: big-endian int32 magic 2051, N, 28, 28, then
  uint8 pixels) and ``t10k-labels-idx1-ubyte.gz`` (magic 2049, N, then uint8 labels), gzipped.
- DTD (test only): ``dtd-r1.0.1.tar.gz`` holding ``dtd/images/{class}/{class}_{i:04d}.jpg`` (sizes vary,
  rectangular), ``dtd/labels/{train,val,test}1.txt`` listing ``{class}/{file}``, ``dtd/imdb/imdb.mat``.
- Places365 (test only): ``val_256.tar`` (uncompressed) holding ``val_256/Places365_val_{i:08d}.jpg``
  (256 x 256), and ``filelist_places365-standard.tar`` holding ``categories_places365.txt``
  (``/a/class 0``), ``places365_train_standard.txt``, ``places365_val.txt`` (``{file} {label}``).
"""

import csv
import functools
import hashlib
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def cifar_pickle(entry: dict) -> bytes:
    return pickle.dumps(entry, protocol=2)  # the originals are Python 2 pickles (protocol 2)


def make_cifar(
    folder, kind: str = "cifar10", per_batch: int = 4, n_test: int = 5, seed: int = 0, members=None
):
    """``members``: optional {member name: bytes} that replace the generated ones (for bad-input tests)."""
    rng = np.random.default_rng(seed)
    if kind == "cifar10":
        top, classes, key = "cifar-10-batches-py", 10, "labels"
        batches = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": n_test}
        meta = (
            "batches.meta",
            {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": per_batch},
        )
        archive = "cifar-10-python.tar.gz"
    else:
        top, classes, key = "cifar-100-python", 100, "fine_labels"
        batches = {"train": 5 * per_batch, "test": n_test}
        meta = (
            "meta",
            {
                "fine_label_names": [f"fine{i}" for i in range(100)],
                "coarse_label_names": list("abcdefghijklmnopqrst"),
            },
        )
        archive = "cifar-100-python.tar.gz"
    made = {}
    for name, n in batches.items():
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, classes, n)]
        entry = {
            "batch_label": f"fake {name}",
            key: labels,
            "data": data,
            "filenames": [f"img{i}.png" for i in range(n)],
        }
        if kind == "cifar100":
            entry["coarse_labels"] = [v // 5 for v in labels]
        made[name] = (data, labels, cifar_pickle(entry))
    contents = {f"{top}/{name}": blob for name, (_, _, blob) in made.items()}
    contents[f"{top}/{meta[0]}"] = cifar_pickle(meta[1])
    contents[f"{top}/readme.html"] = b"<html>fake</html>"
    contents.update(members or {})
    path = Path(folder) / archive
    with tarfile.open(path, "w:gz") as tar:
        for name in sorted(contents, reverse=True):  # stored out of order, like nothing promises otherwise
            _add_bytes(tar, name, contents[name])

    def split(names):
        images = np.concatenate([made[n][0] for n in names]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return images, np.array([lab for n in names for lab in made[n][1]], dtype=np.int64)

    train = [n for n in batches if "test" not in n]
    return {archive: md5(path)}, {
        "train": split(train),
        "test": split(["test" if kind == "cifar100" else "test_batch"]),
    }


def make_svhn(folder, n_train: int = 6, n_test: int = 12, seed: int = 0):
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    md5s, expected = {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        digits = np.arange(n) % 10  # every digit, 0 included
        y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]  # SVHN writes the digit 0 as 10
        path = Path(folder) / f"{split}_32x32.mat"
        savemat(path, {"X": np.ascontiguousarray(images.transpose(1, 2, 3, 0)), "y": y})
        md5s[path.name] = md5(path)
        expected[split] = (images, digits.astype(np.int64))
    return md5s, expected


def _ppm(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PPM")
    return buf.getvalue()


def _zip(path, contents: dict) -> None:
    dirs = sorted({n[: i + 1] for n in contents for i, c in enumerate(n) if c == "/"})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for d in dirs:
            zf.writestr(d, b"")  # directory entries, as zip tools write them
        for name, data in contents.items():
            zf.writestr(name, data)


GTSRB_COLUMNS = ["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"]


def _gtsrb_csv(rows, with_class=True) -> bytes:
    buf = io.StringIO()
    columns = GTSRB_COLUMNS if with_class else GTSRB_COLUMNS[:-1]
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(r[: len(columns)])
    return buf.getvalue().encode()


def make_gtsrb(folder, classes=(0, 1, 2), per_class: int = 3, n_test: int = 7, size: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    shapes = [(29, 31), (32, 32), (47, 40), (15, 17), (60, 58)]  # (height, width), 32x32 passes through as is

    def image(i):
        h, w = shapes[i % len(shapes)]
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    def resized(img):
        if img.shape[:2] == (size, size):
            return img
        return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))

    train, train_files = [], {}
    for c in classes:
        rows = []
        for i in range(per_class):
            img = image(i + c)
            name = f"{i // 2:05d}_{i % 2:05d}.ppm"  # tracks of two images
            train_files[f"GTSRB/Training/{c:05d}/{name}"] = _ppm(img)
            rows.append([name, img.shape[1], img.shape[0], 5, 5, img.shape[1] - 5, img.shape[0] - 5, c])
            train.append((img, c))
        train_files[f"GTSRB/Training/{c:05d}/GT-{c:05d}.csv"] = _gtsrb_csv(rows)
    train_files["GTSRB/Readme.txt"] = b"fake GTSRB training set\r\n"
    test_files, rows, test = {}, [], []
    for i in range(n_test):
        img, c = image(i), int(classes[(i * 2) % len(classes)])
        test_files[f"GTSRB/Final_Test/Images/{i:05d}.ppm"] = _ppm(img)
        rows.append([f"{i:05d}.ppm", img.shape[1], img.shape[0], 5, 5, img.shape[1] - 5, img.shape[0] - 5, c])
        test.append((img, c))
    test_files["GTSRB/Final_Test/Images/GT-final_test.test.csv"] = _gtsrb_csv(rows, with_class=False)
    test_files["GTSRB/Readme-Images-Final-test.txt"] = b"fake GTSRB test set\r\n"
    archives = {
        "GTSRB-Training_fixed.zip": train_files,
        "GTSRB_Final_Test_Images.zip": test_files,
        "GTSRB_Final_Test_GT.zip": {"GT-final_test.csv": _gtsrb_csv(rows)},
    }
    for name, contents in archives.items():
        _zip(Path(folder) / name, contents)

    def split(pairs):
        return np.stack([resized(img) for img, _ in pairs]), np.array([c for _, c in pairs], dtype=np.int64)

    return {n: md5(Path(folder) / n) for n in archives}, {"train": split(train), "test": split(test)}


def _quadrants(colors: np.ndarray, gray: bool) -> np.ndarray:
    """A 64x64 image of four flat 32x32 quadrants (JPEG keeps flat, block-aligned areas to +-1)."""
    img = np.empty((64, 64, 3), dtype=np.uint8)
    for q, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        img[32 * r : 32 * r + 32, 32 * c : 32 * c + 32] = colors[q]
    if gray:
        img[...] = img[..., :1]
    return img


def _jpeg(img: np.ndarray, gray: bool) -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(img[..., 0] if gray else img)  # grayscale files are mode "L", as some real ones
    pil.save(buf, format="JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def make_tinyimagenet(
    folder, wnids=("n09999999", "n01443537", "n02124075"), per_class: int = 3, n_val: int = 7, seed: int = 0
):
    rng = np.random.default_rng(seed)
    top = "tiny-imagenet-200/"
    index = {w: i for i, w in enumerate(sorted(wnids))}  # labels: position in sorted wnids
    files = {
        top + "wnids.txt": "".join(f"{w}\n" for w in wnids).encode()
    }  # listed unsorted, like the real one
    files[top + "words.txt"] = "".join(f"{w}\tthing {w}\n" for w in wnids).encode()
    count = 0

    def image():
        nonlocal count
        count += 1
        gray = count % 4 == 0
        return _quadrants(rng.integers(0, 256, (4, 3), dtype=np.uint8), gray), gray

    train = []
    for w in wnids:
        for i in range(per_class):
            img, gray = image()
            files[f"{top}train/{w}/images/{w}_{i}.JPEG"] = _jpeg(img, gray)
            train.append((f"{top}train/{w}/images/{w}_{i}.JPEG", img, index[w]))
        files[f"{top}train/{w}/{w}_boxes.txt"] = "".join(
            f"{w}_{i}.JPEG\t0\t0\t63\t63\n" for i in range(per_class)
        ).encode()
    annotations, val = [], []
    for i in range(n_val):
        img, gray = image()
        w = wnids[(i * 2) % len(wnids)]
        files[f"{top}val/images/val_{i}.JPEG"] = _jpeg(img, gray)
        annotations.append(f"val_{i}.JPEG\t{w}\t0\t3\t60\t61\n")
        val.append((img, index[w]))
    files[top + "val/val_annotations.txt"] = "".join(annotations).encode()
    for i in range(2):
        files[f"{top}test/images/test_{i}.JPEG"] = _jpeg(image()[0], False)
    path = Path(folder) / "tiny-imagenet-200.zip"
    _zip(path, files)
    train.sort(key=lambda t: t[0])  # the reader's (and ImageFolder's) order: sorted paths
    expected = {
        "train": (np.stack([t[1] for t in train]), np.array([t[2] for t in train], dtype=np.int64)),
        "test": (np.stack([v[0] for v in val]), np.array([v[1] for v in val], dtype=np.int64)),
    }
    return {path.name: md5(path)}, expected


def _idx_gz(path, magic: int, array: np.ndarray) -> None:
    import gzip

    head = np.array([magic, *array.shape], dtype=">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(head + array.astype(np.uint8).tobytes())


def make_mnist(folder, n_test: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    labels = (np.arange(n_test) % 10).astype(np.int64)
    _idx_gz(Path(folder) / "t10k-images-idx3-ubyte.gz", 2051, images)
    _idx_gz(Path(folder) / "t10k-labels-idx1-ubyte.gz", 2049, labels)
    md5s = {n: md5(Path(folder) / n) for n in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    return md5s, {"test": (np.repeat(images[..., None], 3, axis=3), labels)}


def _flat_blocks(rng, h: int, w: int) -> np.ndarray:
    """An image of flat 16 x 16 blocks (JPEG keeps flat, block-aligned areas to +-1)."""
    blocks = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[:2] == (size, size):
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))


def make_dtd(folder, classes=("banded", "zigzagged", "blotchy"), per_class: int = 3, size: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    shapes = [(64, 96), (80, 48), (64, 64)]  # (height, width): wide, tall, square
    contents, test = {}, []
    index = {c: i for i, c in enumerate(sorted(classes))}
    for c in classes:  # archive order: classes as listed (not sorted), so the labels' sort is tested
        for i in range(per_class):
            h, w = shapes[(i + index[c]) % len(shapes)]
            img = _flat_blocks(rng, h, w)
            contents[f"dtd/images/{c}/{c}_{i:04d}.jpg"] = _jpeg(img, False)
            side = min(h, w)
            square = img[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
            test.append((_resize(square, size), index[c]))
    names = [n.split("/", 2)[2] for n in contents]
    for part in ("train", "val", "test"):
        contents[f"dtd/labels/{part}1.txt"] = "".join(f"{n}\n" for n in names).encode()
    contents["dtd/imdb/imdb.mat"] = b"not read"
    path = Path(folder) / "dtd-r1.0.1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in contents.items():
            _add_bytes(tar, name, data)
    images = np.stack([t[0] for t in test])
    return {path.name: md5(path)}, {"test": (images, np.array([t[1] for t in test], dtype=np.int64))}


def make_places365(folder, n_val: int = 6, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"Places365_val_{i:08d}.jpg" for i in range(1, n_val + 1)]
    labels = (np.arange(n_val) * 3 % classes).astype(np.int64)
    images = [_flat_blocks(rng, 256, 256) for _ in names]
    path = Path(folder) / "val_256.tar"
    with tarfile.open(path, "w") as tar:
        for name, img in reversed(list(zip(names, images))):  # stored out of the list's order
            _add_bytes(tar, f"val_256/{name}", _jpeg(img, False))
    devkit = Path(folder) / "filelist_places365-standard.tar"
    with tarfile.open(devkit, "w") as tar:
        _add_bytes(tar, "categories_places365.txt", "".join(f"/a/class{c} {c}\n" for c in range(classes)).encode())
        _add_bytes(tar, "places365_train_standard.txt", b"/a/class0/00000001.jpg 0\n")
        _add_bytes(tar, "places365_val.txt", "".join(f"{n} {y}\n" for n, y in zip(names, labels)).encode())
    return {p.name: md5(p) for p in (path, devkit)}, {"test": (np.stack(images), labels)}


# Keyed like l2ood.sources.RAW_KINDS (test_prepare_by_value makes each of those) but not importing it:
# the fakes stay independent of the code they test, and tests/paper_mini.py runs without workflow/ on the path.
MAKERS = {
    "cifar10": functools.partial(make_cifar, kind="cifar10"),
    "cifar100": functools.partial(make_cifar, kind="cifar100"),
    "svhn": make_svhn,
    "gtsrb": make_gtsrb,
    "tinyimagenet": make_tinyimagenet,
    "mnist": make_mnist,
    "dtd": make_dtd,
    "places365": make_places365,
}


def make(kind: str, folder, **kw):
    """Write the fake ``kind`` into ``folder`` (created); ``kw`` go to its ``make_*``."""
    if kind not in MAKERS:
        raise ValueError(f"no fake for raw kind {kind!r}; there are fakes of {', '.join(MAKERS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return MAKERS[kind](folder, **kw)
