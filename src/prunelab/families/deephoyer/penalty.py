"""[train.regularizer] as a training hook: decay x the regularizer summed over the chosen weights,
added to the objective and logged per epoch in train_log.csv's `regularizer` column."""

from __future__ import annotations

import torch.nn as nn

from ...config import Experiment
from ...errors import UserError
from ...pruning.masks import prunable_parameters
from ...train import TrainHook
from .regularizers import build_regularizer


class Penalty(TrainHook):
    column = "regularizer"

    def __init__(self, regularizer):
        self.regularizer = regularizer

    def penalty(self, model: nn.Module):
        return self.regularizer(model)


def covered_parameters(model: nn.Module, coverage: str) -> list[str]:
    """The parameter names a `coverage` (settings.COVERAGES) regularizes."""
    if coverage == "all_parameters":
        return [name for name, _ in model.named_parameters()]
    return prunable_parameters(model, prune_classifier=coverage == "all_weights")


def train_hooks(exp: Experiment, model: nn.Module) -> list[TrainHook]:
    """The penalty hook when [train.regularizer] is set; its `layers` must name prunable layers."""
    cfg = exp.train.regularizer
    if cfg is None:
        return []
    # Fixed by [train.regularizer] rather than read from [prune], which is not part of the train
    # stage's config hash.
    names = covered_parameters(model, cfg.coverage)
    for layer in cfg.layers:
        if f"{layer}.weight" not in names:
            layers = ", ".join(name.rsplit(".", 1)[0] for name in names)
            raise UserError(f"{exp.path}: train.regularizer.layers: no prunable layer {layer!r} (prunable: {layers})")
    if cfg.layers:
        names = [name for name in names if name.rsplit(".", 1)[0] in cfg.layers]
    return [Penalty(build_regularizer(cfg, model, names))]
