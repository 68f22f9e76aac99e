"""ResNet18 / ResNet50 as the paper uses them: DDU's CIFAR ResNets (Mukhoti et al. 2021).

Differences from torchvision's ImageNet ResNet, all from DDU's ``net/resnet.py`` with mod=True:
- stem: one 3x3 stride-1 convolution, no max-pool (CIFAR-sized inputs: 32 px, or 64 px for
  TinyImageNet); stages at width w, 2w, 4w, 8w (w = 64) with strides 1, 2, 2, 2;
- leaky ReLU (slope 0.01) instead of ReLU;
- a parameter-free shortcut wherever a block changes the shape: average-pool by the stride
  (2x2 mean; on an odd size, take every second pixel, as DDU does), then match the channels by
  appending zero channels (out - in of them) after the input's channels;
- every convolution spectrally normalized (``spectral.SpectralNormConv2d``, coefficient 3),
  each for the input shape it sees at this ``image_size``;
- global average pooling; the linear classifier is the head added by ``build_model``.
The encoder returns the pooled (B, 8w * expansion) features: 512 for ResNet18, 2048 for ResNet50.
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import register
from .layers import global_avg_pool
from .spectral import DEFAULT_COEFF, SpectralNormConv2d, conv_output_size

LEAKY_SLOPE = 0.01  # F.leaky_relu's default, as in DDU


def make_conv(cin: int, cout: int, kernel_size: int, stride: int, in_size: int, spectral: bool, coeff: float):
    """Bias-free conv with "same" padding; spectrally normalized for (cin, in_size, in_size) inputs."""
    padding = kernel_size // 2
    if spectral:
        return SpectralNormConv2d(
            cin, cout, kernel_size, stride, padding, bias=False, coeff=coeff, input_size=in_size
        )
    return nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False)


class AvgPoolShortcut(nn.Module):
    """Parameter-free shortcut: average-pool by ``stride``, then zero-pad ``cout - cin`` channels."""

    def __init__(self, stride: int, cin: int, cout: int):
        super().__init__()
        if cout < cin:
            raise ValueError(f"zero-padding shortcut cannot shrink channels ({cin} -> {cout})")
        self.stride, self.extra_channels = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            # Even size: 2x2 mean; odd size: subsample, so the shape matches the conv path (ceil(H/2)).
            x = (
                F.avg_pool2d(x, self.stride)
                if x.shape[-1] % 2 == 0
                else x[..., :: self.stride, :: self.stride]
            )
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def _shortcut(stride: int, cin: int, cout: int) -> nn.Module:
    return AvgPoolShortcut(stride, cin, cout) if stride != 1 or cin != cout else nn.Identity()


# BasicBlock and Bottleneck look alike on purpose: each is the paper's (DDU's) block written out
# layer by layer, so that a reader can check it against the source and the parameter counts in
# tests/test_models.py. A shared "n convs" abstraction would hide where the stride sits (the
# first 3x3 conv) and which size each spectral-norm conv is built for.
class BasicBlock(nn.Module):
    """3x3 conv (stride) - BN - lrelu - 3x3 conv - BN, plus shortcut, then lrelu."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, in_size: int, spectral: bool, coeff: float):
        super().__init__()
        mid_size = conv_output_size(in_size, 3, stride, 1)
        self.conv1 = make_conv(cin, planes, 3, stride, in_size, spectral, coeff)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = make_conv(planes, planes, 3, 1, mid_size, spectral, coeff)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(stride, cin, planes)
        self.out_size = mid_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.bn1(self.conv1(x)), LEAKY_SLOPE)
        out = self.bn2(self.conv2(out))
        return F.leaky_relu(out + self.shortcut(x), LEAKY_SLOPE)


class Bottleneck(nn.Module):
    """1x1 - BN - lrelu - 3x3 (stride) - BN - lrelu - 1x1 (4x planes) - BN, plus shortcut, lrelu."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, in_size: int, spectral: bool, coeff: float):
        super().__init__()
        mid_size = conv_output_size(in_size, 3, stride, 1)
        cout = planes * self.expansion
        self.conv1 = make_conv(cin, planes, 1, 1, in_size, spectral, coeff)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = make_conv(planes, planes, 3, stride, in_size, spectral, coeff)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = make_conv(planes, cout, 1, 1, mid_size, spectral, coeff)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(stride, cin, cout)
        self.out_size = mid_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.bn1(self.conv1(x)), LEAKY_SLOPE)
        out = F.leaky_relu(self.bn2(self.conv2(out)), LEAKY_SLOPE)
        out = self.bn3(self.conv3(out))
        return F.leaky_relu(out + self.shortcut(x), LEAKY_SLOPE)


class ResNetEncoder(nn.Module):
    """Stem, four stages, global average pooling: (B, 3, H, W) -> (B, feature_dim)."""

    def __init__(self, block, num_blocks, image_size: int, width: int, spectral: bool, coeff: float):
        super().__init__()
        self.conv1 = make_conv(3, width, 3, 1, image_size, spectral, coeff)
        self.bn1 = nn.BatchNorm2d(width)
        cin, size, stages = width, image_size, []
        for i, n in enumerate(num_blocks):
            planes = width * 2**i
            blocks = []
            for stride in [1 if i == 0 else 2] + [1] * (n - 1):
                blocks.append(block(cin, planes, stride, size, spectral, coeff))
                cin, size = planes * block.expansion, blocks[-1].out_size
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.feature_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.bn1(self.conv1(x)), LEAKY_SLOPE)
        x = self.layers(x)
        return global_avg_pool(x)


def _resnet(block, num_blocks, image_size, width, spectral, coeff):
    encoder = ResNetEncoder(block, num_blocks, image_size, width, spectral, coeff)
    return encoder, encoder.feature_dim


@register("resnet18")
def resnet18(image_size: int = 32, width: int = 64, spectral: bool = True, coeff: float = DEFAULT_COEFF):
    """ResNet18 (BasicBlock x [2, 2, 2, 2]); features: 8 * width (512)."""
    return _resnet(BasicBlock, (2, 2, 2, 2), image_size, width, spectral, coeff)


@register("resnet50")
def resnet50(image_size: int = 32, width: int = 64, spectral: bool = True, coeff: float = DEFAULT_COEFF):
    """ResNet50 (Bottleneck x [3, 4, 6, 3], stride on the 3x3 conv); features: 32 * width (2048)."""
    return _resnet(Bottleneck, (3, 4, 6, 3), image_size, width, spectral, coeff)
