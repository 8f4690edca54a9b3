"""The model registry. A factory takes (in_channels, num_classes, image_size) and returns an nn.Module;
each model module registers its factories with `@MODELS.register(name)`."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")
