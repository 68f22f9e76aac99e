"""Data sets of your own (l2ood.own_data): image folders and .npz archives, and their bad inputs."""

import numpy as np
import pytest
from PIL import Image

from l2ood.data import load_split, prepare
from l2ood.own_data import OwnDataError, read_image_folder, read_npz


def _png(path, size=(8, 8), value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    Image.fromarray(rgb).save(path)


def test_class_subfolders_give_labels_in_sorted_order_and_images_are_resized(tmp_path):
    _png(tmp_path / "b" / "1.png", value=20)
    _png(tmp_path / "a" / "1.png", value=10)
    _png(tmp_path / "a" / "2.jpg", size=(16, 12), value=30)
    images, labels, classes = read_image_folder(tmp_path, image_size=4)
    assert classes == ["a", "b"] and labels.tolist() == [0, 0, 1]
    assert images.shape == (3, 4, 4, 3) and images.dtype == np.uint8
    assert abs(int(images[1, 2, 2, 1]) - 30) <= 3 and images[2, 2, 2, 1] == 20  # a/2.jpg, resized: about the grey it was written with


def test_a_flat_folder_is_one_unlabelled_set_prepared_as_a_test_split(tmp_path):
    for i in range(3):
        _png(tmp_path / "ood" / f"{i}.png", value=50 * i)
    out = tmp_path / "prepared" / "test.npz"
    prepare({"kind": "image_folder", "test": str(tmp_path / "ood"), "image_size": 8}, "test", out)
    images, labels = load_split(out)
    assert images.shape == (3, 8, 8, 3) and labels.tolist() == [-1, -1, -1]
    assert images[1, 4, 4].tolist() == [50, 50, 50] and images[0, 0, 0].tolist() == [255, 0, 0]


def test_bad_folders_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OwnDataError, match="empty: no images found"):
        read_image_folder(tmp_path / "empty")
    _png(tmp_path / "mixed" / "c" / "small.png", size=(8, 8))
    _png(tmp_path / "mixed" / "c" / "large.png", size=(16, 16))
    with pytest.raises(OwnDataError, match="images of different sizes.*image_size"):
        read_image_folder(tmp_path / "mixed")
    assert read_image_folder(tmp_path / "mixed", image_size=8)[0].shape == (2, 8, 8, 3)
    _png(tmp_path / "corrupt" / "c" / "ok.png")
    (tmp_path / "corrupt" / "c" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(OwnDataError, match=r"bad\.png: not an image PIL can read"):
        read_image_folder(tmp_path / "corrupt")


def test_npz_round_trip_grey_images_and_resizing(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=images, labels=np.arange(5))
    got, labels = read_npz(tmp_path / "x.npz")
    assert got.shape == (5, 6, 6, 3) and (got[..., 2] == images).all() and labels.dtype == np.int64
    assert read_npz(tmp_path / "x.npz", image_size=3)[0].shape == (5, 3, 3, 3)


def test_bad_npz_files_are_named(tmp_path):
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(OwnDataError, match="nolabels.npz: .*missing \\['labels'\\]"):
        read_npz(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 4, 4, 3)), labels=np.zeros(2, int))
    with pytest.raises(OwnDataError, match="float.npz: `images` must be uint8"):
        read_npz(tmp_path / "float.npz")
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(OwnDataError, match="cut.npz: not a readable .npz"):
        read_npz(tmp_path / "cut.npz")


def test_id_labels_outside_num_classes_stop_with_the_file(tmp_path):
    np.savez(tmp_path / "train.npz", images=np.zeros((3, 4, 4, 3), np.uint8), labels=np.array([0, 1, 5]))
    spec = {"kind": "npz", "train": str(tmp_path / "train.npz"), "image_size": 4, "num_classes": 3}
    with pytest.raises(OwnDataError, match=r"train.npz: 1 labels outside \[0, 3\)"):
        prepare(spec, "train", tmp_path / "out" / "train.npz")
    with pytest.raises(OwnDataError, match="names no `test` path"):
        prepare(spec, "test", tmp_path / "out" / "test.npz")
    assert not (tmp_path / "out" / "train.npz").exists()


def test_the_config_examples_of_the_readme_and_docs_own_are_valid_configs():
    """Each YAML example of README's "Your own checkpoint, model or data" and docs/own.md, merged over
    config.yaml, passes the schema and the cross-checks (a renamed key would fail here)."""
    import copy
    import re

    import yaml
    from conftest import ROOT

    from l2ood import config as C

    def merged(base, new):
        out = copy.deepcopy(base)
        for k, v in new.items():
            out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    readme = (ROOT / "README.md").read_text().split("## Your own checkpoint, model or data")[1].split("\n## ")[0]
    blocks = re.findall(r"```yaml\n(.*?)```", readme + (ROOT / "docs/own.md").read_text(), re.S)
    assert len(blocks) == 3
    examples = [yaml.safe_load(b) for b in blocks]
    extra = {"datasets": {"my-ood": {"kind": "image_folder", "test": "x", "image_size": 32}}}  # docs' run names it
    for example in examples:
        cfg = merged(merged(base, extra), example)
        assert C.schema_errors(cfg, ROOT / "workflow/schemas/config.schema.yaml") == [], example
        C.check(cfg)
