"""CIFAR VGGs: the OpenLTH / Synaptic-Flow "lottery" plan and MASE's small vgg7.

3x3 convs (padding 1, with bias, as in OpenLTH and Synaptic-Flow), 2x2 max-pools
at each "M", then a global average pool and one Linear(512, classes) head `fc`.
On 32x32 inputs the four pools leave 2x2 maps; on 28x28 they leave 1x1
(28 -> 14 -> 7 -> 3 -> 1), so the adaptive pool makes both work. Unlike Li et
al. 2017's VGG-16 there is no 512-512 hidden classifier layer (262,656 fewer
parameters).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import MODELS

POOL = "M"
# Channel plans: ints are 3x3 conv widths, "M" a 2x2 max-pool.
PLANS: dict[str, list] = {
    "vgg11": [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512],
    "vgg13": [64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512],
    "vgg16": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512],
    "vgg19": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512, 512, 512, 512],
    # MASE's 7-layer CIFAR VGG (6 convs + fc): 32 -> 16 -> 8 -> 4 spatially, always BN.
    "vgg7": [128, 128, POOL, 256, 256, POOL, 512, 512, POOL],
}


class VGG(nn.Module):
    """`features` (conv[-BN]-ReLU and max-pools), `pool` (global average) and `fc`."""

    def __init__(self, plan: list, in_channels: int = 3, num_classes: int = 10, batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in plan:
            if item == POOL:
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(channels, item, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU(inplace=True))
            channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def _register(name: str, plan: list, batch_norm: bool) -> None:
    def factory(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> VGG:
        # image_size is not needed: the global pool absorbs any side >= 2**pools.
        return VGG(plan, in_channels=in_channels, num_classes=num_classes, batch_norm=batch_norm)

    factory.__name__ = name
    MODELS.register(name)(factory)


for _depth in ("vgg11", "vgg13", "vgg16", "vgg19"):
    _register(_depth, PLANS[_depth], batch_norm=False)
    _register(f"{_depth}_bn", PLANS[_depth], batch_norm=True)
_register("vgg7", PLANS["vgg7"], batch_norm=True)
