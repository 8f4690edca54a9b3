"""Pruning at initialization: random, SNIP, GraSP and SynFlow scores, and the masks they give.

Every score is a callable (model, names, loader=None, cfg=None) -> {name: tensor}, higher =
keep, registered in the spine's SCORES beside "magnitude"; every registered score is a valid
prune.method of this family, so adding a score is one decorated function. `loader` yields
(images, labels) batches and `cfg` is the [prune.at_init] table. The scores follow the Synaptic-Flow code (Tanaka et al.
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
al. 2021 controls (shuffle each layer's mask, re-draw the surviving weights) are in controls.py.
"""

from __future__ import annotations

import itertools
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...config import PruneConfig
from ...pruning import pattern_record
from ...pruning.schedule import round_targets
from ...pruning.scores import SCORES, batchnorm_mode, eval_mode
from ...pruning.selection import select_in_scope
from . import synflow  # registers "synflow" in SCORES
from .ties import check_original_ties


def _weights(model: nn.Module, names: list[str]) -> list[torch.Tensor]:
    params = dict(model.named_parameters())
    return [params[name] for name in names]


def _passes(loader, cfg, method: str) -> Callable[[int], list]:
    """The scoring batches of pass p (GraSP makes two passes): `score_batches` batches of the loader,
    or with `score_images` a seeded random subset of the training images, re-augmented on every
    pass when `score_fresh_augmentation` (else the same batches on every pass)."""
    if loader is None:
        raise ValueError(f"score {method!r} needs training batches (a loader)")
    if cfg is None or cfg.score_images == 0:
        batches = list(itertools.islice(iter(loader), cfg.score_batches if cfg is not None else 1))
        return lambda _: batches
    subset = loader.subset(cfg.score_images)
    fixed = None if cfg.score_fresh_augmentation else list(subset)

    def batches_of(p: int) -> list:
        if fixed is not None:
            return fixed
        subset.set_epoch(p)
        return list(subset)

    return batches_of


@SCORES.register("random")
def random_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    """Gaussian noise from the global (seeded) generator: ranks are a uniform permutation."""
    return {name: torch.randn_like(w, dtype=torch.float32) for name, w in zip(names, _weights(model, names))}


@SCORES.register("snip")
def snip_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    weights = _weights(model, names)
    grads = [torch.zeros_like(w) for w in weights]
    with eval_mode(model):
        for images, labels in _passes(loader, cfg, "snip")(0):
            loss = F.cross_entropy(model(images), labels)
            for total, g in zip(grads, torch.autograd.grad(loss, weights)):
                total.add_(g)
    return {name: (w.detach() * g).abs() for name, w, g in zip(names, weights, grads)}


@SCORES.register("grasp")
def grasp_scores(model: nn.Module, names: list[str], loader=None, cfg=None) -> dict[str, torch.Tensor]:
    temperature = cfg.grasp_temperature if cfg is not None else 200.0
    weights = _weights(model, names)
    passes = _passes(loader, cfg, "grasp")
    with batchnorm_mode(model, cfg.grasp_batchnorm if cfg is not None else "eval"):
        # g: the gradient summed over the batches, held constant (no graph).
        stopped = [torch.zeros_like(w) for w in weights]
        for images, labels in passes(0):
            loss = F.cross_entropy(model(images) / temperature, labels)
            for total, g in zip(stopped, torch.autograd.grad(loss, weights)):
                total.add_(g)
        # H g = d(g_stopped . g(w))/dw, one Hessian-vector product per batch.
        hessian_grad = [torch.zeros_like(w) for w in weights]
        for images, labels in passes(1):
            loss = F.cross_entropy(model(images) / temperature, labels)
            grads = torch.autograd.grad(loss, weights, create_graph=True)
            inner = sum((gs * g).sum() for gs, g in zip(stopped, grads))
            for total, hg in zip(hessian_grad, torch.autograd.grad(inner, weights)):
                total.add_(hg)
    return {name: w.detach() * hg for name, w, hg in zip(names, weights, hessian_grad)}


def scored_masks(cfg: PruneConfig, k: int, model: nn.Module, current: dict[str, torch.Tensor],
                 loader=None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(masks, scores) of round k: score (SynFlow: `synflow_rounds` rounds, see synflow.py; its scores
    are the last round's), then select exactly. With `count = "synaptic_flow"` a budget that needs
    zero-score weights raises ties.ZeroScoreTies, as the original code stops there. Under a pattern
    the N highest scores of every M are kept (SynFlow scores once: synflow_rounds = 1, settings.py)."""
    density, layer_density = round_targets(cfg, k)
    if cfg.method == "synflow":
        scores, current = synflow.iterate(cfg, model, current, loader, density, layer_density)
    else:
        scores = SCORES.get(cfg.method)(model, list(current), loader=loader, cfg=cfg.at_init)
    if cfg.pattern is not None:
        return pattern_record.select(cfg, scores, current), scores
    # Under scope "layer" each layer is at the target on its own; the pruner refuses a floor above it.
    masks = select_in_scope(cfg.scope, scores, current, density, layer_density, cfg.at_init.min_layer_density,
                            cfg.at_init.count)
    if cfg.at_init.count == "synaptic_flow":
        for names, group_density in selection_groups(cfg.scope, list(masks), density, layer_density):
            check_original_ties(cfg.method, 1 / group_density, *({n: d[n] for n in names} for d in (scores, current, masks)))
    return masks, scores


def selection_groups(scope: str, names: list[str], density: float,
                     layer_density: dict[str, float]) -> list[tuple[list[str], float]]:
    """The groups select_in_scope ranks separately, with their densities: every layer alone under
    scope "layer" (as the original's 'local' masks), else each overridden layer alone and the rest pooled."""
    if scope == "layer":
        return [([name], layer_density.get(name, density)) for name in names]
    pooled = [name for name in names if name not in layer_density]
    return [([name], layer_density[name]) for name in names if name in layer_density] + \
        ([(pooled, density)] if pooled else [])


def at_init_masks(cfg: PruneConfig, k: int, model: nn.Module, current: dict[str, torch.Tensor],
                  loader=None) -> dict[str, torch.Tensor]:
    """The masks of round k (scored_masks without the scores)."""
    return scored_masks(cfg, k, model, current, loader)[0]
