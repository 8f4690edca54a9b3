"""Weight masks of the mase family: groups of weights (single weights, kernels or output channels)
ranked by the norm of their weights or at random, kept to exact counts per layer or over all layers.

Groups. A weight is viewed as (groups, group size): element = each weight; kernel = each (out, in)
slice (kh x kw weights of a conv; a single weight of a linear, whose "kernel" is 1 x 1); channel =
each output channel (a conv filter, a linear row). A group is kept or pruned whole.

Scores are per-weight normalized norms: l1-norm = mean |w| (the L1 norm / group size), l2-norm =
root mean square (the L2 norm / sqrt(group size)). Within a layer every group has the same size, so
this is the plain norm's order; across layers ("global" scope) it compares groups of different sizes
(a 3x3 kernel with a 1-weight linear "kernel", a 64 x 3 x 3 filter with a 512-wide row) on the same
per-weight scale, where raw L1 sums would favour the larger groups. Element-wise it is |w|, as in
MASE's pass (its global L1 thresholds all |w| at one quantile).

Counts. layer scope: each layer keeps selection.kept_count(density, groups) groups (its weight density
is then exactly kept/groups). global scope: groups are taken in score order until the kept weights reach
kept_count(density, all weights), so the total overshoots by less than one group (exact element-wise).
MASE thresholds at torch.quantile instead, which keeps about, not exactly, the target.

Pattern. With prune.pattern = "N:M" (element granularity only) every group of M consecutive weights
along the input dimension keeps its N best per-weight scores (pruning/pattern.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...config import PruneConfig
from ...pruning import pattern_record
from ...pruning.schedule import round_targets
from ...pruning.selection import alive_scores, kept_count, select_per_layer


def groups_of(tensor: torch.Tensor, granularity: str) -> torch.Tensor:
    """The tensor as (groups, group size) for a granularity (a view of the same order of entries)."""
    if granularity == "element":
        return tensor.reshape(-1, 1)
    if granularity == "kernel":  # (out x in, kh x kw ...); a linear's (out x in, 1)
        return tensor.reshape(tensor.shape[0] * tensor.shape[1], -1)
    return tensor.reshape(tensor.shape[0], -1)  # channel


def expand(group_mask: torch.Tensor, like: torch.Tensor, granularity: str) -> torch.Tensor:
    """A per-group bool mask spread over every weight of its group, shaped like `like`."""
    size = groups_of(like, granularity).shape[1]
    return group_mask[:, None].expand(-1, size).reshape(like.shape)


def group_scores(weight: torch.Tensor, granularity: str, method: str, generator: torch.Generator) -> torch.Tensor:
    """One score per group, higher = keep (see the module docstring for the normalization)."""
    groups = groups_of(weight.detach().float(), granularity)
    if method == "random":
        return torch.rand(groups.shape[0], generator=generator).to(weight.device)
    if method == "l1-norm":
        return groups.abs().mean(1)
    return groups.pow(2).mean(1).sqrt()  # l2-norm


def select_global(scores: dict[str, torch.Tensor], alive: dict[str, torch.Tensor], sizes: dict[str, int],
                  density: float) -> dict[str, torch.Tensor]:
    """Group masks over several layers: groups in score order (ties: earlier layer, lower index) until the
    kept weights reach kept_count(density, all weights); pruned groups stay pruned."""
    names = list(scores)
    flat = torch.cat([alive_scores(scores[n], alive[n]) for n in names])
    weights_per_group = torch.cat([torch.full((scores[n].numel(),), sizes[n], device=flat.device) for n in names])
    total = sum(scores[n].numel() * sizes[n] for n in names)
    living = sum(int(alive[n].count_nonzero()) * sizes[n] for n in names)
    budget = min(kept_count(density, total), living)
    order = torch.sort(flat, descending=True, stable=True).indices
    reached = torch.cumsum(weights_per_group[order], 0)
    # The shortest prefix whose weights reach the budget (nothing when the budget is 0).
    keep = int(torch.searchsorted(reached, torch.tensor([budget], device=reached.device))) + 1 if budget > 0 else 0
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    chosen[order[:keep]] = True
    masks, offset = {}, 0
    for name in names:
        masks[name] = chosen[offset : offset + scores[name].numel()]
        offset += scores[name].numel()
    return masks


def round_generator(seed: int, k: int) -> torch.Generator:
    """The random method's draws in round k: seeded by the experiment's seed and the round."""
    return torch.Generator().manual_seed(seed * 100_003 + k)


def weight_masks(cfg: PruneConfig, k: int, model: nn.Module, current: dict[str, torch.Tensor],
                 seed: int) -> dict[str, torch.Tensor]:
    """The weight masks of round k of cfg.iterations (prune.granularity, method, scope, targets and
    layer_sparsity overrides, which are ranked within their layer in either scope); element-wise under
    a pattern, the N best-scored of every M."""
    density, layer_density = round_targets(cfg, k)
    params = dict(model.named_parameters())
    generator = round_generator(seed, k)
    granularity = cfg.granularity
    if cfg.pattern is not None:  # granularity "element" (config/pattern.py): one score per weight
        scores = {n: group_scores(params[n], granularity, cfg.method, generator).view(params[n].shape) for n in current}
        return pattern_record.select(cfg, scores, current)
    scores = {name: group_scores(params[name], granularity, cfg.method, generator) for name in current}
    alive = {name: groups_of(mask, granularity).any(1) for name, mask in current.items()}
    if cfg.scope == "layer":
        layer_density = {name: layer_density.get(name, density) for name in current}
    chosen = select_per_layer({n: scores[n] for n in layer_density}, alive, layer_density)
    pooled = [name for name in current if name not in layer_density]
    if pooled:
        sizes = {name: groups_of(current[name], granularity).shape[1] for name in pooled}
        chosen.update(select_global({n: scores[n] for n in pooled}, {n: alive[n] for n in pooled}, sizes, density))
    return {name: expand(chosen[name], current[name], granularity) for name in current}
