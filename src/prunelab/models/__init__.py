"""The models the reproduced works use, by name: `build(arch, in_channels, num_classes, image_size)`.

Adding one: a factory decorated with `@MODELS.register("name")` in a module here, and
that module in the import line below.
"""

from __future__ import annotations

import torch.nn as nn

from . import lenet, mobilenet, resnet, vgg  # noqa: F401  (each registers its models)
from .registry import MODELS


def build(arch: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    return MODELS.get(arch)(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
