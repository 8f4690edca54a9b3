"""How a training step runs on the hardware: memory order, autocast precision, torch.compile, and
flushing subnormal floats on the CPU.

Each is a [train] / [prune.finetune] option (OptimConfig). Every option that changes the
numbers is off by default, so a checked-in CPU report is reproduced by the same command;
`channels_last = "auto"` turns channels_last on where no CPU report can change: on CUDA.
Measured (results/benchmarks.md, docs/speed.md): channels_last makes conv nets' steps
1.1-1.2x faster per epoch on this CPU; torch.compile made LeNet-5 slower on CPU; it is meant for a GPU
where launches dominate (mode "reduce-overhead": CUDA graphs), which no run here has measured.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

# torch.compile modes offered by `compile` ("off": eager).
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def uses_channels_last(setting: bool | str, model: nn.Module, device: torch.device) -> bool:
    """Whether to train in channels_last: only a model with 2-d convolutions gains from it."""
    wanted = device.type == "cuda" if setting == "auto" else bool(setting)
    return wanted and any(isinstance(m, nn.Conv2d) for m in model.modules())


def to_memory_order(model: nn.Module, channels_last: bool) -> None:
    """Convert the model's 4-d tensors in place (Parameters stay the same objects, so an optimizer
    or hook that holds them is unaffected); channels_last=False restores the standard order."""
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def batch_in_order(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last and images.dim() == 4:
        return images.contiguous(memory_format=torch.channels_last)
    return images


def autocast(precision: str, device: torch.device):
    """bf16: matmuls and convolutions in bfloat16 (torch.autocast; weights, optimizer and loss
    stay float32); fp32: no autocast at all."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(net: nn.Module, mode: str) -> nn.Module:
    """The module to call in the training step: itself, or torch.compile'd in `mode`. Masks,
    regularizers and hooks act on the module's own parameters, which compiling shares."""
    return net if mode == "off" else torch.compile(net, mode=mode)


@contextlib.contextmanager
def flushed_denormals(on: bool, device: torch.device):
    """With `on` and a CPU device: subnormal floats flush to zero inside the block (the CPU's FTZ/DAZ
    modes, torch.set_flush_denormal), and the default (off) is restored after it."""
    if not (on and device.type == "cpu"):
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
