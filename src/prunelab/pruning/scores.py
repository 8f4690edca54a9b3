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


# BatchNorm while scoring: "eval" uses the running statistics (the Synaptic-Flow code's default);
# "train" normalizes with each batch's statistics (the GraSP authors' code), and the running
# statistics those forward passes update are put back afterwards, so scoring leaves the model as it was.
BATCHNORM_MODES = ("eval", "train")


@contextmanager
def batchnorm_mode(model: nn.Module, mode: str):
    if mode == "eval":
        with eval_mode(model):
            yield model
        return
    was_training = model.training
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    model.train()
    try:
        yield model
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])


@contextmanager
def eval_mode(model: nn.Module):
    """BatchNorm uses its running statistics while scoring (as the Synaptic-Flow code does)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
