"""The downloaded datasets (l2ood.sources, download, readers, images, data.prepare_raw): fake datasets in
the real on-disk layouts, through the real check and prepare code.

Only the published MD5s are patched (to the fakes' own); everything else is the code a real run
uses. Values are checked against the arrays the fakes were made from and, independently,
against torchvision's own dataset readers pointed at the unpacked fakes.
"""

import functools
import http.server
import inspect
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fakes import raw_datasets as fakes
from l2ood import data, readers, sources, splits
from l2ood.data import load_split
from l2ood.download import download, md5sum
from l2ood.sources import RAW_KINDS, ChecksumError, CorruptFileError, DownloadError


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


# --- prepare, by value ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", RAW_KINDS)
def test_prepare_by_value(kind, tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "CHUNK", 4)  # several chunks and a partial last one
    expected = make_raw(kind, tmp_path / kind, monkeypatch)
    for split in expected:  # the OoD-only kinds (sources.TEST_ONLY_KINDS) have only "test"
        out = tmp_path / "prepared" / kind / f"{split}.npz"
        prepare_raw(kind, tmp_path, split, out)
        images, labels = load_split(out)
        want_images, want_labels = expected[split]
        size = sources.NATIVE_SIZE[kind]
        assert images.dtype == np.uint8 and images.shape == (len(want_labels), size, size, 3)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(labels, want_labels)
        jpeg = kind in ("tinyimagenet", "dtd", "places365")  # JPEG (quality 95) keeps flat blocks to +-1
        tolerance = {"dtd": 2}.get(kind, 1 if jpeg else 0)  # DTD: +-1 before the bilinear resize, 2 after
        assert np.abs(images.astype(int) - want_images.astype(int)).max() <= tolerance
    assert files_in(out.parent) == sorted(f"{s}.npz" for s in expected)  # and no temporary file
    if kind in sources.TEST_ONLY_KINDS:
        with pytest.raises(ValueError, match=f"{kind} is an OoD test set here"):
            prepare_raw(kind, tmp_path, "train", tmp_path / "train.npz")
    if kind == "svhn":
        assert 0 in labels and labels.max() == 9  # the file's 10 is the digit 0
    if kind == "tinyimagenet":
        gray = images[(images[..., 0] == images[..., 1]).all(axis=(1, 2))]
        assert len(gray) >= 1 and (gray[..., 1] == gray[..., 2]).all()  # grayscale JPEGs became RGB


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


# --- resizing -------------------------------------------------------------------------------


def test_resize_images_is_antialiased_bilinear():
    import torch

    rng = np.random.default_rng(0)
    for shape, size in (((3, 64, 64, 3), 32), ((2, 32, 32, 3), 64), ((2, 50, 41, 3), 32)):
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        out = splits.resize_images(images, size)
        assert out.dtype == np.uint8 and out.shape == (shape[0], size, size, 3)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
        ref = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        ref = ref.round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
        assert np.abs(out - ref).max() <= 1  # PIL's 8-bit fixed point vs torch in float64
    flat = np.full((1, 40, 30, 3), 77, dtype=np.uint8)
    assert (splits.resize_images(flat, 32) == 77).all()
    same = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(splits.resize_images(same, 32), same)
    with pytest.raises(ValueError, match="uint8 N x H x W x 3"):
        splits.resize_images(np.zeros((2, 8, 8), np.uint8), 4)


def test_prepare_at_another_resolution(tmp_path, monkeypatch):
    make_raw("svhn", tmp_path / "svhn", monkeypatch)
    prepare_raw("svhn", tmp_path, "test", tmp_path / "r32.npz")
    prepare_raw("svhn", tmp_path, "test", tmp_path / "r64.npz", size=64)
    images32, labels32 = load_split(tmp_path / "r32.npz")
    images64, labels64 = load_split(tmp_path / "r64.npz")
    np.testing.assert_array_equal(images64, splits.resize_images(images32, 64))
    np.testing.assert_array_equal(labels64, labels32)


def test_rebuild_is_byte_identical(tmp_path, monkeypatch):
    make_raw("gtsrb", tmp_path / "gtsrb", monkeypatch)
    for name in ("a.npz", "b.npz"):
        prepare_raw("gtsrb", tmp_path, "test", tmp_path / name)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


# --- download: network, existing copies, manual downloads -----------------------------------


