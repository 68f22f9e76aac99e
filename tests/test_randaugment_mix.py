"""CCT recipe augmentations on the device: RandAugment (against Pillow, op by op) and Mixup/CutMix (timm's rules)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

from l2ood import mix as M
from l2ood import randaugment as R

FILL = (125, 123, 114)  # round(255 * CIFAR-10 mean), timm's img_mean for the CCT recipe


def images(n=12, size=16, seed=0) -> torch.Tensor:
    """Noise, smooth gradients and low-contrast images: uint8 (n, 3, size, size)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n // 3, size, size, 3))
    smooth = np.cumsum(rng.integers(0, 20, (n // 3, size, size, 3)), axis=1).clip(0, 255)
    dull = smooth // 4 + 60
    arr = np.concatenate([noise, smooth, dull]).astype(np.uint8)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def pil_reference(name: str, img: Image.Image, args: dict, i: int, bicubic: bool) -> np.ndarray:
    """What timm's op does to one PIL image, with the argument this image drew."""
    kw = {"resample": Image.BICUBIC if bicubic else Image.BILINEAR, "fillcolor": FILL}
    w, h = img.size
    enhance = float(args["enhance"][i])
    if name == "auto_contrast":
        out = ImageOps.autocontrast(img)
    elif name == "equalize":
        out = ImageOps.equalize(img)
    elif name == "invert":
        out = ImageOps.invert(img)
    elif name == "posterize":
        bits = int(args["posterize_bits"][i])  # Pillow 13 refuses 0 bits; timm's older Pillow gave black
        out = ImageOps.posterize(img, bits) if bits > 0 else Image.new("RGB", img.size)
    elif name == "solarize":
        out = ImageOps.solarize(img, int(args["solarize_thresh"][i]))
    elif name == "solarize_add":  # timm's own lookup table
        add = int(args["solarize_add"][i])
        out = img.point([min(255, v + add) if v < 128 else v for v in range(256)] * 3)
    elif name in ("color", "contrast", "brightness", "sharpness"):
        out = getattr(ImageEnhance, name.capitalize())(img).enhance(enhance)
    elif name == "rotate":
        out = img.rotate(float(args["rotate"][i]), **kw)
    elif name == "shear_x":
        out = img.transform(img.size, Image.AFFINE, (1, float(args["shear"][i]), 0, 0, 1, 0), **kw)
    elif name == "shear_y":
        out = img.transform(img.size, Image.AFFINE, (1, 0, 0, float(args["shear"][i]), 1, 0), **kw)
    elif name == "translate_x":
        out = img.transform(img.size, Image.AFFINE, (1, 0, float(args["translate"][i]) * w, 0, 1, 0), **kw)
    else:
        out = img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, float(args["translate"][i]) * h), **kw)
    return np.asarray(out)


@pytest.mark.parametrize("increasing", [True, False])
@pytest.mark.parametrize("name", R.OPS)
def test_each_op_is_bit_identical_to_pillow(name, increasing):
    x = images()
    b = len(x)
    g = torch.Generator().manual_seed(R.OP_INDEX[name])
    m = torch.rand(b, generator=g) * 10
    sign = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    bicubic = torch.arange(b) % 2 == 1  # half the images bicubic
    ours = R.apply_ops(x, torch.full((b,), R.OP_INDEX[name]), m, sign, bicubic, FILL, increasing)
    args = R.op_arguments(m, sign, increasing)
    for i in range(b):
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
        ref = pil_reference(name, img, args, i, bool(bicubic[i]))
        np.testing.assert_array_equal(ours[i].permute(1, 2, 0).numpy(), ref, err_msg=f"{name}, image {i}")


def test_timm_arguments_at_the_recipe_magnitude():
    m, plus = torch.tensor([9.0, 0.0, 10.0]), torch.ones(3)
    a = R.op_arguments(m, plus, increasing=True)
    assert a["posterize_bits"].tolist() == [1, 4, 0]  # 4 - int(m / 10 * 4)
    assert a["solarize_thresh"].tolist() == [26, 256, 0]  # 256 - int(m / 10 * 256)
    assert a["solarize_add"].tolist() == [99, 0, 110]
    assert a["rotate"].tolist() == pytest.approx([27.0, 0.0, 30.0])
    assert a["enhance"].tolist() == pytest.approx([1.81, 1.0, 1.9])
    assert R.op_arguments(m, -plus)["enhance"].tolist() == pytest.approx([0.19, 1.0, 0.1])


NEUTRAL_AT_ZERO = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y", "solarize", "solarize_add",
                   "color", "contrast", "brightness", "sharpness")  # fmt: skip


