"""MobileNetV2 for CIFAR, following kuangliu's pytorch-cifar port.

Changes from Sandler et al. 2018 (ImageNet) for 32x32 inputs: the stem conv has
stride 1 and the second stage (24 channels) stride 1, so the map shrinks only
three times (32 -> 16 -> 8 -> 4; 28 -> 14 -> 7 -> 4). As in kuangliu's port:
every block has its 1x1 expansion conv (also at expansion 1), ReLU rather than
ReLU6, and each stride-1 block adds a shortcut, a 1x1 conv + BN where the width
changes. Head: 1x1 conv to 1280, global average pool, `fc`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import MODELS

# (expansion, out channels, blocks, stride of the first block)
PLAN = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
STEM = 32
HEAD = 1280


class InvertedResidual(nn.Module):
    """1x1 expand - 3x3 depthwise (carries the stride) - 1x1 linear projection."""

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int):
        super().__init__()
        hidden = expansion * in_planes
        self.conv1 = nn.Conv2d(in_planes, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut: nn.Module | None = None  # stride-2 blocks have no residual
        if stride == 1:
            self.shortcut = (
                nn.Identity()
                if in_planes == out_planes
                else nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out if self.shortcut is None else out + self.shortcut(x)


@MODELS.register("mobilenet_v2")
class MobileNetV2(nn.Module):
    """`conv1`/`bn1` stem, `layers` of inverted residuals, `conv2`/`bn2` head conv, `pool`, `fc`."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32):
        super().__init__()
        # image_size is not needed: the global pool absorbs the final map size.
        self.conv1 = nn.Conv2d(in_channels, STEM, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        blocks = []
        in_planes = STEM
        for expansion, out_planes, count, stride in PLAN:
            for position in range(count):
                blocks.append(InvertedResidual(in_planes, out_planes, expansion, stride if position == 0 else 1))
                in_planes = out_planes
        self.layers = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(in_planes, HEAD, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(HEAD)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(self.layers(x))))
        return self.fc(self.pool(x).flatten(1))
