"""Per-round targets for iterative pruning (round k of n, 1-based) and the masks they give."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import PruneConfig
from .at_init import at_init_masks, uses_at_init
from .scores import SCORES
from .selection import select_masks, threshold_masks
from .threshold import threshold_round_masks


def density_at(final_density: float, k: int, n: int, schedule: str) -> float:
    """exponential: d^(k/n), each round removes the same fraction of the survivors;
    linear: sparsity grows by equal steps."""
    if schedule == "exponential":
        return final_density ** (k / n)
    return 1 - (1 - final_density) * k / n


def round_masks(
    cfg: PruneConfig,
    k: int,
    model: nn.Module,
    current: dict[str, torch.Tensor],
    dense_std: dict[str, float],
    loader=None,
) -> dict[str, torch.Tensor]:
    """The masks of round k (`loader`: training batches, for data-driven scores): quality x std thresholds, or exact per-layer/global densities
    (method = "threshold": DeepHoyer's fixed or std-ratio threshold, see threshold.py)."""
    if cfg.method == "threshold":
        return threshold_round_masks(cfg, model, current)
    if uses_at_init(cfg):  # random / snip / grasp / synflow, magnitude from init: batches + [prune.at_init]
        return at_init_masks(cfg, k, model, current, loader)
    n = cfg.iterations
    names = list(current)
    overridden = {f"{layer}.weight": 1 - s for layer, s in cfg.layer_sparsity.items()}
    layer_density = {name: density_at(d, k, n, cfg.schedule) for name, d in overridden.items()}
    scores = SCORES.get(cfg.method)(model, names)
    if cfg.quality is not None:
        # Han et al. 2015: threshold = quality x std of the layer's dense weights,
        # raised linearly to the full quality over the rounds.
        params = dict(model.named_parameters())
        thresholds = {
            name: cfg.quality * k / n * dense_std[name] for name in names if name not in layer_density
        }
        masks = threshold_masks(params, current, thresholds)
        masks.update(select_masks({n_: scores[n_] for n_ in layer_density}, current, layer_density))
        return masks
    # With only layer_sparsity given, the unlisted layers stay dense.
    final = cfg.target_density() if cfg.target_density() is not None else 1.0
    if cfg.scope == "layer":
        for name in names:
            layer_density.setdefault(name, density_at(final, k, n, cfg.schedule))
        return select_masks(scores, current, layer_density)
    return select_masks(scores, current, layer_density, density_at(final, k, n, cfg.schedule))
