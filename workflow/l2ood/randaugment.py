"""RandAugment as the CCT CIFAR-10 recipe uses it (timm's ``rand-m9-mstd0.5-inc1``), batched on the device.

What timm does (``timm/data/auto_augment.py``, reached from SHI-Labs/Compact-Transformers'
``train.py`` through ``create_transform`` with ``aa: rand-m9-mstd0.5-inc1``), per image:
``num_ops`` (2) times, pick one of 15 ops uniformly, with replacement; apply it with
probability 0.5 at a magnitude drawn from N(``magnitude``, ``magnitude_std``) = N(9, 0.5)
clipped to [0, 10]; signed ops (rotate, shear, translate, the "increasing" enhancements) take a
random sign; geometric ops resample bilinear or bicubic at random (the recipe's
``train_interpolation: random``) and fill uncovered pixels with ``round(255 * mean)`` of the
dataset. ``inc1`` selects the ops whose strength grows with the magnitude.

Here every image draws its own op, gate, magnitude, sign and interpolation from the same
distributions, from a ``torch.Generator``, and the batch stays uint8 (B, C, H, W) throughout:

- point ops (AutoContrast, Equalize, Invert, Posterize, Solarize, SolarizeAdd, Contrast,
  Brightness) become one 256-entry lookup table per image and channel, applied with one gather;
- Color and Sharpness are blends with a per-image factor (PIL's ``ImageEnhance``);
- the five geometric ops (Rotate, ShearX/Y, TranslateX/YRel) are one affine map per image in
  PIL's pixel convention, resampled with PIL's own bilinear / bicubic formulas (a 4 x 4 gather).

Every op is computed for the whole batch and each image keeps the result of the op it drew:
more arithmetic than needed, but no host synchronisation and no data-dependent shapes (a uint8
32 px batch is tiny next to the model's work; the float64 resampling holds B x C x H x W x 16
values, 50 MB at batch 128).

All 15 ops of timm's RandAugment are implemented, none left out; ``increasing=False`` gives the
original (non-"inc") variants. Each op is bit-identical to Pillow's on uint8 RGB images
(tests/test_randaugment_mix.py compares them), with two deliberate exceptions:
- Posterize to 0 bits (PosterizeIncreasing at magnitude 10, Posterize below magnitude 2.5)
  gives black, as the Pillow of timm's day did; Pillow 13 refuses 0 bits with an error;
- which op, gate, magnitude, sign and interpolation an image gets comes from a torch.Generator,
  not from Python's and NumPy's global generators, so the draws differ from timm's (the
  distributions are the same).
"""

import functools
import math

import torch

MAX_LEVEL = 10.0  # timm's _LEVEL_DENOM: magnitudes live in [0, 10]
TIMM_FILL = (128, 128, 128)  # timm's default fill; the CCT recipe passes round(255 * dataset mean)

# timm's _RAND_INCREASING_TRANSFORMS order (names without the "Increasing" suffix).
OPS = (
    "auto_contrast", "equalize", "invert", "rotate", "posterize", "solarize", "solarize_add",
    "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y",
)  # fmt: skip
OP_INDEX = {name: i for i, name in enumerate(OPS)}
LUT_OPS = (
    "auto_contrast", "equalize", "invert", "posterize", "solarize", "solarize_add", "contrast", "brightness",
)  # fmt: skip
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


# ---------------------------------------------------------------------------------------------
# Op arguments from magnitudes: timm's *_level_to_arg, vectorised. ``m``: (B,) in [0, 10];
# ``sign``: (B,) of +-1.


def op_arguments(m: torch.Tensor, sign: torch.Tensor, increasing: bool = True) -> dict[str, torch.Tensor]:
    """Each op's argument per image, as timm derives it from the magnitude."""
    level = m / MAX_LEVEL
    if increasing:  # 'no change' at 1.0, moving towards 0.1 or 1.9 with the magnitude
        enhance = (1.0 + sign * level * 0.9).clamp(min=0.1)
        posterize_bits = 4 - torch.floor(level * 4).long()  # keep 4 down to 0 bits
        solarize_thresh = 256 - torch.floor(level * 256).long()  # threshold 256 (no change) down to 0
    else:
        enhance = level * 1.8 + 0.1
        posterize_bits = torch.floor(level * 4).long()
        solarize_thresh = torch.floor(level * 256).long()
    return {
        "rotate": sign * level * 30.0,  # degrees
        "shear": sign * level * 0.3,
        "translate": sign * level * 0.45,  # fraction of the image size (translate_pct)
        "enhance": enhance,
        "posterize_bits": posterize_bits,
        "solarize_thresh": solarize_thresh,
        "solarize_add": torch.floor(level * 110).long(),
    }


