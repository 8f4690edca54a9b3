"""Weight initializations a config can choose (`[model] init`), applied after a model is built.

"default": each layer's own PyTorch initialization (kaiming-uniform weights with a=sqrt(5), small
uniform biases). "kaiming_normal": as the lottery models of the Synaptic-Flow code
(Models/lottery_*.py `_initialize_weights`) and the COS598D assignment built on it: conv and
linear weights kaiming-normal (fan-in, ReLU gain sqrt(2)), biases zero, BatchNorm weight 1 and
bias 0. The bias choice alone changes which weights SNIP, GraSP and SynFlow keep.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..registry import Registry

INITS: Registry[Callable[[nn.Module], None]] = Registry("init")


@INITS.register("default")
def pytorch_default(model: nn.Module) -> None:
    """Leave every layer as its constructor initialized it."""


@INITS.register("kaiming_normal")
def kaiming_normal(model: nn.Module) -> None:
    """Synaptic-Flow's lottery-model initialization, in module order (as its loop over modules())."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
