"""Input masks: whole input channels of conv/linear layers zeroed at run time (activation pruning).

A layer's input mask is a 1-d bool tensor over its input channels (conv: feature maps, dim 1 of
the input; linear: input features / neurons, the last dim). It is a persistent buffer
`input_mask` on the layer, so it is saved in the state_dict (checkpoints keep it, loadable with
weights_only; key "<layer>.input_mask") and follows model.to(device); a forward pre-hook multiplies
the layer's input by it. A freshly built model has neither: attach them before load_state_dict,

    attach_input_masks(model, saved_input_masks(state_dict)); model.load_state_dict(state_dict)

Effective work: a weight acting on a masked input channel multiplies a zero, so it does no work
(live_weights; metrics.py counts effective FLOPs from it).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .masks import PRUNABLE_TYPES

INPUT_MASK = "input_mask"  # the buffer's name on a layer
_SUFFIX = f".{INPUT_MASK}"


def maskable_layers(model: nn.Module) -> list[str]:
    """Conv/linear layers whose input may be masked: all but the first in module order (its input is the data)."""
    return [name for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)][1:]


def input_channels(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def channel_values(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """A layer's input as (positions, channels): every value each input channel takes in the batch
    (conv: images x spatial positions; linear: images x any leading dims)."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, module.in_features)
    return inputs.movedim(1, -1).reshape(-1, module.in_channels)


def input_mask(module: nn.Module) -> Optional[torch.Tensor]:
    """The layer's input mask, None when it has none."""
    return dict(module.named_buffers(recurse=False)).get(INPUT_MASK)


def _mask_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the first input times the mask, broadcast over everything but the channels.
    A module-level function (not a closure over the module), so deep copies of the model keep working."""
    inputs, mask = args[0], getattr(module, INPUT_MASK)
    shape = (-1,) if isinstance(module, nn.Linear) else (-1,) + (1,) * (inputs.dim() - 2)
    return (inputs * mask.view(shape).to(inputs.dtype), *args[1:])


def attach_input_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Set the input masks of the named layers (bool or 0/1, one entry per input channel); the buffer and
    its pre-hook are added on a layer's first mask, later calls replace the values."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module = modules.get(name)
        if not isinstance(module, PRUNABLE_TYPES):
            raise KeyError(f"input mask for {name!r}: no conv/linear layer of that name")
        if mask.shape != (input_channels(module),):
            raise ValueError(f"input mask for {name!r}: shape {tuple(mask.shape)}, the layer has "
                             f"{input_channels(module)} input channels")
        mask = mask.to(device=module.weight.device, dtype=torch.bool)
        if input_mask(module) is None:
            module.register_buffer(INPUT_MASK, mask, persistent=True)
            module.register_forward_pre_hook(_mask_input)
        else:
            setattr(module, INPUT_MASK, mask)  # a registered buffer's name: replaces the buffer


def input_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every layer's input mask, by layer name (layers without one are left out)."""
    return {name: mask for name, module in model.named_modules() if (mask := input_mask(module)) is not None}


def saved_input_masks(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The input masks a state_dict holds, by layer name (empty when it holds none)."""
    return {key[: -len(_SUFFIX)]: value for key, value in state_dict.items() if key.endswith(_SUFFIX)}


def input_density(model: nn.Module) -> float:
    """Kept input channels / all input channels of the layers with a mask (1.0 without masks)."""
    masks = input_masks(model).values()
    total = sum(mask.numel() for mask in masks)
    return sum(int(mask.sum()) for mask in masks) / total if total else 1.0


def _weight_channels(module: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """The input mask as seen by each weight: bool, broadcastable to the weight's shape. A grouped conv's
    weight[o, j] reads input channel (o // outputs per group) x inputs per group + j."""
    if isinstance(module, nn.Linear):
        return mask.view(1, -1)
    weight = module.weight
    per_group = weight.shape[1]
    group = torch.arange(weight.shape[0], device=mask.device) // (weight.shape[0] // module.groups)
    channel = group[:, None] * per_group + torch.arange(per_group, device=mask.device)[None, :]
    return mask[channel].view(*channel.shape, *[1] * (weight.dim() - 2))


def live_weights(module: nn.Module) -> torch.Tensor:
    """Bool, the weight's shape: nonzero weights that act on a kept input channel (the weights doing work)."""
    live = module.weight.detach() != 0
    mask = input_mask(module)
    return live if mask is None else live & _weight_channels(module, mask)
