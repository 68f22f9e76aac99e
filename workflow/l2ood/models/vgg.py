"""VGG16 for 32x32 input as in DDU's ``net/vgg.py`` (Mukhoti et al. 2021), mod=True.

Thirteen 3x3 convolutions (bias-free: batch norm follows each) with batch norm and leaky ReLU
(slope 0.01), a 2x2 max-pool after each of the five groups, then global average pooling
(at 32 px the map is already 1x1; at 64 px it averages a 2x2 map). No fully connected layers:
the linear classifier is the head added by ``build_model``. Every convolution is spectrally
normalized for the input shape it sees (coefficient 3), as the paper's ResNets.
"""

from torch import nn

from . import register
from .layers import GlobalAvgPool
from .resnet import LEAKY_SLOPE, make_conv
from .spectral import DEFAULT_COEFF

#: Simonyan & Zisserman's configuration D: output channels at width 64, "M" = 2x2 max-pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@register("vgg16")
def vgg16(image_size: int = 32, width: int = 64, spectral: bool = True, coeff: float = DEFAULT_COEFF):
    """VGG16 with channels scaled by width / 64; features: 8 * width (512)."""
    if image_size < 32:
        raise ValueError(f"vgg16 halves the image five times and needs image_size >= 32, got {image_size}")
    layers, cin, size = [], 3, image_size
    for item in VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            size //= 2
            continue
        cout = item * width // 64
        layers += [
            make_conv(cin, cout, 3, 1, size, spectral, coeff),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(LEAKY_SLOPE),
        ]
        cin = cout
    layers += [GlobalAvgPool()]
    return nn.Sequential(*layers), cin
