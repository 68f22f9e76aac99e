"""l2ood.data: preparing a raw kind into a split, the image contract, streaming writes (moved from
tests/test_sources.py).
"""


import numpy as np
import pytest
from l2ood import data, sources, splits
from l2ood.data import load_split
from l2ood.sources import RAW_KINDS, CorruptFileError
from test_sources import files_in, make_raw, prepare_raw


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


def test_rebuild_is_byte_identical(tmp_path, monkeypatch):
    make_raw("gtsrb", tmp_path / "gtsrb", monkeypatch)
    for name in ("a.npz", "b.npz"):
        prepare_raw("gtsrb", tmp_path, "test", tmp_path / name)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


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
