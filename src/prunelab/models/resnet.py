"""CIFAR ResNets: He et al. 2016's resnet20/32/56/110 and the 3x3-stem resnet18/50.

Shortcuts: identity when the shape is kept, otherwise a 1x1 conv (stride 2 where
the stage halves the map) + BatchNorm, i.e. option B as in OpenLTH's CIFAR
ResNet. He et al.'s CIFAR paper used option A (zero-padded identity, no
parameters); option B adds 576 + 2,176 = 2,752 parameters to resnet20/32/56/110
and gives structured pruning a real layer to remove channels from. Convs have
no bias (BatchNorm follows each); the head is a global average pool and `fc`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import MODELS


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, as torchvision's v1.5), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """3x3 stem conv (stride 1, no max-pool), stages `layer1..`, global average pool, `fc`.

    The first stage keeps the map size and each later one halves it
    (32 -> 32, 16, 8[, 4]; 28 -> 28, 14, 7[, 4]).
    """

    def __init__(self, block: type, blocks: list[int], widths: list[int], in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        for index, (count, planes) in enumerate(zip(blocks, widths)):
            stride = 1 if index == 0 else 2
            stage = []
            for position in range(count):
                stage.append(block(in_planes, planes, stride if position == 0 else 1))
                in_planes = planes * block.expansion
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
        self.num_stages = len(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.fc(self.pool(x).flatten(1))


def _register(name: str, block: type, blocks: list[int], widths: list[int]) -> None:
    def factory(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> ResNet:
        # image_size is not needed: the global pool absorbs the final map size.
        return ResNet(block, blocks, widths, in_channels=in_channels, num_classes=num_classes)

    factory.__name__ = name
    MODELS.register(name)(factory)


# He et al. 2016 CIFAR: depth = 6n + 2, n basic blocks in each of 3 stages of 16/32/64 channels.
for _depth in (20, 32, 56, 110):
    _n = (_depth - 2) // 6
    _register(f"resnet{_depth}", BasicBlock, [_n] * 3, [16, 32, 64])
_register("resnet18", BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512])
_register("resnet50", Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512])
