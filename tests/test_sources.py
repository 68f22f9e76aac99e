"""The downloaded datasets (l2ood.sources; its helpers serve test_download, test_readers, test_data and
test_splits): fake datasets in the real on-disk layouts, through the real check and prepare code.

Only the published MD5s are patched (to the fakes' own); everything else is the code a real run
uses. Values are checked against the arrays the fakes were made from and, independently,
against torchvision's own dataset readers pointed at the unpacked fakes.
"""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import raw_datasets as fakes
from l2ood import data, sources
from l2ood.download import md5sum
from l2ood.sources import RAW_KINDS, ChecksumError, CorruptFileError


def make_raw(kind, folder, monkeypatch, **kw):
    """Write a fake ``kind``'s published files into ``folder``; patch their published MD5s to the fake's."""
    md5s, expected = fakes.make(kind, folder, **kw)
    for name, md5 in md5s.items():
        monkeypatch.setitem(sources.FILES[kind], name, (sources.FILES[kind][name][0], md5))
    return expected


def prepare_raw(kind, root, split, out, **kw):
    """``data.prepare_raw`` given the files the prepare rule declares for ``kind`` under ``root``."""
    data.prepare_raw(kind, sources.raw_files(kind, root), split, out, **kw)


def files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# --- the constants and the import contract --------------------------------------------------


def test_urls_and_md5s_are_torchvisions():
    from torchvision import datasets as tvd

    for kind, cls in (("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)):
        assert sources.FILES[kind] == {cls.filename: (cls.url, cls.tgz_md5)}
    assert sources.FILES["svhn"] == {
        tvd.SVHN.split_list[s][1]: (tvd.SVHN.split_list[s][0], tvd.SVHN.split_list[s][2])
        for s in ("train", "test")
    }
    gtsrb_source = inspect.getsource(tvd.GTSRB.download)  # torchvision hard-codes these inside download()
    for name, (url, md5) in sources.FILES["gtsrb"].items():
        assert name in gtsrb_source and md5 in gtsrb_source and url.startswith("https://sid.erda.dk/")
    assert sources.FILES["tinyimagenet"] == {
        "tiny-imagenet-200.zip": (
            "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
            "90528d7ca1a48142e341f4ef8d21d0de",
        )
    }


def test_ood_only_urls_and_md5s_are_torchvisions():
    from torchvision import datasets as tvd

    mnist = dict(tvd.MNIST.resources)
    for name, (url, md5) in sources.FILES["mnist"].items():
        assert mnist[name] == md5 and url == tvd.MNIST.mirrors[0] + name
    assert sources.FILES["dtd"] == {"dtd-r1.0.1.tar.gz": (tvd.DTD._URL, tvd.DTD._MD5)}
    images, devkit = tvd.Places365._IMAGES_META["val", True], tvd.Places365._DEVKIT_META["standard"]
    assert sources.FILES["places365"] == {
        name: (tvd.Places365._BASE_URL + name, md5) for name, md5 in (images, devkit)
    }


def test_import_is_light_for_snakemake_parse_time():
    heavy = "('torch', 'torchvision', 'scipy', 'PIL')"
    code = f"import sys, l2ood.sources; print(sorted(m for m in {heavy} if m in sys.modules))"
    env = {"PYTHONPATH": str(Path(sources.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_raw_files_are_the_published_names():
    assert sources.raw_files("cifar10", "r") == ["r/cifar10/cifar-10-python.tar.gz"]
    assert sources.raw_files("gtsrb", "r") == [
        "r/gtsrb/GTSRB-Training_fixed.zip",
        "r/gtsrb/GTSRB_Final_Test_Images.zip",
        "r/gtsrb/GTSRB_Final_Test_GT.zip",
    ]
    assert set(sources.FILES) == set(RAW_KINDS) == set(fakes.MAKERS)  # each kind declared and faked
    with pytest.raises(ValueError, match="unknown raw dataset kind 'fashionmnist'"):
        sources.raw_files("fashionmnist", "r")


# --- bad input at prepare -------------------------------------------------------------------


def test_missing_raw_file_says_how_to_get_it(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=rf"cifar-10-python.tar.gz is missing: run the download step again \(`snakemake --force {tmp_path}/cifar10/MD5SUMS`\)",
    ):
        prepare_raw("cifar10", tmp_path, "test", tmp_path / "out.npz")


def test_checksum_mismatch_names_file_and_expected_md5(tmp_path, monkeypatch):
    make_raw("svhn", tmp_path / "svhn", monkeypatch)
    path = tmp_path / "svhn" / "test_32x32.mat"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    expected = sources.FILES["svhn"]["test_32x32.mat"][1]
    with pytest.raises(ChecksumError, match=rf"{path}: MD5 is \w+, expected {expected}"):
        prepare_raw("svhn", tmp_path, "test", tmp_path / "out" / "test.npz")
    assert not (tmp_path / "out").exists() or files_in(tmp_path / "out") == []


@pytest.mark.parametrize(
    "kind, name, split",
    [
        ("cifar10", "cifar-10-python.tar.gz", "test"),
        ("svhn", "test_32x32.mat", "test"),
        ("gtsrb", "GTSRB_Final_Test_Images.zip", "test"),
        ("tinyimagenet", "tiny-imagenet-200.zip", "train"),
    ],
)
def test_truncated_file_is_detected_and_leaves_nothing(kind, name, split, tmp_path, monkeypatch):
    """Even with an MD5 that matches (a truncated file listed as good), reading fails clearly."""
    make_raw(kind, tmp_path / kind, monkeypatch)
    path = tmp_path / kind / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    monkeypatch.setitem(sources.FILES[kind], name, (sources.FILES[kind][name][0], md5sum(path)))
    out = tmp_path / "prepared" / f"{split}.npz"
    with pytest.raises(CorruptFileError, match=rf"{path}: cannot read .*truncated or corrupt"):
        prepare_raw(kind, tmp_path, split, out)
    assert not out.parent.exists() or files_in(out.parent) == []  # no output, no temporary file
