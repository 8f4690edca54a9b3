"""Threshold pruning after sparsity-regularized training (DeepHoyer's recipe), and its prune rounds.

element:   keep |w| > t, t = the fixed threshold or std_ratio x std(w) of the layer
           (threshold_convention = "deephoyer": numpy's std over n, and |w| = t kept, as the original).
structure: with structure_rule = "group_norm", zero each output filter (row) whose L2 norm is
           <= t_rows and each input channel (column) whose L2 norm is <= t_cols; t = the fixed
           threshold, or std_ratio x std of that layer's row norms (column norms for columns).
           With structure_rule = "element", the element rule above; the all-zero filters and
           channels it leaves are the structure (DeepHoyer's structural results).
The std is taken over the weights as they are now, zeros of earlier rounds included,
as DeepHoyer's `prune_by_std` does. Every round applies the full threshold (no ramp):
with iterations > 1, later rounds catch what fine-tuning drove under it. Masks only shrink.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...config import Experiment, PruneConfig
from ...pruning.mask_pruner import MaskPruner
from ...report.markdown import plural
from .regularizers import group_norms
from .settings import STRUCTURE


def _threshold(cfg: PruneConfig, values: torch.Tensor) -> float:
    if cfg.threshold is not None:
        return cfg.threshold
    # std of a single value is NaN; such a layer has nothing to compare against: keep it.
    if values.numel() < 2:
        return 0.0
    numpy_std = cfg.threshold_convention == "deephoyer"  # over n, as np.std; else over n - 1
    return cfg.std_ratio * values.std(correction=0 if numpy_std else 1).item()


def _above(cfg: PruneConfig, magnitudes: torch.Tensor, threshold: float) -> torch.Tensor:
    """What survives a threshold: |w| > t (prunelab), or not |w| < t (DeepHoyer's code keeps |w| = t)."""
    return magnitudes >= threshold if cfg.threshold_convention == "deephoyer" else magnitudes > threshold


@torch.no_grad()
def structure_keep(cfg: PruneConfig, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool keep-vectors over the output filters (rows) and input channels (columns) of a weight."""
    rows, cols = group_norms(weight.detach().double())
    return _above(cfg, rows, _threshold(cfg, rows)), _above(cfg, cols, _threshold(cfg, cols))


def _expand(keep_rows: torch.Tensor, keep_cols: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The (out, in, *kernel) bool mask that is True where both the row and the column are kept."""
    trailing = (1,) * (len(shape) - 2)
    return keep_rows.view(-1, 1, *trailing) & keep_cols.view(1, -1, *trailing)


@torch.no_grad()
def threshold_round_masks(
    cfg: PruneConfig, model: nn.Module, current_masks: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """New masks (current & kept) for every parameter named in `current_masks`."""
    params = dict(model.named_parameters())
    new: dict[str, torch.Tensor] = {}
    kept_rows: dict[str, torch.Tensor] = {}  # layer name -> kept output filters, for its bias
    by_groups = cfg.granularity == STRUCTURE and cfg.structure_rule == "group_norm"
    for name, current in current_masks.items():
        weight = params[name].detach()
        if by_groups and weight.dim() >= 2:
            keep_rows, keep_cols = structure_keep(cfg, weight)
            keep_rows, keep_cols = keep_rows.to(current.device), keep_cols.to(current.device)
            kept_rows[name.rsplit(".", 1)[0]] = keep_rows
            new[name] = current & _expand(keep_rows, keep_cols, weight.shape)
        else:
            t = _threshold(cfg, weight)
            new[name] = current & _above(cfg, weight.abs(), t).to(current.device)
    if by_groups:
        # A bias (pruned only with prune_bias) follows its layer's output filters, not its own threshold.
        for name in current_masks:
            layer = name.rsplit(".", 1)[0]
            if params[name].dim() == 1 and layer in kept_rows:
                new[name] = current_masks[name] & kept_rows[layer]
    return new


class ThresholdPruner(MaskPruner):
    """Every round applies the full threshold to the weights as they are (no ramp)."""

    def round_masks(self, k: int, current: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return threshold_round_masks(self.exp.prune, self.model, current)


def describe(exp: Experiment) -> str:
    cfg = exp.prune
    structure = cfg.granularity == STRUCTURE and cfg.structure_rule == "group_norm"
    kept = "filters / input channels with L2 norm" if structure else "weights with |w|"
    std_of = "the layer's group norms" if structure else "the layer's weights"
    bound = f"{cfg.threshold}" if cfg.threshold is not None else f"{cfg.std_ratio} x std of {std_of}"
    reg = exp.train.regularizer
    trained = f" after training with {reg.kind} (decay {reg.decay:g})" if reg is not None else ""
    counted = (" (element-wise; the all-zero filters and channels it leaves are counted as structure, as "
               "DeepHoyer does)" if cfg.granularity == STRUCTURE and not structure else "")
    return (f"threshold{trained}: keep {kept} > {bound}{counted}; {plural(cfg.iterations, 'round')}, "
            f"{plural(cfg.finetune.epochs, 'fine-tune epoch')} per round at lr {cfg.finetune.lr} "
            f"({cfg.finetune.optimizer}), zeros held.")
