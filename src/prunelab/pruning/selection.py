"""Turning scores into masks with exact counts: per layer or one global ranking."""

from __future__ import annotations

import torch


def _keep_top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """A bool mask with exactly `keep` True entries at the highest scores (ties broken by index)."""
    flat = scores.flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if keep > 0:
        mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask.view_as(scores)


def _masked_scores(scores: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    # Already-pruned entries rank below everything, so masks only shrink.
    return torch.where(current, scores.double(), torch.full_like(scores, -float("inf"), dtype=torch.float64))


def select_masks(
    scores: dict[str, torch.Tensor],
    current: dict[str, torch.Tensor],
    layer_density: dict[str, float],
    global_density: float | None = None,
) -> dict[str, torch.Tensor]:
    """New masks keeping round(density x size) entries.

    Parameters named in `layer_density` are ranked within themselves; the rest
    are ranked together to reach `global_density` over their combined size.
    A target above the current density keeps the current mask.
    """
    new = {}
    for name, density in layer_density.items():
        keep = min(round(density * scores[name].numel()), int(current[name].sum()))
        new[name] = _keep_top(_masked_scores(scores[name], current[name]), keep)
    pooled = [name for name in scores if name not in layer_density]
    if pooled:
        if global_density is None:
            raise ValueError(f"no density given for {pooled}")
        flat = torch.cat([_masked_scores(scores[name], current[name]).flatten() for name in pooled])
        alive = sum(int(current[name].sum()) for name in pooled)
        keep = min(round(global_density * flat.numel()), alive)
        kept = _keep_top(flat, keep)
        offset = 0
        for name in pooled:
            size = scores[name].numel()
            new[name] = kept[offset : offset + size].view_as(scores[name])
            offset += size
    return new


def threshold_masks(
    params: dict[str, torch.Tensor], current: dict[str, torch.Tensor], thresholds: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Keep entries whose magnitude exceeds the layer's threshold (Han et al. 2015)."""
    return {name: current[name] & (params[name].detach().abs() > thresholds[name]) for name in thresholds}