@pytest.mark.parametrize("name", NEUTRAL_AT_ZERO)
def test_magnitude_zero_is_identity_where_timm_has_a_neutral_level(name):
    # AutoContrast, Equalize, Invert take no magnitude; PosterizeIncreasing keeps 4 bits at 0.
    x = images()
    b = len(x)
    out = R.apply_ops(
        x, torch.full((b,), R.OP_INDEX[name]), torch.zeros(b), torch.ones(b), torch.arange(b) % 2 == 0
    )
    assert torch.equal(out, x)


def test_rand_augment_shape_dtype_determinism_and_gate():
    x = images(n=24)
    run = lambda seed, **kw: R.rand_augment(
        x, torch.Generator().manual_seed(seed), 2, 9, 0.5, FILL, **kw
    )
    a, b, c = run(0), run(0), run(1)
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    changed = (a != x).flatten(1).any(1)
    assert 0 < changed.sum() < len(x)  # P(no op on an image) = 0.25: some untouched, most changed
    assert torch.equal(run(0, prob=0.0), x)
    assert torch.equal(R.rand_augment(x, torch.Generator().manual_seed(0), num_ops=0), x)
    with pytest.raises(TypeError, match="uint8"):
        R.rand_augment(x.float(), torch.Generator())


def test_rand_augment_is_independent_per_image():
    x = images(n=24)
    other = x.clone()
    other[1:] = images(n=24, seed=1)[1:]
    a = R.rand_augment(x, torch.Generator().manual_seed(5), 2, 9, 0.5, FILL)
    b = R.rand_augment(other, torch.Generator().manual_seed(5), 2, 9, 0.5, FILL)
    assert torch.equal(a[0], b[0])  # image 0's result does not depend on the rest of the batch
    same = images(n=3)[:1].expand(64, -1, -1, -1).contiguous()  # one image, 64 times
    out = R.rand_augment(same, torch.Generator().manual_seed(0), 2, 9, 0.5, FILL)
    assert len(torch.unique(out.flatten(1), dim=0)) > 20  # each copy drew its own ops


def test_layer_draws_follow_timm_distributions():
    layer = R.sample_layer(20000, torch.Generator().manual_seed(0), "cpu", magnitude=9, magnitude_std=0.5)
    op = layer["op"]
    assert (op == -1).float().mean() == pytest.approx(0.5, abs=0.02)  # each op applies with p = 0.5
    counts = torch.bincount(op[op >= 0], minlength=len(R.OPS)).float()
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()  # uniform choice
    m = layer["magnitude"]
    assert m.mean() == pytest.approx(9.0, abs=0.02) and m.std() == pytest.approx(0.5, abs=0.03)
    assert m.max() <= 10.0 and m.min() >= 0.0
    assert (layer["sign"] < 0).float().mean() == pytest.approx(0.5, abs=0.02)
    assert layer["bicubic"].float().mean() == pytest.approx(0.5, abs=0.02)
    uni = R.sample_layer(
        20000, torch.Generator().manual_seed(0), "cpu", magnitude=9, magnitude_std=float("inf")
    )
    assert uni["magnitude"].mean() == pytest.approx(4.5, abs=0.1)  # timm: mstd > 100 is U(0, m)


# --------------------------------------------------------------------------------------------- mixup / cutmix


