"""random_resized_crop never waits for the host, keeps its boxes in the requested bounds, and gives what the
boolean-mask version gave."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from l2ood import augment as A

# aten ops whose result the host must read on CUDA: a scalar (.item(), if tensor:) or a size that depends on
# the data (nonzero, masked_select, unique, and indexing with a boolean mask, which calls nonzero inside).
SCALAR_OR_SIZE = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "unique_consecutive"}
INDEXING = {"index", "index_put", "index_put_", "_index_put_impl_"}


class NoHostSync(TorchDispatchMode):
    """Raise on any op that would make the host wait for a CUDA device (checked on CPU too)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1]
        if name in SCALAR_OR_SIZE:
            raise AssertionError(f"host sync: {func}")
        if name in INDEXING and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else [])
        ):
            raise AssertionError(f"host sync: {func} with a boolean mask")
        return func(*args, **(kwargs or {}))


def masked_reference(x, generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """The version before: the same draws, each interpolation run on the images a boolean mask picks."""
    b, _, h, w = x.shape
    area = torch.empty(b).uniform_(scale[0], scale[1], generator=generator)
    logr = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    cw = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)
    ch = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - cw)
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - ch)
    zero = torch.zeros_like(cw)
    theta = torch.stack([torch.stack([cw, zero, cx], 1), torch.stack([zero, ch, cy], 1)], 1)
    grid = F.affine_grid(theta, (b, x.shape[1], h, w), align_corners=False)
    bicubic = torch.rand(b, generator=generator) < 0.5
    xf, out = x.float(), torch.empty(x.shape, dtype=torch.float32)
    for mode, sel in (("bilinear", ~bicubic), ("bicubic", bicubic)):
        if sel.any():
            out[sel] = F.grid_sample(xf[sel], grid[sel], mode=mode, padding_mode="border", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def images(b=64, size=32, seed=0):
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_random_resized_crop_makes_no_host_sync():
    x = images()
    with NoHostSync():
        out = A.random_resized_crop(x, torch.Generator().manual_seed(0), (0.8, 1.0), (0.75, 1.3333))
    assert out.shape == x.shape and out.dtype == torch.uint8


def test_the_sync_check_catches_the_boolean_mask_version():
    with pytest.raises(AssertionError, match="host sync"), NoHostSync():
        masked_reference(images(), torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError, match="boolean mask"), NoHostSync():
        images()[torch.tensor([True] * 32 + [False] * 32)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bounds", [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.8, 1.0), (0.75, 1.3333))])
def test_same_images_as_the_boolean_mask_version(seed, bounds):
    """Same draws in the same order and the same per-image resampling: the distribution is unchanged."""
    x = images(seed=seed)
    new = A.random_resized_crop(x, torch.Generator().manual_seed(seed), *bounds)
    old = masked_reference(x, torch.Generator().manual_seed(seed), *bounds)
    assert torch.equal(new, old)


@pytest.mark.parametrize("scale,ratio", [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.8, 1.0), (0.75, 1.3333))])
def test_crop_boxes_keep_the_requested_scale_and_ratio(scale, ratio):
    cw, ch, cx, cy = A.crop_boxes(20_000, torch.Generator().manual_seed(1), scale, ratio, "cpu")
    eps = 1e-6
    assert (cx.abs() + cw <= 1 + eps).all() and (cy.abs() + ch <= 1 + eps).all(), "a box leaves the image"
    whole = (cw < 1) & (ch < 1)  # not clipped to the image
    clipped = ~whole  # (for the CCT recipe's bounds most are: area x ratio > 1 makes the box wider than the image)
    assert ((cw[clipped] == 1) | (ch[clipped] == 1)).all() and (cw > 0).all() and (ch > 0).all()
    area, r = (cw * ch)[whole], (cw / ch)[whole]  # as fractions of a square image
    assert whole.sum() > 1000
    assert area.min() >= scale[0] - eps and area.max() <= scale[1] + eps
    assert r.min() >= ratio[0] - eps and r.max() <= ratio[1] + eps


def test_crop_box_ratio_is_log_uniform_and_area_uniform():
    """Where no box is clipped (area below 1/2 with ratios up to 4/3), the draws are the requested laws."""
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    cw, ch, _, _ = A.crop_boxes(40_000, torch.Generator().manual_seed(2), (0.08, 1.0), (3 / 4, 4 / 3), "cpu")
    small = cw * ch < 0.5
    quartiles = torch.tensor([0.25, 0.5, 0.75])
    q = torch.quantile(torch.log(cw / ch)[small], quartiles)
    assert q.tolist() == pytest.approx([lo + (hi - lo) * f for f in quartiles.tolist()], abs=0.02)
    assert small.float().mean().item() == pytest.approx((0.5 - 0.08) / 0.92, abs=0.01)


def test_whole_image_box_returns_the_image_in_both_interpolations():
    x = images(b=16)
    out = A.random_resized_crop(x, torch.Generator().manual_seed(0), (1.0, 1.0), (1.0, 1.0))
    assert torch.equal(out, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch's sync debug mode needs CUDA")
def test_no_sync_on_cuda():
    x = images().cuda()
    gen = torch.Generator(device="cuda").manual_seed(0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        A.random_resized_crop(x, gen, (0.8, 1.0), (0.75, 1.3333))
    finally:
        torch.cuda.set_sync_debug_mode("default")


class NoHostData(NoHostSync):
    """NoHostSync, and also raise on a tensor made from a sequence of Python numbers (``lift_fresh`` of more than
    a 0-dim tensor): on CUDA that is a blocking host-to-device copy in the middle of the step. (A Python scalar
    assigned into a slice is lifted to a 0-dim CPU tensor too, but copied as a fill value: no transfer.)"""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name.split("::")[-1] == "lift_fresh" and args[0].dim() > 0:
            raise AssertionError(f"host-to-device copy: {func}")
        return super().__torch_dispatch__(func, types, args, kwargs)


def test_the_cct_data_path_makes_no_host_sync_or_copy():
    """The CCT recipe's batch as the training loop builds it (crop, flip, RandAugment with the dataset's fill,
    mixup/cutmix): nothing waits for the device and, once the first step has built the fill colour, nothing is
    copied to it."""
    import yaml
    from conftest import ROOT

    from l2ood.mix import mix

    recipe = yaml.safe_load((ROOT / "config.yaml").read_text())["recipes"]["cct300"]
    mixing = {k: recipe[k] for k in ("mixup_alpha", "cutmix_alpha", "mix_prob", "switch_prob")}
    fill, gen = (125, 123, 114), torch.Generator().manual_seed(0)
    A.augment(images(), recipe, gen, fill)  # the first step builds the fill tensor
    with NoHostData():
        for _ in range(3):  # with num_ops=2 a geometric op is all but certain in 3 x 64 x 2 draws
            x = A.augment(images(), recipe, gen, fill)
            x, target = mix(x, torch.arange(64) % 10, gen, 10, **mixing)
    assert x.shape == (64, 3, 32, 32) and target.shape == (64, 10)
    with pytest.raises(AssertionError, match="host-to-device"), NoHostData():
        torch.as_tensor(fill, dtype=torch.float64)
