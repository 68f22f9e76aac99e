"""l2ood.readers: each raw kind's archive read as torchvision reads it (moved from
tests/test_sources.py; fakes in the real layouts, torchvision's readers the independent oracle).
"""

import tarfile
import zipfile

import numpy as np
import pytest
from fakes import raw_datasets as fakes
from l2ood import readers, sources, splits
from l2ood.data import load_split
from l2ood.sources import CorruptFileError
from test_sources import make_raw, prepare_raw


def test_palette_image_becomes_rgb():
    import io

    from PIL import Image

    palette_image = Image.new("P", (3, 2))
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette_image.putpixel((1, 0), 1)
    buf = io.BytesIO()
    palette_image.save(buf, format="PNG")
    rgb = readers._decode(buf.getvalue(), "palette.png")
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [200, 100, 50] and rgb[1, 2].tolist() == [10, 20, 30]


def unpack(archive, folder):
    opener = tarfile.open if str(archive).endswith((".tar.gz", ".tar")) else zipfile.ZipFile
    with opener(archive) as a:
        a.extractall(folder)


def test_same_as_torchvisions_readers(tmp_path, monkeypatch):
    """Independent oracle: torchvision's CIFAR10/100, SVHN and GTSRB classes on the unpacked fakes."""
    from torchvision import datasets as tvd

    tv = tmp_path / "torchvision"
    for kind in ("cifar10", "cifar100", "svhn", "gtsrb"):
        make_raw(kind, tmp_path / kind, monkeypatch, **({"classes": (0, 1, 2, 3)} if kind == "gtsrb" else {}))
        for split in ("train", "test"):
            prepare_raw(kind, tmp_path, split, tmp_path / "prepared" / kind / f"{split}.npz")
    for kind, cls in (("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)):
        unpack(tmp_path / kind / cls.filename, tv)
        md5 = {p.name: fakes.md5(p) for p in (tv / cls.base_folder).iterdir()}
        monkeypatch.setattr(cls, "train_list", [[n, md5[n]] for n, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[n, md5[n]] for n, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})
        for split in ("train", "test"):
            ref = cls(tv, train=split == "train")
            images, labels = load_split(tmp_path / "prepared" / kind / f"{split}.npz")
            np.testing.assert_array_equal(images, ref.data)
            np.testing.assert_array_equal(labels, ref.targets)
    svhn_root = tmp_path / "svhn"
    split_list = {
        s: [u, n, fakes.md5(svhn_root / n)] for s, (u, n, _) in tvd.SVHN.split_list.items() if s != "extra"
    }
    monkeypatch.setattr(tvd.SVHN, "split_list", split_list)
    for split in ("train", "test"):
        ref = tvd.SVHN(svhn_root, split=split)
        images, labels = load_split(tmp_path / "prepared" / "svhn" / f"{split}.npz")
        np.testing.assert_array_equal(images, ref.data.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(labels, ref.labels)
    for name in sources.FILES["gtsrb"]:
        unpack(tmp_path / "gtsrb" / name, tv / "gtsrb")  # torchvision's own layout after its download
    for split in ("train", "test"):
        ref = tvd.GTSRB(tv, split=split)
        images, labels = load_split(tmp_path / "prepared" / "gtsrb" / f"{split}.npz")
        np.testing.assert_array_equal(labels, [target for _, target in ref._samples])
        np.testing.assert_array_equal(
            images, np.stack([splits._resize_one(np.asarray(ref[i][0]), 32) for i in range(len(ref))])
        )


def test_tinyimagenet_labels_are_imagefolders(tmp_path, monkeypatch):
    from torchvision.datasets import ImageFolder

    make_raw("tinyimagenet", tmp_path / "tinyimagenet", monkeypatch)
    prepare_raw("tinyimagenet", tmp_path, "train", tmp_path / "train.npz")
    unpack(tmp_path / "tinyimagenet" / "tiny-imagenet-200.zip", tmp_path / "unpacked")
    ref = ImageFolder(tmp_path / "unpacked" / "tiny-imagenet-200" / "train")
    _, labels = load_split(tmp_path / "train.npz")
    np.testing.assert_array_equal(labels, ref.targets)


def test_truncated_pickle_inside_a_good_archive(tmp_path, monkeypatch):
    good = fakes.cifar_pickle({"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1, 2]})
    make_raw(
        "cifar10",
        tmp_path / "cifar10",
        monkeypatch,
        members={"cifar-10-batches-py/test_batch": good[: len(good) // 2]},
    )
    with pytest.raises(
        CorruptFileError, match=r"cannot read member cifar-10-batches-py/test_batch .*truncated"
    ):
        prepare_raw("cifar10", tmp_path, "test", tmp_path / "test.npz")
    assert not (tmp_path / "test.npz").exists()


def test_ood_only_kinds_are_read_as_torchvision_reads_them(tmp_path, monkeypatch):
    """Independent oracle for DTD and Places365: torchvision's DTD and Places365(val, small) on the unpacked fakes."""
    from l2ood.readers import _center_square
    from torchvision import datasets as tvd

    tv = tmp_path / "torchvision"
    for kind in ("dtd", "places365"):
        make_raw(kind, tmp_path / kind, monkeypatch)
        prepare_raw(kind, tmp_path, "test", tmp_path / "prepared" / kind / "test.npz")
    unpack(tmp_path / "dtd" / "dtd-r1.0.1.tar.gz", tv / "dtd")  # torchvision's DTD lives in {root}/dtd/dtd
    ref = tvd.DTD(tv, split="test", partition=1)  # the fake lists every image in test1.txt, as all of DTD
    images, labels = load_split(tmp_path / "prepared" / "dtd" / "test.npz")
    np.testing.assert_array_equal(labels, ref._labels)
    want = np.stack([splits._resize_one(_center_square(np.asarray(ref[i][0])), 32) for i in range(len(ref))])
    np.testing.assert_array_equal(images, want)
    places = tv / "places"
    for name in sources.FILES["places365"]:
        unpack(tmp_path / "places365" / name, places)
    for attr, key in (("_CATEGORIES_META", None), ("_FILE_LIST_META", "val")):
        meta = getattr(tvd.Places365, attr)
        file = meta[0] if key is None else meta[key][0]
        patched = (file, fakes.md5(places / file))
        monkeypatch.setattr(tvd.Places365, attr, patched if key is None else {**meta, key: patched})
    ref = tvd.Places365(places, split="val", small=True)
    images, labels = load_split(tmp_path / "prepared" / "places365" / "test.npz")
    np.testing.assert_array_equal(labels, ref.targets)
    np.testing.assert_array_equal(images, np.stack([np.asarray(ref[i][0]) for i in range(len(ref))]))
