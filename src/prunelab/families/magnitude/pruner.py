"""Han et al. 2015's rounds: keep the largest |w|, to a target density (per layer or global) or
above quality x std of the layer's dense weights, or the largest N of every M along the input
dimension (prune.pattern); retrain under the masks after each round."""

from __future__ import annotations

import torch
import torch.nn as nn

from ... import family
from ...config import Experiment, PruneConfig
from ...family import PruneContext, ReportInputs
from ...pruning import pattern_record
from ...pruning.mask_pruner import MaskPruner
from ...pruning.schedule import round_targets
from ...pruning.scores import magnitude
from ...pruning.selection import select_in_scope, select_masks, threshold_masks
from ...report.experiment import rounds_description, target_text
from .settings import SCHEMA


def magnitude_masks(cfg: PruneConfig, k: int, model: nn.Module, current: dict[str, torch.Tensor],
                    dense_std: dict[str, float]) -> dict[str, torch.Tensor]:
    """The masks of round k of cfg.iterations: exact counts by |w| (per layer or global, layer_sparsity
    overrides ranked alone), Han's rule |w| > quality x k/n x the layer's dense std (`dense_std`), or
    the N largest |w| of every M under a pattern."""
    density, layer_density = round_targets(cfg, k)
    scores = magnitude(model, list(current))
    if cfg.pattern is not None:
        return pattern_record.select(cfg, scores, current)
    if cfg.quality is None:
        return select_in_scope(cfg.scope, scores, current, density, layer_density)
    # The quality rule's threshold rises linearly to quality x std over the rounds;
    # layers named in layer_sparsity still reach their exact target.
    params = dict(model.named_parameters())
    thresholds = {name: cfg.quality * k / cfg.iterations * dense_std[name]
                  for name in current if name not in layer_density}
    masks = threshold_masks(params, current, thresholds)
    masks.update(select_masks({name: scores[name] for name in layer_density}, current, layer_density))
    return masks


class MagnitudePruner(MaskPruner):
    patterns = True

    def __init__(self, ctx: PruneContext):
        super().__init__(ctx)
        params = dict(self.model.named_parameters())
        self.dense_std = {name: params[name].detach().std().item() for name in self.names}  # for quality x std

    def round_masks(self, k: int, current: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return magnitude_masks(self.exp.prune, k, self.model, current, self.dense_std)


def describe(exp: Experiment) -> str:
    cfg = exp.prune
    return rounds_description(cfg, f"quality {cfg.quality}" if cfg.quality is not None
                              else pattern_record.pattern_text(cfg) or target_text(cfg))


def sections(inputs: ReportInputs) -> list[str]:
    """The "N:M pattern" section of this family's runs with a pattern."""
    exp = inputs.exp
    if exp.prune is None or family.of(exp).name != SCHEMA.name:
        return []
    return pattern_record.section(inputs)
