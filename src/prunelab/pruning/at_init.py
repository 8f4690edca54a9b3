"""Pruning at initialization: random, SNIP, GraSP and SynFlow scores, their masks, and controls.

Every score is a callable (model, names, loader=None, cfg=None) -> {name: tensor}, higher =
keep, registered in SCORES beside "magnitude"; `loader` yields (images, labels) batches and
`cfg` is the [prune.at_init] table. The scores follow the Synaptic-Flow code (Tanaka et al.
2020), which also holds the SNIP and GraSP pruners they are compared with:

  random    standard-normal noise: a uniformly random mask (same density in every layer).
  snip      |w * dL/dw| (Lee et al. 2019), L summed over `score_batches` training batches.
  grasp     w * (H g) with g = dL/dw of the temperature-scaled loss L(f / T) (Wang et al.
            2020). GraSP removes the *largest* S = -w * (H g); keeping the largest w * (H g)
            is the same ranking in this module's "higher = keep" convention.
  synflow   |w * dR/dw|, R = sum of the outputs of the network with every parameter and
            buffer replaced by its absolute value (signs restored: the model itself is never
            changed), fed one all-ones input, BatchNorm in eval mode; float32, redone in
            float64 when R or a score overflows (products of |w| over ~40+ layers). Iterated:
            `synflow_rounds` rounds of score-then-prune, round r keeping density d^(r/rounds),
            the round's mask applied to the weights before the next round scores.

Masks keep exact counts (`top_mask`); `min_layer_density` reserves each layer's best
entries before the global ranking fills the rest, so the total stays exact. The Frankle et
al. 2021 controls (shuffle each layer's mask, re-draw the surviving weights) are applied
right after the masks are computed (`after_masks`).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..log import console
from .scores import SCORES

# Methods scored by this module; "magnitude" from a fresh init (start = "init") also takes this path.
AT_INIT_METHODS = ("random", "snip", "grasp", "synflow")
# Seed offsets so the controls' random draws differ from the model's own initialization.
SHUFFLE_SEED_OFFSET = 1_000_003
REINIT_SEED_OFFSET = 2_000_003


def uses_at_init(cfg) -> bool:
    """Does this [prune] table take the at-init path (scores with batches, floor, controls)?"""
    if cfg is None or cfg.method == "threshold" or cfg.granularity != "element" or cfg.quality is not None:
        return False
    return cfg.method in AT_INIT_METHODS or cfg.start == "init"


def _weights(model: nn.Module, names: list[str]) -> list[torch.Tensor]:
    params = dict(model.named_parameters())
    return [params[name] for name in names]


def _batches(loader, cfg, method: str) -> list:
    if loader is None:
        raise ValueError(f"score {method!r} needs training batches (a loader)")
    count = cfg.score_batches if cfg is not None else 1
    return list(itertools.islice(iter(loader), count))


class _EvalMode:
    """BatchNorm uses its running statistics while scoring (as the Synaptic-Flow code does)."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


@SCORES.register("random")
def random_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    """Gaussian noise from the global (seeded) generator: ranks are a uniform permutation."""
    return {name: torch.randn_like(w, dtype=torch.float32) for name, w in zip(names, _weights(model, names))}


@SCORES.register("snip")
def snip_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    weights = _weights(model, names)
    grads = [torch.zeros_like(w) for w in weights]
    with _EvalMode(model):
        for images, labels in _batches(loader, cfg, "snip"):
            loss = F.cross_entropy(model(images), labels)
            for total, g in zip(grads, torch.autograd.grad(loss, weights)):
                total.add_(g)
    return {name: (w.detach() * g).abs() for name, w, g in zip(names, weights, grads)}


@SCORES.register("grasp")
def grasp_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    temperature = cfg.grasp_temperature if cfg is not None else 200.0
    weights = _weights(model, names)
    batches = _batches(loader, cfg, "grasp")
    with _EvalMode(model):
        # g: the gradient summed over the batches, held constant (no graph).
        stopped = [torch.zeros_like(w) for w in weights]
        for images, labels in batches:
            loss = F.cross_entropy(model(images) / temperature, labels)
            for total, g in zip(stopped, torch.autograd.grad(loss, weights)):
                total.add_(g)
        # H g = d(g_stopped . g(w))/dw, one Hessian-vector product per batch.
        hessian_grad = [torch.zeros_like(w) for w in weights]
        for images, labels in batches:
            loss = F.cross_entropy(model(images) / temperature, labels)
            grads = torch.autograd.grad(loss, weights, create_graph=True)
            inner = sum((gs * g).sum() for gs, g in zip(stopped, grads))
            for total, hg in zip(hessian_grad, torch.autograd.grad(inner, weights)):
                total.add_(hg)
    return {name: w.detach() * hg for name, w, hg in zip(names, weights, hessian_grad)}