def test_mix_shapes_dtypes_determinism():
    x, y = images(n=12), torch.arange(12) % 5
    a = M.mix(x, y, torch.Generator().manual_seed(0), 5, label_smoothing=0.1)
    b = M.mix(x, y, torch.Generator().manual_seed(0), 5, label_smoothing=0.1)
    assert a[0].shape == x.shape and a[0].dtype == torch.uint8
    assert a[1].shape == (12, 5) and a[1].dtype == torch.float32
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    xf = x.float() / 255
    assert M.mix(xf, y, torch.Generator().manual_seed(0), 5)[0].dtype == torch.float32


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mix_targets_are_lam_weighted_smoothed_onehots(smoothing):
    y, c = torch.tensor([0, 3, 3, 1, 4, 2]), 5
    for seed in range(20):
        p = M.sample_mix(8, 8, torch.Generator().manual_seed(seed), "cpu")
        t = M.mix_targets(y, c, p["lam"], smoothing)
        lam = float(p["lam"])
        smooth = lambda k: F.one_hot(k, c).double() * (1 - smoothing) + smoothing / c
        expected = lam * smooth(y) + (1 - lam) * smooth(y.flip(0))
        torch.testing.assert_close(t.double(), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(t.sum(1), torch.ones(len(y)))


def test_mixup_blends_with_the_mirrored_batch_and_rounds():
    x, y = images(n=6), torch.arange(6)
    g = torch.Generator().manual_seed(0)
    p = M.sample_mix(16, 16, g, "cpu", mixup_alpha=0.8, cutmix_alpha=0.0)
    assert not p["cutmix"] and 0 < p["lam"] < 1
    lam = float(p["lam"])
    expected = torch.round(x.double() * lam + x.flip(0).double() * (1 - lam)).to(torch.uint8)
    assert torch.equal(M.mix_images(x, p), expected)
    out, t = M.mix(x, y, torch.Generator().manual_seed(0), 6, mixup_alpha=0.8, cutmix_alpha=0.0)
    assert torch.equal(out, expected) and t[0, 0] == pytest.approx(lam) and t[0, 5] == pytest.approx(1 - lam)


def test_cutmix_pastes_the_box_and_corrects_lam_by_its_area():
    x = images(n=6)
    clipped = 0
    for seed in range(40):
        p = M.sample_mix(
            16, 16, torch.Generator().manual_seed(seed), "cpu", mixup_alpha=0.0, cutmix_alpha=1.0
        )
        box = p["box"]
        assert p["cutmix"]
        assert float(p["lam"]) == pytest.approx(1 - box.sum().item() / 256)  # lam = 1 - box area / image area
        out = M.mix_images(x, p)
        assert torch.equal(out[:, :, box], x.flip(0)[:, :, box]) and torch.equal(
            out[:, :, ~box], x[:, :, ~box]
        )
        rows, cols = box.any(1).nonzero(), box.any(0).nonzero()
        if box.any():  # a rectangle
            assert box.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            touches_edge = rows.min() == 0 or cols.min() == 0 or rows.max() == 15 or cols.max() == 15
            clipped += bool(touches_edge)
    assert clipped > 0  # some boxes were clipped by the border, so the correction mattered


def test_mix_switch_and_prob():
    draws = [M.sample_mix(4, 4, torch.Generator().manual_seed(s), "cpu") for s in range(400)]
    share_cutmix = np.mean([bool(d["cutmix"]) for d in draws])
    assert share_cutmix == pytest.approx(0.5, abs=0.08)  # switch_prob 0.5
    x, y = images(n=6), torch.arange(6) % 3
    out, t = M.mix(x, y, torch.Generator().manual_seed(0), 3, mix_prob=0.0, label_smoothing=0.1)
    assert torch.equal(out, x)  # not mixed: lam = 1, targets are the smoothed one-hots
    torch.testing.assert_close(t, F.one_hot(y, 3).float() * 0.9 + 0.1 / 3)
    with pytest.raises(ValueError, match="mixup_alpha"):
        M.mix(x, y, torch.Generator(), 3, mixup_alpha=0, cutmix_alpha=0)


def test_smoothing_in_targets_equals_cross_entropy_label_smoothing():
    x, y = images(n=6), torch.tensor([0, 1, 2, 2, 1, 0])
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    _, t_smooth = M.mix(x, y, torch.Generator().manual_seed(3), 3, label_smoothing=0.1)
    _, t_plain = M.mix(x, y, torch.Generator().manual_seed(3), 3, label_smoothing=0.0)
    torch.testing.assert_close(
        F.cross_entropy(logits, t_smooth), F.cross_entropy(logits, t_plain, label_smoothing=0.1)
    )
