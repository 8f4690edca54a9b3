"""Importance scores: callables (model, parameter names, loader=None, cfg=None) -> {name: score
tensor}; higher = keep. `loader` (training batches) and `cfg` (the scoring family's options)
serve the data-driven scores, which their family registers here; magnitude ignores them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn as nn

from ..registry import Registry

Score = Callable[..., dict[str, torch.Tensor]]  # (model, names, loader=None, cfg=None)
SCORES: Registry[Score] = Registry("score")


@SCORES.register("magnitude")
def magnitude(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {name: params[name].detach().abs() for name in names}


@contextmanager
def eval_mode(model: nn.Module):
    """BatchNorm uses its running statistics while scoring (as the Synaptic-Flow code does)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
