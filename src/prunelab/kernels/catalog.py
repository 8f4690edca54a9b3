"""The kernels a pruned model can run on, which layers and devices each takes, and a model with some of
its layers swapped for a kernel's modules (layers.py)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn

from ..pruning.pattern import groups_over, patterned  # where the N:M layout is defined
from .layers import CsrConv2d, CsrLinear, SemiStructuredLinear, conv_unsupported, folded_weight
from .names import CSR, DENSE, NAMES, SEMI_STRUCTURED  # noqa: F401  (DENSE, NAMES: kernels by name, here too)

# A layer with more than this fraction of its weights left is not timed with a sparse kernel: CSR keeps
# 8 bytes per nonzero weight (value + column index) against the dense layer's 4 per weight, so above 1/2
# it reads more memory than dense; 2:4 layers have at most 1/2 by construction.
MAX_DENSITY = 0.5

# semi_structured runs the model in this dtype (the kernel takes fp16 or bf16; fp16 keeps more mantissa).
SEMI_STRUCTURED_DTYPE = torch.float16


def _csr_device(device: torch.device) -> Optional[str]:
    return None if device.type in ("cpu", "cuda") else f"no CSR products on {device.type}"


def _semi_structured_device(device: torch.device) -> Optional[str]:
    if device.type != "cuda":
        return "needs CUDA (2:4 sparse tensor cores)"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return f"needs a GPU of compute capability 8.0 or later (this one has {major}.{minor})"
    return None


def _csr_layer(module: nn.Module) -> Optional[str]:
    if type(module) is nn.Linear:
        return None
    if type(module) is nn.Conv2d:
        return conv_unsupported(module)
    return f"{type(module).__name__}: no CSR form here"


def _semi_structured_layer(module: nn.Module) -> Optional[str]:
    if type(module) is not nn.Linear:
        return "linear layers only"
    weight = folded_weight(module)
    if not patterned(weight.shape, 4) or groups_over(weight, 2, 4):
        return "its weights do not have the 2:4 pattern"
    return None


@dataclass(frozen=True)
class Kernel:
    """One sparse kernel: where it runs, which layers it takes, and the module that replaces a layer."""

    name: str
    dtype: Optional[torch.dtype]  # the dtype the model runs in with this kernel (None: the model's own)
    device_problem: Callable[[torch.device], Optional[str]]  # why it cannot run on a device, or None
    layer_problem: Callable[[nn.Module], Optional[str]]  # why it cannot take a layer, or None
    build: Callable[[nn.Module], nn.Module]  # the replacement of a layer it takes (on the layer's device)


KERNELS: dict[str, Kernel] = {
    CSR: Kernel(CSR, None, _csr_device, _csr_layer,
                lambda m: CsrLinear(m) if isinstance(m, nn.Linear) else CsrConv2d(m)),
    SEMI_STRUCTURED: Kernel(SEMI_STRUCTURED, SEMI_STRUCTURED_DTYPE, _semi_structured_device, _semi_structured_layer,
                            lambda m: SemiStructuredLinear(m, SEMI_STRUCTURED_DTYPE)),
}


def applicable(device: torch.device) -> list[str]:
    """The sparse kernels that run on `device`: what `[test] kernels` measures when it is not given."""
    return [name for name, kernel in KERNELS.items() if kernel.device_problem(device) is None]


def density(module: nn.Module) -> float:
    """The fraction of the layer's weights a sparse kernel keeps (nonzero and on a kept input channel)."""
    weight = folded_weight(module)
    return int(weight.count_nonzero()) / max(weight.numel(), 1)


def layers(model: nn.Module, kernel: Kernel) -> tuple[dict[str, float], dict[str, str]]:
    """({layer: density} the kernel may take, {layer: why not} for every other conv/linear layer)."""
    taken, left = {}, {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            continue
        problem = kernel.layer_problem(module)
        kept = density(module)
        if problem is None and kept > MAX_DENSITY:
            problem = f"density {kept:.0%} > {MAX_DENSITY:.0%}: not timed"
        if problem is None:
            try:  # the kernel's own constraints (e.g. semi-structured shapes) show when it is built
                kernel.build(module)
            except (RuntimeError, ValueError) as error:
                problem = str(error).strip().splitlines()[0][:160]
        if problem is None:
            taken[name] = kept
        else:
            left[name] = problem
    return taken, left


def swapped(model: nn.Module, kernel: Kernel, names: list[str]) -> nn.Module:
    """A copy of `model` with the named layers replaced by the kernel's modules (the model is left as it is)."""
    result = copy.deepcopy(model)
    modules = dict(result.named_modules())
    for name in names:
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else result, child, kernel.build(modules[name]))
    return result.eval()
