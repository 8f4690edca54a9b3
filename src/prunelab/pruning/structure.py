"""Structural statistics of a (pruned) model: all-zero filters / channels and what removing them saves.

Per conv/linear layer: element sparsity of the weight, all-zero output filters
(rows) and input channels (columns), and the size a dense layer with those
removed would have: weights = out_kept x in_kept x prod(kernel); MACs = the
layer's dense fvcore MACs x (out_kept / out) x (in_kept / in). Each layer is
judged by its own zero rows and columns only; a zero filter of one layer also
making the next layer's input channel removable is not propagated.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..metrics import flops_by_module
from .masks import PRUNABLE_TYPES


def _zero_groups(weight: torch.Tensor) -> tuple[int, int]:
    """(all-zero rows, all-zero columns) of a weight (out, in, *kernel)."""
    nonzero = weight != 0
    rows = nonzero.flatten(1).any(1)
    cols = nonzero.transpose(0, 1).flatten(1).any(1)
    return int((~rows).sum()), int((~cols).sum())


@torch.no_grad()
def structure_stats(model: nn.Module, input_shape: tuple[int, ...]) -> dict:
    """{"layers": [row per conv/linear layer], "total": whole-model sums and ratios}.

    `input_shape` is one input without the batch dimension, e.g. (1, 28, 28).
    MACs are for one input.
    """
    macs_by_module, _ = flops_by_module(model, input_shape)
    layers = []
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES):
            continue
        weight = module.weight.detach()
        out_ch, in_ch = weight.shape[0], weight.shape[1]
        zero_rows, zero_cols = _zero_groups(weight)
        out_kept, in_kept = out_ch - zero_rows, in_ch - zero_cols
        macs = int(macs_by_module.get(name, 0))
        layers.append({
            "name": name,
            "kind": type(module).__name__,
            "weight_shape": tuple(weight.shape),
            "sparsity": 1 - int((weight != 0).sum()) / weight.numel(),
            "zero_rows": zero_rows,  # all-zero output filters / neurons
            "zero_cols": zero_cols,  # all-zero input channels / features
            "out_kept": out_kept,
            "in_kept": in_kept,
            "weights": weight.numel(),
            "structural_weights": out_kept * in_kept * math.prod(weight.shape[2:]),
            "macs": macs,
            "structural_macs": macs * (out_kept / out_ch) * (in_kept / in_ch),
        })
    weights = sum(row["weights"] for row in layers)
    structural_weights = sum(row["structural_weights"] for row in layers)
    macs = sum(row["macs"] for row in layers)
    structural_macs = sum(row["structural_macs"] for row in layers)
    total = {
        "weights": weights,
        "structural_weights": structural_weights,
        "macs": macs,  # conv + linear layers only
        "structural_macs": structural_macs,
        # Fraction of conv/linear MACs removed (Li et al. 2017's "FLOP reduction").
        "macs_reduction": 1 - structural_macs / macs if macs else 0.0,
        # dense / structural: the speedup removing the zero groups would give in theory.
        "structural_speedup": macs / structural_macs if structural_macs else float("inf"),
        "weights_reduction": 1 - structural_weights / weights if weights else 0.0,
    }
    return {"layers": layers, "total": total}
