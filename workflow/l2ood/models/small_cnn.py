"""A small CNN for the demo's 8x8 digits (and any tiny input): the paper's recipe, scaled down.

Three 3x3 conv blocks (conv, batch norm, leaky ReLU 0.01 as the paper's ResNets), one 2x2
max-pool after the second, global average pooling: features of ``width * 4`` dimensions.
"""

from torch import nn

from . import register
from .layers import GlobalAvgPool


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.01)]


@register("smallcnn")
def small_cnn(image_size: int = 8, width: int = 16) -> tuple[nn.Module, int]:
    layers = [
        *_block(3, width),
        *_block(width, width * 2),
        nn.MaxPool2d(2),
        *_block(width * 2, width * 4),
        GlobalAvgPool(),
    ]
    return nn.Sequential(*layers), width * 4