def _synflow_pass(model: nn.Module, names: list[str], shape: tuple, dtype: torch.dtype, device) -> dict:
    """|w * dR/dw| with every float parameter and buffer replaced by |.| (cast to `dtype`)."""
    state = {k: (v.detach().abs().to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    weights = [state[name].requires_grad_() for name in names]
    with _EvalMode(model):
        flow = torch.func.functional_call(model, state, (torch.ones((1, *shape), dtype=dtype, device=device),)).sum()
        grads = torch.autograd.grad(flow, weights)
    return {name: (w.detach() * g).abs() for name, w, g in zip(names, weights, grads)}


@SCORES.register("synflow")
def synflow_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    """One round of SynFlow on the model as it is (pruned weights already zero).

    The model itself is never modified: the |.| copies of its tensors go through
    torch.func.functional_call, so the signs need no restoring. float32 first; if R or a
    score overflows (deep nets multiply ~20 layers of |w|), the pass is redone in float64.
    """
    if loader is None:
        raise ValueError("score 'synflow' needs one batch to read the input shape from (a loader)")
    images, _ = next(iter(loader))
    for dtype in (torch.float32, torch.float64):
        scores = _synflow_pass(model, names, tuple(images.shape[1:]), dtype, images.device)
        # One pass: a sum is finite only if every entry is (an overflowing float32 sum errs on the safe side).
        if bool(torch.isfinite(torch.stack([score.sum(dtype=torch.float64) for score in scores.values()])).all()):
            return scores
    raise ValueError("synflow scores overflow even in float64")


def top_mask(values: torch.Tensor, keep: int) -> torch.Tensor:
    """A bool mask of exactly `keep` True entries at the highest values of a 1-d tensor.

    Same result as topk (up to the order among ties) at a fraction of its cost on
    millions of entries: a threshold band is estimated from a seeded sample, everything
    above it is kept, and topk runs only inside the band; if the band misses, plain topk.
    """
    mask = torch.zeros_like(values, dtype=torch.bool)
    count = values.numel()
    if keep <= 0:
        return mask
    if keep >= count:
        return ~mask
    if count > 1_000_000:
        generator = torch.Generator().manual_seed(0)
        sample = values[torch.randint(0, count, (200_000,), generator=generator).to(values.device)].double()
        sample.clamp_(min=torch.finfo(torch.float64).min)  # pruned (-inf) entries: interpolation stays finite
        quantile = 1 - keep / count
        margin = 0.005  # in quantile units; the sample's own standard error is <= 0.0011
        bounds = torch.tensor([max(quantile - margin, 0.0), min(quantile + margin, 1.0)], dtype=torch.float64)
        low, high = torch.quantile(sample, bounds.to(values.device)).tolist()
        above = values > high
        band = ((values >= low) & ~above).nonzero().flatten()
        missing = keep - int(above.count_nonzero())  # count_nonzero: ~20x faster than a bool sum
        if 0 <= missing <= band.numel():
            mask |= above
            mask[band[torch.topk(values[band], missing, sorted=False).indices]] = True
            return mask
    mask[torch.topk(values, keep, sorted=False).indices] = True
    return mask


def _alive_scores(score: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    # Already-pruned entries rank below everything, so masks only shrink.
    return score.masked_fill(~current, -float("inf")).flatten()


def select_with_floor(
    scores: dict[str, torch.Tensor], current: dict[str, torch.Tensor], density: float, floor: float
) -> dict[str, torch.Tensor]:
    """Global masks keeping round(density x total) entries, each layer at least ceil(floor x size).

    The floor's entries are each layer's best; the rest of the budget goes to the best of
    everything else, so the total is exactly the global target.
    """
    total = sum(s.numel() for s in scores.values())
    alive = {name: int(current[name].count_nonzero()) for name in scores}
    budget = min(round(density * total), sum(alive.values()))
    reserved = {name: min(math.ceil(floor * s.numel()), alive[name]) for name, s in scores.items()}
    if sum(reserved.values()) > budget:
        raise ValueError(f"min_layer_density {floor} needs {sum(reserved.values())} weights, the target keeps {budget}")
    flat = {name: _alive_scores(s, current[name]) for name, s in scores.items()}
    floor_masks = {name: top_mask(flat[name], reserved[name]) for name in scores}
    # The floor's entries leave the global ranking; pick the rest among the other survivors.
    if sum(reserved.values()):
        rest = torch.cat([flat[n].masked_fill(floor_masks[n], -float("inf")) for n in scores])
    else:
        rest = torch.cat(list(flat.values()))
    chosen = top_mask(rest, budget - sum(reserved.values()))
    new, offset = {}, 0
    for name, s in scores.items():
        new[name] = (floor_masks[name] | chosen[offset : offset + s.numel()]).view_as(s)
        offset += s.numel()
    return new


def select_per_layer(
    scores: dict[str, torch.Tensor], current: dict[str, torch.Tensor], layer_density: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Each named layer keeps min(round(density x size), its survivors) of its own best entries."""
    new = {}
    for name, density in layer_density.items():
        keep = min(round(density * scores[name].numel()), int(current[name].count_nonzero()))
        new[name] = top_mask(_alive_scores(scores[name], current[name]), keep).view_as(scores[name])
    return new


def _select(cfg, scores, current, density: float, layer_density: dict[str, float]) -> dict[str, torch.Tensor]:
    if cfg.scope == "layer":
        # Each layer is at the target on its own; check() refuses a floor above it.
        return select_per_layer(scores, current, {n: layer_density.get(n, density) for n in scores})
    masks = select_per_layer(scores, current, layer_density)
    pooled = {n: s for n, s in scores.items() if n not in layer_density}
    if pooled:
        masks.update(select_with_floor(pooled, {n: current[n] for n in pooled}, density, cfg.at_init.min_layer_density))
    return masks


def _density(masks: dict[str, torch.Tensor]) -> float:
    return sum(int(m.count_nonzero()) for m in masks.values()) / sum(m.numel() for m in masks.values())


def round_targets(cfg, k: int) -> tuple[float, dict[str, float]]:
    """(global density, {overridden weight: density}) of pruning round k of cfg.iterations."""
    from .schedule import density_at  # schedule imports this module

    final = cfg.target_density() if cfg.target_density() is not None else 1.0
    layers = {f"{layer}.weight": 1 - s for layer, s in cfg.layer_sparsity.items()}
    n = cfg.iterations
    return density_at(final, k, n, cfg.schedule), {name: density_at(d, k, n, cfg.schedule) for name, d in layers.items()}


@torch.no_grad()
def _apply(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask)


def at_init_masks(cfg, k: int, model: nn.Module, current: dict[str, torch.Tensor], loader=None) -> dict[str, torch.Tensor]:
    """The masks of round k: score (SynFlow: `synflow_rounds` times), then select exactly."""
    names = list(current)
    score = SCORES.get(cfg.method)
    density, layer_density = round_targets(cfg, k)
    rounds = cfg.at_init.synflow_rounds if cfg.method == "synflow" else 1
    start = {name: _density({name: current[name]}) for name in layer_density}
    start_global = _density({n: m for n, m in current.items() if n not in layer_density} or current)
    masks = dict(current)
    for r in range(1, rounds + 1):
        if cfg.method == "magnitude":
            scores = score(model, names)
        else:
            scores = score(model, names, loader=loader, cfg=cfg.at_init)
        # Exponential from the current density to the round's target: d^(r/rounds) from dense.
        step = r / rounds
        round_density = density if r == rounds else start_global * (density / start_global) ** step
        round_layers = {n: d if r == rounds else start[n] * (d / start[n]) ** step for n, d in layer_density.items()}
        masks = _select(cfg, scores, masks, round_density, round_layers)
        if r < rounds:
            _apply(model, masks)  # the next round scores the pruned network
    return masks


# ---- the prune stage's hooks: checks, controls, collapse and achieved-vs-target reporting ----


def check(exp) -> None:
    """Refuse [prune.at_init] settings that cannot be met, before any training."""
    cfg = exp.prune
    if not uses_at_init(cfg):
        return
    at = cfg.at_init
    density = cfg.target_density()
    if at.min_layer_density > 0 and density is not None and at.min_layer_density > density:
        raise UserError(
            f"{exp.path}: prune.at_init.min_layer_density: {at.min_layer_density} is above the target density "
            f"{density:.4g}; every layer cannot keep more than the whole model"
        )
    if (at.shuffle or at.reinit) and cfg.iterations != 1:
        raise UserError(f"{exp.path}: prune.at_init.shuffle/reinit: the controls need prune.iterations = 1 "
                        f"(got {cfg.iterations})")


def snapshot(exp, model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The weights before masking, which the shuffle control re-exposes (None if unused)."""
    if not uses_at_init(exp.prune) or not exp.prune.at_init.shuffle:
        return None
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def shuffle_masks(masks: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each layer's mask permuted within the layer: same per-layer counts, random positions."""
    out = {}
    for name, mask in masks.items():
        order = torch.randperm(mask.numel(), generator=generator).to(mask.device)
        out[name] = mask.flatten()[order].view_as(mask)
    return out


@torch.no_grad()
def apply_controls(exp, model: nn.Module, masks, before: dict[str, torch.Tensor] | None) -> list[str]:
    """Frankle et al. 2021's sanity checks on a MaskSet, in place; returns what was applied."""
    from ..models import build_for

    at = exp.prune.at_init
    applied = []
    if at.shuffle:
        generator = torch.Generator().manual_seed(exp.seed + SHUFFLE_SEED_OFFSET)
        for name, mask in shuffle_masks(masks.state(), generator).items():
            masks.masks[name] = mask.to(masks.masks[name].device)
        model.load_state_dict(before)  # the positions the shuffle exposes get their unmasked values
        applied.append("shuffle")
    if at.reinit:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(exp.seed + REINIT_SEED_OFFSET)
            fresh = build_for(exp)
        model.load_state_dict(fresh.state_dict())  # copied onto the model's device
        applied.append("reinit")
    masks.apply()
    return applied


def layer_densities(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: int(mask.sum()) / mask.numel() for name, mask in masks.items()}


def collapsed_layers(masks: dict[str, torch.Tensor], threshold: float) -> list[str]:
    """Weights whose density is at or under `threshold` (layer collapse, Tanaka et al. 2020)."""
    return [name for name, density in layer_densities(masks).items() if density <= threshold]


def after_masks(exp, k: int, model: nn.Module, masks, before: dict[str, torch.Tensor] | None) -> dict:
    """Controls, then the checks the log keeps: target vs achieved density and collapsed layers."""
    cfg = exp.prune
    if not uses_at_init(cfg):
        return {}
    controls = apply_controls(exp, model, masks, before)
    state = masks.state()
    density, layer_density = round_targets(cfg, k)
    sizes = {name: mask.numel() for name, mask in state.items()}
    total = sum(sizes.values())
    target_kept = sum(layer_density.get(n, density) * size for n, size in sizes.items())
    kept = sum(int(mask.sum()) for mask in state.values())
    # Exact selection is off by rounding only (<= one weight per layer): more than 0.1% means a bug.
    off = abs(kept - target_kept) > 0.001 * total
    style = "yellow" if off else "green"
    console.print(f"[{style}]density {100 * kept / total:.3f}% achieved, target {100 * target_kept / total:.3f}% "
                  f"({kept:,} of {total:,} weights){'; off target' if off else ''}[/]"
                  + (f", controls: {', '.join(controls)}" if controls else ""))
    collapsed = collapsed_layers(state, cfg.at_init.collapse_density)
    for name in collapsed:
        console.print(f"[yellow]layer collapse: {name} keeps {int(state[name].sum())} of {sizes[name]:,} weights "
                      f"(<= {100 * cfg.at_init.collapse_density:g}%)[/]")
    return {
        "target_density": target_kept / total,
        "min_layer_density": min(layer_densities(state).values()),
        "collapsed_layers": ";".join(collapsed),
        "controls": "+".join(controls),
    }
