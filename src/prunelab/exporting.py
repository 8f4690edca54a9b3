"""torch.export of a model: which form of the weights is exported (the one kernel choice,
export_model), the trace with a dynamic batch dimension (static where the model cannot take one), the
program as bytes, and the program's check and latency against the model it was traced from.

The program (model.pt2) is loaded with `torch.export.load(path).module()` by torch alone: no prunelab
code is in it. Forward pre-hooks (activation masks, pruning/activations.py) run while tracing, so
the mask multiplications are ops of the graph and the masks its buffers.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from .errors import UserError
from .evaluate import latency
from .kernels.catalog import CSR, DENSE, KERNELS, MAX_DENSITY, swapped
from .kernels.catalog import layers as kernel_layers
from .pruning.masks import PRUNABLE_TYPES

# Exported and eager logits are the same float32 ops on the same weights: they differ by rounding of
# reordered sums at most. The check allows this much (absolute, in logits) and the same top-1 class.
LOGIT_TOLERANCE = 1e-4


@dataclass
class Traced:
    """A traced program and how its batch dimension came out."""

    program: torch.export.ExportedProgram
    batch: str  # "dynamic", or "static <n>"
    why: str  # why the batch is static ("" when dynamic)


@dataclass
class Exported:
    """What export_model made: the trace, the program as saved, the eager module traced (the model or
    its sparse form), the kernels its weights are stored for and why."""

    traced: Traced
    data: bytes
    module: nn.Module
    kernels: str
    why: str


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def zero_weights(model: nn.Module) -> int:
    """Conv/linear weights that are exactly zero."""
    return sum(int((module.weight == 0).sum()) for module in model.modules() if isinstance(module, PRUNABLE_TYPES))


def _sparse_form(model: nn.Module, wanted: Optional[list[str]]) -> tuple[Optional[nn.Module], str]:
    """A copy of the model with every layer the csr kernel takes swapped for its CSR module (kernels/),
    or None; and why (the layers, or why none)."""
    zeros = zero_weights(model)
    if zeros == 0:
        return None, "no conv/linear weight is zero: nothing for a sparse kernel to skip"
    stored = f"stored dense with {zeros:,} exact zeros"
    if wanted is not None and CSR not in wanted:
        return None, f"{stored}: [test] kernels leaves out {CSR}"
    kernel = KERNELS[CSR]
    taken, _ = kernel_layers(model, kernel)
    if not taken:
        return None, f"{stored}: no layer the {CSR} kernel takes (density at most {MAX_DENSITY:.0%})"
    return swapped(model, kernel, list(taken)), f"{CSR} on {', '.join(taken)}"


def export_model(model: nn.Module, example: torch.Tensor, what: str, wanted: Optional[list[str]] = None) -> Exported:
    """The one place the stored form of the exported weights is chosen, and the export: the model with
    CSR layers (kernels/; `wanted`: [test] kernels, None = every kernel) where that form traces with a
    dynamic batch, saves, loads and runs; else the model as it is (pruned weights exact zeros in dense
    tensors), saying why. In torch 2.13 CSR never gets through: torch.export has no aten._sparse_addmm
    and cannot save CSR tensors."""
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        sparse, why = _sparse_form(model, wanted)
        try:
            if sparse is not None:
                return Exported(*_round_trip(sparse, example, what, static=False), sparse, CSR, why)
        except Exception as error:  # torch raises many types for what it cannot trace or save
            why = (f"stored dense with {zero_weights(model):,} exact zeros: the {CSR} form ({why}) does not export "
                   f"with torch {torch.__version__} ({type(error).__name__}: {_first_line(error)})")
    return Exported(*_round_trip(model, example, what), model, DENSE, why)


def _round_trip(module: nn.Module, example: torch.Tensor, what: str, static: bool = True) -> tuple[Traced, bytes]:
    """Trace, save, load and run once: what a user's load will do (`static`: fall back to a static batch)."""
    traced = trace(module, example, what, static)
    data = to_bytes(traced.program)
    load(data)(example if traced.batch != "dynamic" else example[:1])
    return traced, data


def trace(model: nn.Module, example: torch.Tensor, what: str, static: bool = True) -> Traced:
    """model (in eval mode) traced on `example` (a batch of at least 2 images: a batch of 1 would fix the
    size) with a dynamic batch dimension; static at the example's batch size where the model cannot
    take one (`static` False: torch's error instead). A model that cannot be traced at all is a UserError
    naming `what`."""
    model.eval()
    batch = torch.export.Dim("batch", min=1)
    try:
        return Traced(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), "dynamic", "")
    except Exception as error:
        if not static:
            raise
        why = f"a dynamic batch dimension failed ({type(error).__name__}: {_first_line(error)})"
    try:
        return Traced(torch.export.export(model, (example,)), f"static {example.shape[0]}", why)
    except Exception as error:
        reason = f"{type(error).__name__}: {_first_line(error)}"
        raise UserError(f"{what}: torch.export cannot trace it ({reason})") from None


def to_bytes(program: torch.export.ExportedProgram) -> bytes:
    """The program as torch.export.save writes it (a .pt2 zip archive)."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def load(data: bytes) -> nn.Module:
    """A saved program's callable module, as a user gets it with torch.export.load(path).module()."""
    return torch.export.load(io.BytesIO(data)).module()


class Program(nn.Module):
    """An exported program's module behind an nn.Module whose eval() does nothing: the program was
    traced in eval mode, and its own train()/eval() raise. Kept out of the submodules so that
    evaluate.latency's eval() does not reach it."""

    def __init__(self, module: nn.Module):
        super().__init__()
        object.__setattr__(self, "program", module)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.program(images)


@torch.no_grad()
def compare(program: nn.Module, model: nn.Module, images: torch.Tensor) -> dict:
    """The program's logits against the model's on the same images: largest absolute difference,
    whether every image gets the same top-1 class, and whether that is within LOGIT_TOLERANCE."""
    model.eval()
    expected, got = model(images), program(images)
    difference = float((got - expected).abs().max())
    same = bool((got.argmax(1) == expected.argmax(1)).all())
    return {"images": images.shape[0], "max_abs_logit_difference": difference, "same_argmax": same,
            "tolerance": LOGIT_TOLERANCE, "passed": same and difference <= LOGIT_TOLERANCE}


def _batches(images: torch.Tensor, sizes: list[int]) -> dict[int, torch.Tensor]:
    """The images batched at each size (repeated when there are fewer)."""
    return {size: images.repeat(-(-size // images.shape[0]), *[1] * (images.dim() - 1))[:size].contiguous()
            for size in sizes}


def timings(models: dict[str, nn.Module], images: torch.Tensor, sizes: list[int], repeats: int, warmup: int,
            static: int | None) -> dict[str, dict[str, dict]]:
    """{model key: {batch size: evaluate.latency}} on the CPU, at each size (at `static` alone, the
    program's fixed batch size, for a static program)."""
    kept = sizes if static is None else [static]
    return {key: {str(size): latency(model, batch, repeats, warmup) for size, batch in _batches(images, kept).items()}
            for key, model in models.items()}
