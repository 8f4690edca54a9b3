"""Importance scores: callables (model, parameter names) -> {name: score tensor}; higher = keep."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn as nn

from ..registry import Registry

Score = Callable[[nn.Module, list[str]], dict[str, torch.Tensor]]
SCORES: Registry[Score] = Registry("score")


@SCORES.register("magnitude")
def magnitude(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
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
