"""Binary masks over named parameters, held at zero through any optimizer.

Masks are plain bool tensors keyed by parameter name ("fc1.weight"), so they
survive a state_dict round trip and load with weights_only. After every
optimizer step (a post-step hook) the masked entries are multiplied back to
exactly zero, whatever momentum, weight decay or Adam moments did to them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def classifier_name(model: nn.Module) -> str | None:
    """The last Linear layer in module order: the classifier, not pruned by default."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    return last


def prunable_parameters(model: nn.Module, prune_bias: bool = False, prune_classifier: bool = False) -> list[str]:
    """Names of the parameters a pruner may mask: conv/linear weights (and biases if asked)."""
    head = classifier_name(model)
    names = []
    for module_name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES):
            continue
        if module_name == head and not prune_classifier:
            continue
        names.append(f"{module_name}.weight")
        if prune_bias and module.bias is not None:
            names.append(f"{module_name}.bias")
    return names


class MaskSet:
    """Masks for some of a model's parameters; `attach` keeps them applied after each step."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]):
        self.model = model
        params = dict(model.named_parameters())
        unknown = [name for name in masks if name not in params]
        if unknown:
            raise KeyError(f"masks name parameters the model does not have: {unknown}")
        self.masks = {name: mask.to(device=params[name].device, dtype=torch.bool) for name, mask in masks.items()}
        self._params = {name: params[name] for name in self.masks}

    @classmethod
    def ones(cls, model: nn.Module, names: list[str]) -> "MaskSet":
        params = dict(model.named_parameters())
        return cls(model, {name: torch.ones_like(params[name], dtype=torch.bool) for name in names})

    @torch.no_grad()
    def apply(self) -> None:
        for name, mask in self.masks.items():
            self._params[name].mul_(mask)

    def attach(self, optimizer: torch.optim.Optimizer):
        """Re-apply the masks after every optimizer.step(); returns the hook handle."""
        return optimizer.register_step_post_hook(lambda *_: self.apply())

    def update(self, new_masks: dict[str, torch.Tensor]) -> None:
        """Replace masks; masks only shrink (a pruned weight never comes back)."""
        for name, mask in new_masks.items():
            self.masks[name] = self.masks[name] & mask.to(self.masks[name].device, torch.bool)
        self.apply()

    def state(self) -> dict[str, torch.Tensor]:
        return {name: mask.cpu() for name, mask in self.masks.items()}

    def density(self) -> float:
        kept = sum(int(mask.sum()) for mask in self.masks.values())
        total = sum(mask.numel() for mask in self.masks.values())
        return kept / total if total else 1.0
