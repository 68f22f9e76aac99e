"""OpenOOD v1.5's CIFAR ResNet18 (``ResNet18_32x32``), in the module layout of its checkpoints.

OpenOOD v1.5 (Zhang et al. 2023, github.com/Jingkang50/OpenOOD, ``openood/networks/resnet18_32x32.py``)
publishes CIFAR-10/100 ResNet18 checkpoints trained with its recipe. Its network is the plain
CIFAR ResNet18: a 3x3 stride-1 stem without max pooling, four stages of two basic blocks (64, 128,
256, 512 channels; stride 2 from the second stage on), a 1x1 convolution and batch norm as the
shortcut where the shape changes, global average pooling, then ``fc``. The modules here carry the
same names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.shortcut.0``, ...), so a checkpoint's
keys are this encoder's keys, and its ``fc`` is the head's (``l2ood.weights`` maps the one onto the
other). No spectral normalization (unlike the paper's ``resnet18``): use ``head: nol2`` to evaluate
OpenOOD's own checkpoints as trained.
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import register


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; the shortcut is a 1x1 convolution + batch norm where the
    stride or the width changes, the identity (an empty ``nn.Sequential``, no keys) elsewhere."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        changes = stride != 1 or cin != cout
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if changes
            else nn.Sequential()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class ResNet18_32x32(nn.Module):
    """The encoder: images (B, 3, H, W) -> features (B, 512), the input of OpenOOD's ``fc``."""

    widths = (64, 128, 256, 512)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for stage, width in enumerate(self.widths, start=1):
            first_stride = 1 if stage == 1 else 2
            blocks = [BasicBlock(cin, width, first_stride), BasicBlock(width, width, 1)]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            cin = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in range(1, len(self.widths) + 1):
            x = getattr(self, f"layer{stage}")(x)
        return torch.flatten(self.avgpool(x), 1)


@register("openood_resnet18_32x32")
def openood_resnet18_32x32(image_size: int = 32):
    """OpenOOD v1.5's ``ResNet18_32x32`` encoder (any input size: the pooling is adaptive)."""
    return ResNet18_32x32(), ResNet18_32x32.widths[-1]
