"""The prune stage's part for families that prune under masks (family.Pruner): one mask per
prunable parameter, shrinking every round, held at zero through fine-tuning.

A family subclasses MaskPruner and writes `round_masks` (the new masks of round k);
`after_update` may add log fields (and act on the model) once the masks are applied.
"""

from __future__ import annotations

import abc
from pathlib import Path

import torch

from ..config import Experiment
from ..errors import UserError
from ..family import PruneContext
from ..train import KeepMasks
from .masks import MaskSet, prunable_parameters


def check_layer_names(exp: Experiment, names: list[str]) -> None:
    """prune.layer_sparsity may only name prunable layers."""
    layers = [name.rsplit(".", 1)[0] for name in names]
    for layer in exp.prune.layer_sparsity:
        if layer not in layers:
            raise UserError(
                f"{exp.path}: prune.layer_sparsity.{layer}: no prunable layer of that name "
                f"(prunable: {', '.join(dict.fromkeys(layers))})"
            )


class MaskPruner(abc.ABC):
    unit = "round"

    def __init__(self, ctx: PruneContext):
        self.ctx, self.exp, self.model = ctx, ctx.exp, ctx.model
        cfg = ctx.exp.prune
        self.rounds = cfg.iterations
        self.names = prunable_parameters(self.model, cfg.prune_bias, cfg.prune_classifier)
        check_layer_names(ctx.exp, self.names)
        self.masks = MaskSet.ones(self.model, self.names)
        self.epoch_log: list[dict] = []

    @abc.abstractmethod
    def round_masks(self, k: int, current: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """New masks for round k; they are and-ed with the current ones (masks only shrink)."""

    def after_update(self, k: int) -> dict:
        """Extra log fields of round k, once its masks are applied."""
        return {}

    def prune_round(self, k: int) -> dict:
        self.masks.update(self.round_masks(k, self.masks.masks))
        return self.after_update(k)

    def sizes(self) -> dict:
        density = self.masks.density()
        return {"density": density, "compression": 1 / density}

    def state(self) -> dict:
        return {"masks": self.masks.state()}

    def restore(self, checkpoint: dict, path: Path) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.masks = MaskSet(self.model, checkpoint["masks"])

    def hooks(self) -> list:
        return [KeepMasks(self.masks)]

    def summary(self) -> str:
        density = self.masks.density()
        return f"density {100 * density:.2f}% ({1 / density:.2f}x)"
