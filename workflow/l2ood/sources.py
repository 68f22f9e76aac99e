"""The paper's downloaded datasets: each kind's published files, and what can be wrong with them.

Raw files are the published archives, exactly as their authors serve them, each checked against
its published MD5 (the values torchvision's dataset classes use; TinyImageNet's is the one in
common use for the cs231n zip). They live at ``{root}/{kind}/{file name}`` and are never unpacked:
the prepare step reads the images straight out of the ``.tar.gz``/``.zip``/``.mat`` it has just
checked, so every byte that reaches a prepared file is covered by a checksum, no half-extracted
folder can look complete, and a cluster file system is spared ~150,000 small files.

This module only declares; the work is done by
  ``l2ood.download``  fetching, linking and checking the files (``rules/download.smk``);
  ``l2ood.readers``   reading a split's images and labels out of them;
  ``l2ood.splits``    the prepared-split contract, writing a split as it is read, resizing;
  ``l2ood.data.prepare_raw``  the three together (``rules/prepare.smk``).

It is imported by Snakemake at parse time on every cluster node (``verified_file`` names the
download rules' outputs): the standard library only, never torch.
"""

from pathlib import Path

RAW_KINDS = ("cifar10", "cifar100", "svhn", "gtsrb", "tinyimagenet", "mnist", "dtd", "places365")
#: kinds used only as OoD test sets here: their published files for the test images alone are declared
TEST_ONLY_KINDS = ("mnist", "dtd", "places365")

_GTSRB_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror
_PLACES_URL = "http://data.csail.mit.edu/places/places365/"

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
    # The OpenOOD view's far-OoD sets, as torchvision 0.29's MNIST, DTD and Places365 (small, val) fetch them.
    "mnist": {
        "t10k-images-idx3-ubyte.gz": (_MNIST_URL + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte.gz": (_MNIST_URL + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    },
    "dtd": {
        "dtd-r1.0.1.tar.gz": (
            "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
            "fff73e5086ae6bdbea199a49dfb8a4c1",
        ),
    },
    "places365": {
        "val_256.tar": (_PLACES_URL + "val_256.tar", "e27b17d8d44f4af9a78502beb927f808"),
        "filelist_places365-standard.tar": (
            _PLACES_URL + "filelist_places365-standard.tar",
            "35a0585fee1fa656440f3ab298f8479c",
        ),
    },
}

# Resolution of the prepared images unless asked otherwise (GTSRB's vary: they are resized to 32).
NATIVE_SIZE = {"cifar10": 32, "cifar100": 32, "svhn": 32, "gtsrb": 32, "tinyimagenet": 64,
               "mnist": 28, "dtd": 32, "places365": 256}  # fmt: skip  (DTD's vary, 300-640 px: resized to 32)
# Classes of each kind's labels (0 .. n-1 as l2ood.readers reads them): the config's num_classes is checked against it.
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "gtsrb": 43, "tinyimagenet": 200,
               "mnist": 10, "dtd": 47, "places365": 365}  # fmt: skip


# What can be wrong with a raw file: declared here, beside the files, as download, readers and splits raise them.


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says where to put a manual download."""


class ChecksumError(ValueError):
    """A file's MD5 differs from the published one."""


class CorruptFileError(ValueError):
    """A checked file cannot be read as what it should be (truncated archive or pickle, missing member)."""


def files(kind: str, md5: dict | None = None) -> dict:
    """{file name: (url, md5)} of ``kind``; ``md5`` ({file name: md5}) replaces published checksums
    (config ``download.md5``: a re-packed mirror, or the test suite's fake archives)."""
    if kind not in FILES:
        raise ValueError(f"unknown raw dataset kind {kind!r}; known: {', '.join(RAW_KINDS)}")
    md5 = md5 or {}
    return {name: (url, md5.get(name, digest)) for name, (url, digest) in FILES[kind].items()}


def raw_files(kind: str, root) -> list[str]:
    """The files the download step of ``kind`` puts in place: ``{root}/{kind}/{published file name}``.

    >>> raw_files("svhn", "resources/datasets")
    ['resources/datasets/svhn/train_32x32.mat', 'resources/datasets/svhn/test_32x32.mat']
    """
    return [str(Path(root) / kind / name) for name in files(kind)]


#: the download step's record, beside the files: one "md5  name" line per file, each checked (``md5sum -c``)
VERIFIED = "MD5SUMS"


def verified_file(kind: str, root) -> str:
    """The download rule's output: ``{root}/{kind}/MD5SUMS``, written once every file of ``kind`` is
    in place and checked. The files themselves are not the rule's outputs, so no rerun (``-F``,
    ``-R``, a changed input) makes Snakemake delete them: a rerun checks them again and keeps them.

    >>> verified_file("svhn", "resources/datasets")
    'resources/datasets/svhn/MD5SUMS'
    """
    if kind not in FILES:
        raise ValueError(f"unknown raw dataset kind {kind!r}; known: {', '.join(RAW_KINDS)}")
    return str(Path(root) / kind / VERIFIED)


def split_files(kind: str, split: str) -> list[str]:
    """The published files that ``split`` ("train" or "test") of ``kind`` is read from."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if kind in TEST_ONLY_KINDS and split != "test":
        raise ValueError(f"{kind} is an OoD test set here: only its test images are declared, not a {split!r} split")
    if kind == "svhn":
        return [f"{split}_32x32.mat"]
    if kind == "gtsrb":
        return ["GTSRB-Training_fixed.zip"] if split == "train" else ["GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip"]
    return list(files(kind))  # one archive holds both splits
