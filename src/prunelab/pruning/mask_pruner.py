"""The prune stage's part for families that prune under masks (family.Pruner): one mask per
prunable parameter, shrinking every round, held at zero through fine-tuning.

A family subclasses MaskPruner and writes `round_masks` (the new masks of round k);
`after_update` may add log fields (and act on the model) once the masks are applied. A family
whose round_masks keeps prune.pattern (pattern_record.select) sets `patterns = True`; the others refuse it.
Under a pattern the log gains `pattern` and `dense_layers`, the checkpoint a `pattern` record, and
resuming checks the saved masks and weights against the pattern.
"""

from __future__ import annotations

import abc
from pathlib import Path

import torch

from ..config import Experiment
from ..errors import UserError
from ..family import PruneContext, select
from ..train import KeepMasks
from . import pattern_record
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
    patterns = False  # whether round_masks keeps prune.pattern (N:M groups chosen by the family's score)

    def __init__(self, ctx: PruneContext):
        self.ctx, self.exp, self.model = ctx, ctx.exp, ctx.model
        cfg = ctx.exp.prune
        if cfg.pattern is not None and not self.patterns:
            raise UserError(f"{ctx.exp.path}: prune.pattern: the {select(cfg).name} family does not prune to N:M "
                            "patterns; leave pattern out")
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
        cfg = self.exp.prune
        return {**(pattern_record.log_fields(cfg, self.masks.masks) if cfg.pattern else {}), **self.after_update(k)}

    def sizes(self) -> dict:
        density = self.masks.density()
        return {"density": density, "compression": 1 / density}

    def state(self) -> dict:
        masks = self.masks.state()
        cfg = self.exp.prune
        return {"masks": masks, **({"pattern": pattern_record.record(cfg, masks)} if cfg.pattern else {})}

    def restore(self, checkpoint: dict, path: Path) -> None:
        if self.exp.prune.pattern is not None:
            try:
                pattern_record.check_checkpoint(self.exp.prune, checkpoint, str(path))
            except ValueError as error:
                raise UserError(f"{error}; remake it with --force") from None
        self.model.load_state_dict(checkpoint["model"])
        self.masks = MaskSet(self.model, checkpoint["masks"])

    def hooks(self) -> list:
        return [KeepMasks(self.masks)]

    def summary(self) -> str:
        density = self.masks.density()
        return f"density {100 * density:.2f}% ({1 / density:.2f}x)"
