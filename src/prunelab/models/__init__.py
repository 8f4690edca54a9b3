"""Model registry. A factory takes (in_channels, num_classes, image_size) and returns an nn.Module."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")

from . import lenet, mobilenet, resnet, vgg  # noqa: E402,F401  (register the models)


def build(arch: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    return MODELS.get(arch)(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def build_for(exp) -> nn.Module:
    """The experiment's model, shaped for its data set."""
    from ..data.catalog import DATASETS

    spec = DATASETS[exp.data.dataset]
    channels, height, _ = spec.image_shape
    return build(exp.model.arch, in_channels=channels, num_classes=spec.num_classes, image_size=height)
