"""After the masks of a round: the Frankle et al. 2021 controls, and what the prune log keeps of
the round (target vs achieved density, layer collapse)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ...checkpoints import build_for
from ...config import Experiment
from ...data.spec import spec_for
from ...log import console
from ...pruning.masks import MaskSet
from ...pruning.pattern import dense_names
from ...pruning.schedule import round_targets
from .connectivity import Connectivity, connectivity

# Seed offsets so the controls' random draws differ from the model's own initialization.
SHUFFLE_SEED_OFFSET = 1_000_003
REINIT_SEED_OFFSET = 2_000_003


def shuffle_masks(masks: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each layer's mask permuted within the layer: same per-layer counts, random positions."""
    out = {}
    for name, mask in masks.items():
        order = torch.randperm(mask.numel(), generator=generator).to(mask.device)
        out[name] = mask.flatten()[order].view_as(mask)
    return out


@torch.no_grad()
def apply_controls(exp: Experiment, model: nn.Module, masks: MaskSet, before: dict[str, torch.Tensor] | None) -> list[str]:
    """Frankle et al. 2021's sanity checks on a MaskSet, in place; returns what was applied."""
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


def round_checks(exp: Experiment, k: int, model: nn.Module, masks: MaskSet, controls: list[str],
                 zero_kept: dict[str, int]) -> dict:
    """Target vs achieved density, collapsed and disconnected layers and the kept weights whose score
    was exactly 0 (ties.py) of round k (printed, and returned for the log)."""
    cfg = exp.prune
    state = masks.state()
    density, layer_density = round_targets(cfg, k)
    if cfg.pattern is not None:  # layers the pattern leaves dense keep everything
        layer_density = dict.fromkeys(dense_names({n: mask.shape for n, mask in state.items()}, cfg.nm()[1]), 1.0)
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
    paths = connectivity(model, state, spec_for(exp).image_shape)
    for name in paths.disconnected:
        console.print(f"[yellow]layer collapse: no kept weight of {name} lies on a path from input to output[/]")
    zero = sum(zero_kept.values())
    if zero:
        layers = ", ".join(f"{name} {n:,}" for name, n in zero_kept.items() if n)
        console.print(f"[yellow]{zero:,} kept weights have a score of exactly 0 ({layers}): the budget needed them "
                      f"(prune.at_init.count = {cfg.at_init.count!r} fills it in torch.topk's order)[/]")
    return {
        "target_density": target_kept / total,
        "min_layer_density": min(layer_densities(state).values()),
        "collapsed_layers": ";".join(collapsed),
        "controls": "+".join(controls),
        **connectivity_fields(paths),
        "zero_score_kept": zero,
        "zero_score_layers": ";".join(f"{name}:{n}" for name, n in zero_kept.items() if n),
    }


def connectivity_fields(paths: Connectivity) -> dict:
    """The log fields of a Connectivity (the sweep report reads them back)."""
    effective = paths.effective_density
    return {"empty_layers": ";".join(paths.empty), "disconnected_layers": ";".join(paths.disconnected),
            "effective_density": "" if effective is None else effective}