# ---------------------------------------------------------------------------------------------
# Point ops as lookup tables (B, C, 256), uint8: PIL's ImageOps / ImageEnhance on uint8 images.


def _levels(x: torch.Tensor) -> torch.Tensor:
    return torch.arange(256, device=x.device).view(1, 1, 256)


def _blend(degenerate: torch.Tensor, image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's Image.blend(degenerate, image, factor) on uint8: float32, truncated, clipped."""
    f = factor.float().view(-1, *([1] * (image.dim() - 1)))
    d = degenerate.float()
    return torch.floor(d + f * (image.float() - d)).clamp_(0, 255).to(torch.uint8)


def apply_lut(x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """x uint8 (B, C, H, W), lut (B, C, 256) uint8 -> lut[b, c, x[b, c, i, j]]."""
    b, c, h, w = x.shape
    return torch.gather(lut, 2, x.reshape(b, c, h * w).long()).view(b, c, h, w)


def identity_lut(x: torch.Tensor) -> torch.Tensor:
    return _levels(x).expand(x.shape[0], x.shape[1], 256).to(torch.uint8)


def invert_lut(x: torch.Tensor) -> torch.Tensor:
    return (255 - _levels(x)).expand(x.shape[0], x.shape[1], 256).to(torch.uint8)


def posterize_lut(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` (B,) most significant bits (0 bits: black)."""
    mask = torch.bitwise_left_shift(torch.full_like(bits, 255), 8 - bits.clamp(0, 8)) & 255
    return (_levels(x) & mask.view(-1, 1, 1)).expand(-1, x.shape[1], -1).to(torch.uint8)


def solarize_lut(x: torch.Tensor, thresh: torch.Tensor) -> torch.Tensor:
    """Invert levels >= ``thresh`` (B,)."""
    lv = _levels(x)
    return torch.where(lv < thresh.view(-1, 1, 1), lv, 255 - lv).expand(-1, x.shape[1], -1).to(torch.uint8)


def solarize_add_lut(x: torch.Tensor, add: torch.Tensor, thresh: int = 128) -> torch.Tensor:
    """Add ``add`` (B,) to levels below ``thresh``, saturating at 255."""
    lv = _levels(x)
    out = torch.where(lv < thresh, (lv + add.view(-1, 1, 1)).clamp(max=255), lv)
    return out.expand(-1, x.shape[1], -1).to(torch.uint8)


def brightness_lut(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with black."""
    lv = _levels(x).expand(x.shape[0], x.shape[1], 256)
    return _blend(torch.zeros_like(lv), lv, factor)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> L, (B, 3, H, W) uint8 -> (B, H, W) int32: ITU-R 601 with PIL's fixed-point rounding."""
    if x.shape[1] != 3:
        raise ValueError(f"color ops need RGB images (3 channels), got {x.shape[1]}")
    r, g, b = (x[:, i].int() for i in range(3))
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def contrast_lut(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level, rounded (PIL's ImageEnhance.Contrast)."""
    gray = grayscale(x)
    flat = gray.flatten(1).double()
    # A tensor divisor, not the number flat.shape[1]: with a Python number as divisor, CUDA multiplies by
    # its reciprocal, which can miss PIL's true division by one ulp and so round a .5 mean the other way.
    pixels = torch.full_like(flat[:, 0], flat.shape[1])
    mean = torch.floor(flat.sum(1) / pixels + 0.5)  # int(mean + 0.5) as PIL
    lv = _levels(x).expand(x.shape[0], x.shape[1], 256)
    return _blend(mean.view(-1, 1, 1).expand_as(lv), lv, factor)


def autocontrast_lut(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel's [min, max] to [0, 255]; a constant channel is left alone."""
    flat = x.flatten(2)
    lo, hi = flat.amin(2, keepdim=True).double(), flat.amax(2, keepdim=True).double()
    span = (hi - lo).clamp(min=1)
    # Not 255.0 / span: torch computes that as span.reciprocal() * 255 (Tensor.__rdiv__), one rounding
    # more than PIL's 255.0 / span, which floor() below can turn into a level off by one.
    scale = torch.full_like(span, 255.0) / span
    out = torch.floor(_levels(x) * scale - lo * scale).clamp(0, 255)
    return torch.where(hi > lo, out, _levels(x).double()).to(torch.uint8)


def equalize_lut(x: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.equalize per channel: lut[i] = (step // 2 + #pixels below i) // step,
    step = (#pixels - #pixels at the top level) // 255; identity where step is 0.

    Histograms by sort + searchsorted (deterministic on CUDA, unlike scatter_add)."""
    b, c = x.shape[:2]
    rows = x.reshape(b * c, -1).long().sort(dim=1).values
    n = rows.shape[1]
    lv = torch.arange(256, device=x.device).expand(b * c, 256).contiguous()
    below = torch.searchsorted(rows, lv, right=False)  # #pixels < i
    at_top = n - torch.searchsorted(
        rows, rows[:, -1:].contiguous(), right=False
    )  # #pixels at the highest level
    step = (n - at_top) // 255
    lut = (step // 2 + below) // step.clamp(min=1)
    out = torch.where(step > 0, lut.clamp(max=255), lv)
    return out.view(b, c, 256).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# Image ops that are not point ops.


def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the greyscale image (factor 0: grey, 1: unchanged)."""
    return _blend(grayscale(x).unsqueeze(1).expand_as(x), x, factor)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH-filtered image (3x3 kernel 1,1,1/1,5,1/1,1,1 over 13, rounded;
    the one-pixel border kept as is, as PIL's 3x3 filter does). Integer sums: exact."""
    xi = x.int()
    h, w = x.shape[2:]
    box = sum(xi[:, :, i : h - 2 + i, j : w - 2 + j] for i in range(3) for j in range(3))
    total = box + 4 * xi[:, :, 1:-1, 1:-1]
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = torch.div(2 * total + 13, 26, rounding_mode="floor").to(
        torch.uint8
    )  # floor(t/13 + 1/2)
    return _blend(smooth, x, factor)


def geometric_matrices(op: torch.Tensor, args: dict, height: int, width: int) -> torch.Tensor:
    """Per image (B, 2, 3): PIL's affine data (output pixel -> input pixel, in pixel units with
    pixel centres at +0.5) of the geometric op it drew; identity for the rest.

    Rotate turns counter-clockwise about the image centre (PIL's Image.rotate); ShearX maps
    x_in = x + s * y (about the top-left corner, as PIL's transform); TranslateX maps
    x_in = x + pct * width."""
    b, dev = op.shape[0], op.device
    theta = torch.zeros(b, 2, 3, device=dev, dtype=torch.float64)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    a = torch.deg2rad(-args["rotate"].double())  # PIL: angle = -radians(degrees)
    cos, sin = torch.cos(a), torch.sin(a)
    cx, cy = width / 2.0, height / 2.0
    rot = torch.stack(
        [torch.stack([cos, sin, cx - cos * cx - sin * cy], 1),
         torch.stack([-sin, cos, cy + sin * cx - cos * cy], 1)], 1
    )  # fmt: skip
    theta = torch.where((op == OP_INDEX["rotate"]).view(-1, 1, 1), rot, theta)
    shear, shift = args["shear"].double(), args["translate"].double()
    theta[:, 0, 1] = torch.where(op == OP_INDEX["shear_x"], shear, theta[:, 0, 1])
    theta[:, 1, 0] = torch.where(op == OP_INDEX["shear_y"], shear, theta[:, 1, 0])
    theta[:, 0, 2] = torch.where(op == OP_INDEX["translate_x"], shift * width, theta[:, 0, 2])
    theta[:, 1, 2] = torch.where(op == OP_INDEX["translate_y"], shift * height, theta[:, 1, 2])
    return theta


def _interpolate(v: list[torch.Tensor], d: torch.Tensor, bicubic: torch.Tensor) -> torch.Tensor:
    """Interpolate the 4 taps ``v`` at offsets -1, 0, +1, +2 at the fraction ``d`` in [0, 1), in
    PIL's Horner form (so a flat region gives its value exactly): its BICUBIC macro (cubic
    convolution, a = -1) or its BILINEAR one, v0 + d * (v1 - v0)."""
    v1, v2, v3, v4 = v
    cubic = v2 + d * ((v3 - v1) + d * ((2 * (v1 - v2) + v3 - v4) + d * (-v1 + v2 - v3 + v4)))
    linear = v2 + d * (v3 - v2)
    return torch.where(bicubic, cubic, linear)


@functools.lru_cache(maxsize=8)
def fill_tensor(fill: tuple, device: torch.device) -> torch.Tensor:
    """``fill`` as a (1, C, 1) float64 tensor on ``device``, built once per colour and device: a
    tensor made from Python numbers is a blocking host-to-device copy on CUDA, which would stall
    every training step (two RandAugment layers per CCT step). Read only: torch.where copies it."""
    return torch.as_tensor(fill, device=device, dtype=torch.float64).view(1, -1, 1)


def warp_affine(x: torch.Tensor, theta: torch.Tensor, bicubic: torch.Tensor, fill) -> torch.Tensor:
    """Resample each image with its affine map ``theta`` (B, 2, 3, PIL's convention), bilinear or
    bicubic per image (``bicubic`` (B,) bool), as PIL's ``Image.transform``: a pixel whose source
    point falls outside the image takes ``fill`` (one value per channel); inside, the 4 x 4 (or
    2 x 2) taps clamp to the edge; the result is truncated to uint8. Float64 throughout, so that
    the truncation lands where PIL's double arithmetic puts it."""
    b, c, h, w = x.shape
    dev = x.device
    ys, xs = torch.meshgrid(
        torch.arange(h, device=dev, dtype=torch.float64) + 0.5,
        torch.arange(w, device=dev, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    out_pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, h * w, 3)
    src = out_pts @ theta.transpose(1, 2)  # (B, H*W, 2): (x_in, y_in) in pixels
    sx, sy = src[..., 0], src[..., 1]
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    x0, y0 = torch.floor(sx - 0.5), torch.floor(sy - 0.5)  # PIL: pixel centres at +0.5
    dx, dy = (sx - 0.5 - x0).unsqueeze(1), (sy - 0.5 - y0).unsqueeze(1)  # (B, 1, H*W)
    offsets = torch.arange(-1, 3, device=dev)
    cols = (x0.long().unsqueeze(-1) + offsets).clamp(0, w - 1)  # (B, H*W, 4)
    rows = (y0.long().unsqueeze(-1) + offsets).clamp(0, h - 1) * w
    flat = x.reshape(b, c, h * w).double()
    cub = bicubic.view(b, 1, 1)

    def tap(i: int, j: int) -> torch.Tensor:  # (B, C, H*W): the pixel at row offset i, column offset j
        return torch.gather(flat, 2, (rows[..., i] + cols[..., j]).unsqueeze(1).expand(b, c, h * w))

    # along x in each of the 4 rows, then along y, as PIL; one contiguous (B, C, H*W) tensor per tap
    along_x = [_interpolate([tap(i, j) for j in range(4)], dx, cub) for i in range(4)]
    out = _interpolate(along_x, dy, cub)
    out = torch.where(inside.unsqueeze(1), torch.floor(out).clamp_(0, 255), fill_tensor(tuple(fill), dev))
    return out.view(b, c, h, w).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# One RandAugment layer with explicit per-image choices, then the sampler around it.


def apply_ops(
    x: torch.Tensor,
    op: torch.Tensor,
    magnitude: torch.Tensor,
    sign: torch.Tensor,
    bicubic: torch.Tensor,
    fill=TIMM_FILL,
    increasing: bool = True,
) -> torch.Tensor:
    """Apply to each image ``b`` the op ``OPS[op[b]]`` (-1: none) at ``magnitude[b]`` in [0, 10]
    with ``sign[b]`` (+-1), resampling bicubic where ``bicubic[b]``. uint8 in, uint8 out."""
    if x.dtype != torch.uint8:
        raise TypeError(
            f"rand_augment works on uint8 images (B, C, H, W), got {x.dtype}; augment before normalize"
        )
    args = op_arguments(magnitude.float(), sign.float(), increasing)
    lut_of = {
        "auto_contrast": lambda: autocontrast_lut(x),
        "equalize": lambda: equalize_lut(x),
        "invert": lambda: invert_lut(x),
        "posterize": lambda: posterize_lut(x, args["posterize_bits"]),
        "solarize": lambda: solarize_lut(x, args["solarize_thresh"]),
        "solarize_add": lambda: solarize_add_lut(x, args["solarize_add"]),
        "contrast": lambda: contrast_lut(x, args["enhance"]),
        "brightness": lambda: brightness_lut(x, args["enhance"]),
    }
    lut = identity_lut(x)
    for name in LUT_OPS:
        lut = torch.where((op == OP_INDEX[name]).view(-1, 1, 1), lut_of[name](), lut)
    out = apply_lut(x, lut)
    picks = lambda name: (op == OP_INDEX[name]).view(-1, 1, 1, 1)
    out = torch.where(picks("color"), color(x, args["enhance"]), out)
    out = torch.where(picks("sharpness"), sharpness(x, args["enhance"]), out)
    geometric = torch.zeros_like(op, dtype=torch.bool)
    for name in GEOMETRIC_OPS:
        geometric |= op == OP_INDEX[name]
    theta = geometric_matrices(op, args, x.shape[2], x.shape[3])
    return torch.where(geometric.view(-1, 1, 1, 1), warp_affine(x, theta, bicubic, fill), out)


def sample_layer(
    batch: int,
    generator: torch.Generator,
    device,
    magnitude: float,
    magnitude_std: float = 0.0,
    prob: float = 0.5,
) -> dict[str, torch.Tensor]:
    """Per-image random choices of one RandAugment layer, as timm draws them: the op (uniform,
    -1 where the 0.5 gate skips it), the magnitude (N(m, std) or, for std = inf, U(0, m);
    clipped to [0, 10]), the sign and the interpolation. Always the same number of draws."""
    op = torch.randint(0, len(OPS), (batch,), device=device, generator=generator)
    gate = torch.rand(batch, device=device, generator=generator) < prob
    noise = torch.randn(batch, device=device, generator=generator)
    uniform = torch.rand(batch, device=device, generator=generator)
    if math.isinf(magnitude_std):
        m = uniform * magnitude
    else:
        m = magnitude + magnitude_std * noise
    sign = torch.where(torch.rand(batch, device=device, generator=generator) > 0.5, -1.0, 1.0)
    bicubic = torch.rand(batch, device=device, generator=generator) < 0.5
    return {
        "op": torch.where(gate, op, -1),
        "magnitude": m.clamp(0.0, MAX_LEVEL),
        "sign": sign,
        "bicubic": bicubic,
    }


def rand_augment(
    x: torch.Tensor,
    generator: torch.Generator,
    num_ops: int = 2,
    magnitude: float = 9.0,
    magnitude_std: float = 0.0,
    fill=TIMM_FILL,
    increasing: bool = True,
    prob: float = 0.5,
) -> torch.Tensor:
    """timm's RandAugment on a uint8 batch (B, C, H, W), every image independently.

    The CCT recipe, ``rand-m9-mstd0.5-inc1``: ``num_ops=2, magnitude=9, magnitude_std=0.5,
    increasing=True``, with ``fill`` = round(255 * the dataset's mean) per channel (timm's
    ``img_mean`` hparam; (125, 123, 114) for CIFAR-10). Deterministic given ``generator``.
    """
    if magnitude_std > 100:  # timm's parser: "mstd > 100" means uniform sampling
        magnitude_std = float("inf")
    for _ in range(num_ops):
        layer = sample_layer(x.shape[0], generator, x.device, magnitude, magnitude_std, prob)
        x = apply_ops(x, layer["op"], layer["magnitude"], layer["sign"], layer["bicubic"], fill, increasing)
    return x
