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
  synflow   |w * dR/dw| of the all-|.| network fed one all-ones input, iterated over
            `synflow_rounds` rounds of score-then-prune (synflow.py, which registers it).

Masks keep exact counts (selection.py); `min_layer_density` reserves each layer's best
entries before the global ranking fills the rest, so the total stays exact. The Frankle et
al. 2021 controls (shuffle each layer's mask, re-draw the surviving weights) are applied
right after the masks are computed (`after_masks`).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..log import console
from . import synflow  # registers "synflow" in SCORES
from .scores import SCORES, eval_mode
from .selection import select_in_scope

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


@SCORES.register("random")
def random_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    """Gaussian noise from the global (seeded) generator: ranks are a uniform permutation."""
    return {name: torch.randn_like(w, dtype=torch.float32) for name, w in zip(names, _weights(model, names))}


@SCORES.register("snip")
def snip_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    weights = _weights(model, names)
    grads = [torch.zeros_like(w) for w in weights]
    with eval_mode(model):
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
    with eval_mode(model):
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


def round_targets(cfg, k: int) -> tuple[float, dict[str, float]]:
    """(global density, {overridden weight: density}) of pruning round k of cfg.iterations."""
    from .schedule import density_at  # schedule imports this module

    final = cfg.target_density() if cfg.target_density() is not None else 1.0
    layers = {f"{layer}.weight": 1 - s for layer, s in cfg.layer_sparsity.items()}
    n = cfg.iterations
    return density_at(final, k, n, cfg.schedule), {name: density_at(d, k, n, cfg.schedule) for name, d in layers.items()}


def at_init_masks(cfg, k: int, model: nn.Module, current: dict[str, torch.Tensor], loader=None) -> dict[str, torch.Tensor]:
    """The masks of round k: score (SynFlow: `synflow_rounds` rounds, see synflow.py), then select exactly."""
    density, layer_density = round_targets(cfg, k)
    if cfg.method == "synflow":
        scores, current = synflow.iterate(cfg, model, current, loader, density, layer_density)
    else:
        scores = SCORES.get(cfg.method)(model, list(current), loader=loader, cfg=cfg.at_init)
    # Under scope "layer" each layer is at the target on its own; check() refuses a floor above it.
    return select_in_scope(cfg.scope, scores, current, density, layer_density, cfg.at_init.min_layer_density)


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
