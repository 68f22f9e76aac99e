"""l2ood.splits: resizing (moved from tests/test_sources.py).
"""


import numpy as np
import pytest
from l2ood import splits
from l2ood.data import load_split
from test_sources import make_raw, prepare_raw


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
