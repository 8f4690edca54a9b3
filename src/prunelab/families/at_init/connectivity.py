"""Layer collapse as SynFlow defines it (Tanaka et al. 2020): a layer with no kept weight, or whose
kept weights all lie off every path from the input to the output, cuts the network.

Paths are found on a copy of the network whose pruned weights are their 0/1 masks (every other
weight 1; both over the layer's fan-in), BatchNorm scales and running variances 1 and every bias
and running mean 0, fed one all-ones input in float64: a weight lies on an input-output path exactly when it is
kept and both its input unit is reached from the input and its output unit reaches the output,
i.e. when mask * d(sum of outputs)/d(weight) > 0. The kept weights on a path are what Vysogorets
and Kempe 2023 call the effective density; the others cannot change the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ...pruning.scores import eval_mode

Named = dict[str, torch.Tensor]


@dataclass
class Connectivity:
    kept: dict[str, int]  # kept weights per masked parameter
    on_path: dict[str, int] | None  # of those, on an input-output path; None if the count overflowed
    total: int  # masked weights in all

    @property
    def empty(self) -> list[str]:
        """Masked parameters with no kept weight."""
        return [name for name, kept in self.kept.items() if kept == 0]

    @property
    def disconnected(self) -> list[str]:
        """Masked parameters with no kept weight on a path (empty ones included); [] when unknown."""
        return [name for name, n in (self.on_path or {}).items() if n == 0]

    @property
    def effective_density(self) -> float | None:
        return None if self.on_path is None else sum(self.on_path.values()) / self.total


def _path_state(model: nn.Module, masks: Named) -> dict[str, torch.Tensor]:
    """Weights of 2+ dims as their masks (1 where unmasked) divided by their fan-in, so every unit's
    value is the share of its inputs' paths that are live (<= 1 on the all-ones input: a ReLU6 never
    clips it, and float64 holds the products of ~100 layers at 1000x); 1-d scales and running
    variances 1, biases and running means 0."""
    state = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("input_mask"):  # activation pruning's input-channel masks stay as they are
            state[key] = value.to(torch.float64)
        elif key.endswith(("bias", "running_mean")):
            state[key] = torch.zeros_like(value, dtype=torch.float64)
        elif value.dim() >= 2:
            live = masks[key].to(torch.float64) if key in masks else torch.ones_like(value, dtype=torch.float64)
            state[key] = live / value[0].numel()
        else:
            state[key] = torch.ones_like(value, dtype=torch.float64)
    return state


def connectivity(model: nn.Module, masks: Named, input_shape: tuple[int, ...]) -> Connectivity:
    """Kept and on-path weights per masked parameter of `model` under `masks`."""
    masks = {name: mask.bool() for name, mask in masks.items()}
    kept = {name: int(mask.count_nonzero()) for name, mask in masks.items()}
    total = sum(mask.numel() for mask in masks.values())
    state = _path_state(model, masks)
    device = next(iter(masks.values())).device
    leaves = [state[name].requires_grad_() for name in masks]
    with eval_mode(model):
        flow = torch.func.functional_call(model, state, (torch.ones((1, *input_shape), dtype=torch.float64,
                                                                    device=device),)).sum()
    if not bool(torch.isfinite(flow.detach())):
        return Connectivity(kept, None, total)
    if float(flow.detach()) == 0:
        return Connectivity(kept, {name: 0 for name in masks}, total)
    grads = torch.autograd.grad(flow, leaves, allow_unused=True)
    on_path = {name: 0 if grad is None else int(((grad > 0) & masks[name]).count_nonzero())
               for name, grad in zip(masks, grads)}
    return Connectivity(kept, on_path, total)