@pytest.fixture
def http_folder(tmp_path):
    """Serve ``tmp_path/served`` over HTTP on localhost; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_over_http_checks_and_renames(tmp_path, monkeypatch, http_folder):
    served, base = http_folder
    md5s, _ = fakes.make("svhn", served)
    for name, md5 in md5s.items():
        monkeypatch.setitem(sources.FILES["svhn"], name, (f"{base}/{name}", md5))
    root = tmp_path / "datasets"
    download("svhn", root)
    assert files_in(root / "svhn") == ["MD5SUMS", "test_32x32.mat", "train_32x32.mat"]  # no temporary file left
    assert (root / "svhn" / "test_32x32.mat").read_bytes() == (served / "test_32x32.mat").read_bytes()
    # the rule's output lists each file with its MD5, as `md5sum -c` reads it
    assert (root / "svhn" / "MD5SUMS").read_text() == "".join(f"{md5s[n]}  {n}\n" for n in sources.FILES["svhn"])
    check = subprocess.run(["md5sum", "-c", "MD5SUMS"], cwd=root / "svhn", capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout + check.stderr
    download("svhn", root)  # in place and checked: nothing fetched again
    # the server now has a different (e.g. truncated) file: named, with the expected MD5; nothing kept
    (root / "svhn" / "test_32x32.mat").unlink()
    (served / "test_32x32.mat").write_bytes(b"truncated")
    with pytest.raises(
        ChecksumError,
        match=rf"\.test_32x32\.mat\.\d+\.tmp: MD5 is \w+, expected {md5s['test_32x32.mat']} "
        r"\(the published checksum of test_32x32\.mat\)",
    ):
        download("svhn", root)
    assert files_in(root / "svhn") == ["MD5SUMS", "train_32x32.mat"]  # (the first download's record)


def test_a_rerun_keeps_what_is_verified_and_replaces_only_a_bad_file(tmp_path, monkeypatch, http_folder):
    """Issue 19, item 1: a rerun of the download step (forced, or its MD5SUMS deleted) checks the
    files in place and keeps them; offline, a verified file is never lost; a file failing its MD5
    stays until a checked download replaces it."""
    served, base = http_folder
    md5s, _ = fakes.make("svhn", served)
    for name, md5 in md5s.items():
        monkeypatch.setitem(sources.FILES["svhn"], name, (f"{base}/{name}", md5))
    root = tmp_path / "datasets"
    download("svhn", root)
    train, test = root / "svhn" / "train_32x32.mat", root / "svhn" / "test_32x32.mat"
    before = {p: p.stat().st_ino for p in (train, test)}
    (root / "svhn" / "MD5SUMS").unlink()  # what Snakemake does before it reruns the job
    for name in md5s:
        (served / name).unlink()  # offline from now on: nothing can be fetched
    download("svhn", root)
    assert {p: p.stat().st_ino for p in (train, test)} == before  # the same files, not fetched again
    assert files_in(root / "svhn") == ["MD5SUMS", "test_32x32.mat", "train_32x32.mat"]
    test.write_bytes(b"cut short")  # a damaged file: offline, the error says where to put a good one
    with pytest.raises(DownloadError, match=r"could not download dataset 'svhn'.*test_32x32\.mat"):
        download("svhn", root)
    assert test.read_bytes() == b"cut short" and train.stat().st_ino == before[train]
    fakes.make("svhn", served)  # online again: only the bad file is fetched
    download("svhn", root)
    assert md5sum(test) == md5s["test_32x32.mat"] and train.stat().st_ino == before[train]


def test_no_network_names_dataset_url_and_manual_place(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/cifar-10-python.tar.gz"  # port 9: nothing listens, like a node without internet
    monkeypatch.setitem(sources.FILES["cifar10"], "cifar-10-python.tar.gz", (url, "0" * 32))
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError) as err:
        download("cifar10", root)
    message = str(err.value)
    assert "could not download dataset 'cifar10'" in message and url in message
    assert f"{url}  ->  {root / 'manual' / 'cifar-10-python.tar.gz'}" in message
    assert "download.existing.cifar10" in message
    assert files_in(root / "cifar10") == []


def test_existing_copy_and_manual_download_are_linked(tmp_path, monkeypatch):
    shared = tmp_path / "shared"  # a torchvision root: archives at the top, GTSRB's under gtsrb/
    make_raw("cifar10", shared, monkeypatch)
    make_raw("gtsrb", shared / "gtsrb", monkeypatch)
    root = tmp_path / "datasets"
    make_raw("tinyimagenet", root / "manual", monkeypatch)  # downloaded by hand
    download("cifar10", root, existing=shared)
    download("gtsrb", root, existing=shared)
    download("tinyimagenet", root)
    for kind, folder in (("cifar10", shared), ("gtsrb", shared / "gtsrb"), ("tinyimagenet", root / "manual")):
        for path in map(Path, sources.raw_files(kind, root)):
            assert path.is_symlink() and path.resolve() == (folder / path.name).resolve()
    # a wrong existing copy is named with its expected MD5, and not linked
    root2 = tmp_path / "other"
    (shared / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    expected = sources.FILES["cifar10"]["cifar-10-python.tar.gz"][1]
    with pytest.raises(
        ChecksumError, match=rf"{shared / 'cifar-10-python.tar.gz'}: MD5 is \w+, expected {expected}"
    ):
        download("cifar10", root2, existing=shared)
    assert files_in(root2 / "cifar10") == []


# --- what prepare is given -----------------------------------------------------------------


def test_prepare_reads_the_declared_paths_not_a_root(tmp_path, monkeypatch):
    """The raw files are wherever the rule's inputs say, here a folder no ``{root}/{kind}`` would name."""
    folder = tmp_path / "somewhere"
    expected = make_raw("svhn", folder, monkeypatch)
    data.prepare_raw("svhn", [folder / "train_32x32.mat", folder / "test_32x32.mat"], "test", tmp_path / "a.npz")
    got_images, got_labels = load_split(tmp_path / "a.npz")
    np.testing.assert_array_equal(got_images, expected["test"][0])
    np.testing.assert_array_equal(got_labels, expected["test"][1])
    data.prepare_raw("svhn", [str(folder / "test_32x32.mat")], "test", tmp_path / "b.npz")  # the split's file is enough
    assert (tmp_path / "b.npz").read_bytes() == (tmp_path / "a.npz").read_bytes()
    with pytest.raises(
        ValueError, match=r"svhn/train is read from train_32x32.mat; train_32x32.mat is not among the inputs given"
    ):
        data.prepare_raw("svhn", [folder / "test_32x32.mat"], "train", tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


def test_the_image_contract_is_checked_on_save_and_load(tmp_path):
    good = np.zeros((3, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match=r"images must be uint8 N x H x W x 3, got float64 \(3, 4, 4, 3\)"):
        data.save_split(tmp_path / "x.npz", good.astype(float), np.zeros(3))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\), got \(2,\)"):
        data.save_split(tmp_path / "x.npz", good, np.zeros(2))
    assert files_in(tmp_path) == []
    np.savez(tmp_path / "short.npz", images=good, labels=np.zeros(2, np.int64))  # written by something else
    with pytest.raises(ValueError, match=r"short.npz: labels must have shape \(3,\), got \(2,\)"):
        load_split(tmp_path / "short.npz")
    np.savez(tmp_path / "gray.npz", images=good[..., 0], labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"gray.npz: images must be uint8 N x H x W x 3, got uint8 \(3, 4, 4\)"):
        load_split(tmp_path / "gray.npz")
    data.save_split(tmp_path / "ok.npz", good + 7, [0, 1, 2])
    got_images, got_labels = load_split(tmp_path / "ok.npz")
    np.testing.assert_array_equal(got_images, good + 7)
    assert got_labels.dtype == np.int64 and got_labels.tolist() == [0, 1, 2]


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


def test_stream_writer_leaves_nothing_on_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "CHUNK", 2)
    image = np.zeros((8, 8, 3), np.uint8)

    def failing():
        yield from [(image, 0)] * 5  # two full chunks written to disk, then the reader fails
        raise CorruptFileError("reader failed")

    for samples, n, message in (
        ([(image, 0)] * 3, 4, "read 3 images, expected 4"),
        (failing(), 9, "reader failed"),
    ):
        with pytest.raises(CorruptFileError, match=message):
            splits.write_split_stream(tmp_path / "out" / "x.npz", n, 8, samples)
        assert files_in(tmp_path / "out") == []


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
