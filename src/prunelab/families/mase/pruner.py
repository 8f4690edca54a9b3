"""The mase family's rounds (MASE group 3's prune pass): weight masks by group norm or at random each
round; after the last round's weights, input masks on every layer but the first, so that the last
fine-tuning (and test and report) runs with the activations pruned."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from ...checkpoints import build_for
from ...config import Experiment
from ...data.loader import TensorLoader
from ...pruning.activations import attach_input_masks, input_density, saved_input_masks
from ...pruning.mask_pruner import MaskPruner
from ...pruning.pattern_record import pattern_text
from ...report.experiment import rounds_description, target_text
from .activation_ranking import activation_masks, calibration_batches
from .weights import weight_masks


def calibration_loader(loader: TensorLoader, seed: int) -> TensorLoader:
    """The training images in a shuffle seeded by the experiment alone (not by the round or epoch the
    training loader has reached, so a resumed run calibrates on the same images), without augmentation."""
    return TensorLoader(loader.images, loader.labels, loader.batch_size, loader.mean, loader.std, shuffle=True,
                        seed=seed, device=loader.device)


class MasePruner(MaskPruner):
    patterns = True

    def round_masks(self, k: int, current: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return weight_masks(self.exp.prune, k, self.model, current, self.exp.seed)

    def after_update(self, k: int) -> dict:
        cfg = self.exp.prune
        if k == self.rounds and cfg.activation_sparsity > 0:
            batches = calibration_batches(calibration_loader(self.ctx.train_loader, self.exp.seed),
                                          cfg.calibration_batches)
            attach_input_masks(self.model, activation_masks(self.model, batches, cfg.activation_sparsity,
                                                            cfg.activation_method, self.exp.seed))
        return {"input_density": input_density(self.model)}

    def restore(self, checkpoint: dict, path: Path) -> None:
        attach_input_masks(self.model, saved_input_masks(checkpoint["model"]))  # the buffers load_state_dict fills
        super().restore(checkpoint, path)

    def summary(self) -> str:
        inputs = input_density(self.model)
        return super().summary() + (f", input channels kept {100 * inputs:.2f}%" if inputs < 1 else "")


def rebuild(exp: Experiment, checkpoint: dict) -> Optional[nn.Module]:
    """The configured model with the checkpoint's input masks attached (None when it has none: the
    configured model as it is), ready for load_state_dict."""
    masks = saved_input_masks(checkpoint["model"])
    if not masks:
        return None
    model = build_for(exp)
    attach_input_masks(model, masks)
    return model


def describe(exp: Experiment) -> str:
    cfg = exp.prune
    target = pattern_text(cfg) or target_text(cfg)
    weights = f"MASE's prune pass, {cfg.granularity} granularity: {rounds_description(cfg, target)}"
    if cfg.activation_sparsity == 0:
        return weights
    return (f"{weights} After the last round's weights, {100 * cfg.activation_sparsity:g}% of the input channels "
            f"(conv feature maps, linear neurons) of every conv/linear layer but the first are masked at run time, "
            f"ranked by {cfg.activation_method} over {cfg.calibration_batches} training batches; the last "
            "fine-tuning, the test and this report run with them.")
