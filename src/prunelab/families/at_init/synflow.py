"""SynFlow (Tanaka et al. 2020): iterative synaptic-flow scores at initialization.

R is the sum of the outputs of the network with every float parameter and buffer replaced
by its absolute value, fed one all-ones input, BatchNorm in eval mode; a weight's score is
|w * dR/dw|. The model itself is never modified: the |.| copies run through
torch.func.functional_call, so no signs need restoring. float32 first; float64 once R or a
score overflows (products of |w| over ~40+ layers).

`synflow_rounds` rounds of score-then-prune, round r keeping density d^(r/rounds) (from
the current density, exponentially), each round's pruning applied to the copies before
the next round scores. By default every round keeps exactly its count, as the Synaptic-Flow
code does: each group's k-th largest score is found in O(n) (selection.kth_largest) and
everything at or above it stays, so a round costs one forward and backward of one image
plus a few elementwise passes over the weights (VGG16: 14.7M). Of scores tied at that
value the first in index order stay; a per-layer floor, or a k-th score of 0 (where pruned
weights tie), goes through the general top-k selection instead.
`synflow_exact_rounds = false` prunes rounds 1 .. rounds-1 at thresholds estimated from a
sample (densities within about 1% of the schedule's). The last round's scores always go to
the caller's exact selection. Conv nets are scored in channels_last memory order (oneDNN's
kernels; 1.5-1.7x faster at batch 1 on CPU); the scores are the same up to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ...pruning.scores import SCORES, eval_mode
from ...pruning.selection import (alive_scores, floor_counts, kept_count, kth_largest, sampled_threshold,
                                  select_in_scope, top_mask)

Named = dict[str, torch.Tensor]  # by parameter name: masks or scores


def _layout(tensor: torch.Tensor) -> torch.Tensor:
    """4-d tensors (conv weights, image batches) in channels_last order, others as they are."""
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor


class AbsoluteNetwork:
    """|.| copies of a model's float tensors in one dtype; the scored weights are autograd leaves."""

    def __init__(self, model: nn.Module, names: list[str], masks: Named | None = None, dtype=torch.float32):
        self.model, self.names = model, names
        state = {k: (_layout(v.detach().abs().to(dtype)) if v.is_floating_point() else v)
                 for k, v in model.state_dict().items()}
        if masks is not None:
            for name in names:
                state[name].mul_(masks[name])  # abs() made fresh copies: the model's weights are untouched
        self._use(state)

    def _use(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state
        self.weights = [state[name].requires_grad_() for name in self.names]

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    def promote(self) -> None:
        """Go on in float64 (float32 overflowed): the pruned copies are cast, not the model."""
        self._use({k: (_layout(v.detach().double()) if v.is_floating_point() else v) for k, v in self.state.items()})

    def scores(self, shape: tuple, device) -> list[torch.Tensor] | None:
        """|w * dR/dw| for each weight; None when R or a score is not finite in this dtype."""
        ones = _layout(torch.ones((1, *shape), dtype=self.dtype, device=device))
        with eval_mode(self.model):
            flow = torch.func.functional_call(self.model, self.state, (ones,)).sum()
            if not bool(torch.isfinite(flow)):
                return None
            grads = torch.autograd.grad(flow, self.weights)
        # |.|: a gradient can be negative where BN subtracts |running mean| (e.g. MobileNetV2's linear bottlenecks).
        scores = [g.mul_(w.detach()).abs_() for g, w in zip(grads, self.weights)]
        # One reduction each: a max is finite only if every entry is (inf and nan both propagate).
        return scores if bool(torch.isfinite(torch.stack([s.amax() for s in scores])).all()) else None

    def scores_or_promote(self, shape: tuple, device) -> list[torch.Tensor]:
        scores = self.scores(shape, device)
        if scores is None and self.dtype == torch.float32:
            self.promote()
            scores = self.scores(shape, device)
        if scores is None:
            raise ValueError("synflow scores overflow even in float64")
        return scores

    def alive(self) -> Named:
        """Weights still in the network: pruning zeroes the copies (a weight that is exactly 0 carries no flow)."""
        return {name: w.detach() != 0 for name, w in zip(self.names, self.weights)}

    @torch.no_grad()
    def keep(self, masks: Named) -> None:
        for name, w in zip(self.names, self.weights):
            w.mul_(masks[name])

    @torch.no_grad()
    def prune_below(self, scores: list[torch.Tensor], thresholds: list[float], floors: list[torch.Tensor | None],
                    keep_equal: bool = False) -> None:
        """Zero every weight whose score is below its threshold (and at it unless `keep_equal`), except
        those in its floor mask."""
        for w, score, threshold, floor in zip(self.weights, scores, thresholds, floors):
            # 1.0 / 0.0 in place of the score, which is no longer needed
            keep = score.ge_(threshold) if keep_equal else score.gt_(threshold)
            if floor is not None:
                keep.masked_fill_(floor.view_as(keep), 1.0)
            w.mul_(keep)


def input_shape(loader) -> tuple[tuple, torch.device]:
    """(shape of one input without the batch dimension, device) from the loader's first batch."""
    if loader is None:
        raise ValueError("score 'synflow' needs one batch to read the input shape from (a loader)")
    images, _ = next(iter(loader))
    return tuple(images.shape[1:]), images.device


@SCORES.register("synflow")
def synflow_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> Named:
    """One round of SynFlow on the model as it is (pruned weights already zero)."""
    shape, device = input_shape(loader)
    return dict(zip(names, AbsoluteNetwork(model, names).scores_or_promote(shape, device)))


def _density(masks: list[torch.Tensor]) -> float:
    return sum(int(m.count_nonzero()) for m in masks) / sum(m.numel() for m in masks)


def _toward(start: float, final: float, step: float) -> float:
    """Exponential from the start density to the final one: start x (final / start)^step."""
    return start * (final / start) ** step if start > 0 else 0.0


Groups = list[tuple[tuple[str, ...], float]]  # weights ranked together, and their density


def _groups(names: list[str], scope: str, density: float, layer_density: dict[str, float]) -> Groups:
    """Scope "layer": every layer alone (at its override or `density`); "global": the overridden
    layers alone and the rest pooled at `density`."""
    if scope == "layer":
        return [((n,), layer_density.get(n, density)) for n in names]
    pooled = tuple(n for n in names if n not in layer_density)
    return [((n,), d) for n, d in layer_density.items()] + ([(pooled, density)] if pooled else [])


def _approximate_round(network: AbsoluteNetwork, scores: Named, groups: Groups, scope: str, floor: float,
                       generator: torch.Generator) -> None:
    """Prune to about these densities at sampled thresholds; the floor's entries are exact."""
    names = network.names
    thresholds = {}
    for group, fraction in groups:
        thresholds.update(dict.fromkeys(group, sampled_threshold([scores[n] for n in group], fraction, generator)))
    floors = dict.fromkeys(names)
    if floor > 0 and scope == "global":
        # Each pooled layer's own best entries stay, as the last round's exact selection reserves them.
        pooled = groups[-1][0]
        alive = network.alive()
        reserved = floor_counts({n: scores[n].numel() for n in pooled},
                                {n: int(alive[n].count_nonzero()) for n in pooled}, floor)
        floors.update({n: top_mask(alive_scores(scores[n], alive[n]), reserved[n]) for n in pooled})
    network.prune_below([scores[n] for n in names], [thresholds[n] for n in names], [floors[n] for n in names])


def _keep_first_ties(scores: list[torch.Tensor], value: float, count: int) -> float:
    """Of the entries equal to `value`, lift the first `count` (in index order, tensor by tensor) to
    +inf; returns the threshold that then keeps exactly those above `value`: the next float up."""
    for score in scores:
        if count <= 0:
            break
        tied = (score == value).nonzero()[:count]  # index order: the same choice on every run
        score[tuple(tied.T)] = math.inf
        count -= tied.shape[0]
    return float(torch.nextafter(torch.tensor(value, dtype=scores[0].dtype),
                                 torch.tensor(math.inf, dtype=scores[0].dtype)))


def _exact_round(network: AbsoluteNetwork, scores: Named, groups: Groups, alive: dict[tuple, int], count: str,
                 generator: torch.Generator) -> bool:
    """Prune each group to exactly its count (selection.COUNTS' `count`, at most its `alive`
    weights): every score above the group's k-th largest, and of those equal to it the first
    ones in index order. `alive` is updated here, which saves a counting pass per round.
    False, with nothing pruned, where the k-th score is 0 (pruned weights tie there)."""
    thresholds = {}
    for group, fraction in groups:
        size = sum(scores[n].numel() for n in group)
        keep = min(kept_count(fraction, size, count), alive[group])
        threshold, at_or_above = kth_largest([scores[n] for n in group], keep, generator) if keep else (math.inf, 0)
        if threshold <= 0:
            return False
        if at_or_above > keep:
            tied = sum(int((scores[n] == threshold).count_nonzero()) for n in group)
            threshold = _keep_first_ties([scores[n] for n in group], threshold, keep - (at_or_above - tied))
        thresholds.update(dict.fromkeys(group, threshold))
        alive[group] = keep
    names = network.names
    network.prune_below([scores[n] for n in names], [thresholds[n] for n in names], [None] * len(names),
                        keep_equal=True)
    return True


def iterate(cfg, model: nn.Module, current: Named, loader, density: float, layer_density: dict[str, float]):
    """Rounds 1 .. rounds-1 of SynFlow; returns (the last round's scores, the weights alive before it)."""
    names, at = list(current), cfg.at_init
    shape, device = input_shape(loader)
    network = AbsoluteNetwork(model, names, current)
    pooled = [n for n in names if n not in layer_density] or names
    start = _density([current[n] for n in pooled])
    layer_start = {n: _density([current[n]]) for n in layer_density}
    generator = torch.Generator().manual_seed(0)  # the samples never touch the global random state
    # The threshold route of exact rounds cannot reserve a floor: the general selection does.
    threshold_route = at.synflow_exact_rounds and not (at.min_layer_density > 0 and cfg.scope == "global")
    alive = None  # weights kept per group, known from the previous exact round
    for r in range(1, at.synflow_rounds):
        scores = dict(zip(names, network.scores_or_promote(shape, device)))
        step = r / at.synflow_rounds
        round_density = _toward(start, density, step)
        round_layers = {n: _toward(layer_start[n], d, step) for n, d in layer_density.items()}
        groups = _groups(names, cfg.scope, round_density, round_layers)
        if not at.synflow_exact_rounds:
            _approximate_round(network, scores, groups, cfg.scope, at.min_layer_density, generator)
            continue
        if alive is None:
            kept = network.alive()
            alive = {group: sum(int(kept[n].count_nonzero()) for n in group) for group, _ in groups}
        if not (threshold_route and _exact_round(network, scores, groups, alive, at.count, generator)):
            network.keep(select_in_scope(cfg.scope, scores, network.alive(), round_density, round_layers,
                                         at.min_layer_density, at.count))
            alive = None
    return dict(zip(names, network.scores_or_promote(shape, device))), network.alive()
