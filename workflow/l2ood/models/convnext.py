"""ConvNeXt-Tiny (Liu et al. 2022) as torchvision defines it, modified as the paper's appendix A.1 says.

torchvision's ``convnext_tiny``: a patchify stem (conv + LayerNorm), four stages of
[3, 3, 9, 3] blocks at widths [96, 192, 384, 768], a downsampling layer (LayerNorm + 2x2
stride-2 conv) between stages, then global average pooling and LayerNorm. A block is
depthwise conv -> LayerNorm -> Linear(d, 4d) -> GELU -> Linear(4d, d), times a learned
per-channel layer scale (initialised at 1e-6), with stochastic depth growing linearly from 0 to
0.1 over the 18 blocks, added to its input. Conv and Linear weights: truncated normal, std 0.02.

The paper's modification "so that it would converge better on CIFAR10": the first layer's
kernel 4 -> 3 and stride 4 -> 2 (its padding stays 0 as in torchvision, so 32 px maps to
15, 7, 3, 1 px over the stages), and all other kernels 7 -> 3 (the depthwise convs, padding 1;
the 2x2 downsampling convs are unchanged). The encoder ends with the pooled, layer-normed
768-d feature (torchvision's ``classifier[:2]``); the head from ``build_model`` replaces its Linear.
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import register
from .layers import drop_path, global_avg_pool


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, kernel_size: int, layer_scale: float, drop_prob: float):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # channels last: LayerNorm and Linear act on C
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + drop_path(self.layer_scale * y, self.drop_prob, self.training)


class ConvNeXtEncoder(nn.Module):
    def __init__(self, dims, depths, stem_kernel, stem_stride, kernel_size, layer_scale, stochastic_depth):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, dims[0], stem_kernel, stem_stride), LayerNorm2d(dims[0], eps=1e-6)
        )
        total, done = sum(depths), 0
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            if i > 0:
                stages.append(
                    nn.Sequential(LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2))
                )
            blocks = []
            for _ in range(depth):
                blocks.append(
                    ConvNeXtBlock(dim, kernel_size, layer_scale, stochastic_depth * done / max(total - 1, 1))
                )
                done += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.norm(global_avg_pool(x))


@register("convnext_tiny")
def convnext_tiny(
    image_size: int = 32,
    width: int = 96,
    depths=(3, 3, 9, 3),
    stem_kernel: int = 3,
    stem_stride: int = 2,
    kernel_size: int = 3,
    layer_scale: float = 1e-6,
    stochastic_depth: float = 0.1,
):
    """Modified ConvNeXt-Tiny; widths width * (1, 2, 4, 8); features: 8 * width (768).

    stem_kernel=4, stem_stride=4, kernel_size=7 give torchvision's unmodified ConvNeXt-Tiny.
    """
    size = (image_size - stem_kernel) // stem_stride + 1
    if size < 2 ** (len(depths) - 1):
        raise ValueError(f"convnext_tiny: image_size {image_size} is too small for {len(depths)} stages")
    dims = [width * 2**i for i in range(len(depths))]
    encoder = ConvNeXtEncoder(
        dims, depths, stem_kernel, stem_stride, kernel_size, layer_scale, stochastic_depth
    )
    return encoder, dims[-1]
