"""Per-layer parameters, bytes and FLOPs, dense and effective (ShrinkBench's schema).

FLOPs are fvcore's counts, which are multiply-accumulates (one per MAC) for
conv and linear layers. Effective FLOPs of a conv/linear layer = its dense
FLOPs x the fraction of its weights that do work: nonzero and, when the layer
has an input mask (pruning/activations.py), acting on a kept input channel (a
weight on a masked channel multiplies a zero); without input masks that is the
density of its weight. Sizes are bytes: dense = 4 per fp32
parameter; sparse = CSR storage of each weight viewed as (out, rest): 4-byte
value + 4-byte column index per nonzero, plus (out + 1) 4-byte row pointers;
biases and other parameters stay dense.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from fvcore.nn import FlopCountAnalysis

from .pruning.activations import live_weights
from .pruning.masks import PRUNABLE_TYPES

FP32_BYTES = 4
INDEX_BYTES = 4


@dataclass
class LayerStats:
    name: str
    kind: str
    weight_shape: tuple[int, ...]
    params: int  # weight + bias
    nonzero: int
    weight_params: int
    weight_nonzero: int
    dense_bytes: int
    sparse_bytes: int
    flops: int  # fvcore MACs for one image
    effective_flops: float  # MACs of the weights doing work (module docstring)

    @property
    def weight_density(self) -> float:
        return self.weight_nonzero / self.weight_params if self.weight_params else 1.0


def flops_by_module(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[dict[str, int], int]:
    """fvcore MACs per module name and in total, for one input of `input_shape` (C, H, W)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, *input_shape, device=device))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    by_module = dict(analysis.by_module())
    total = int(analysis.total())
    model.train(was_training)
    return by_module, total


def _csr_bytes(weight: torch.Tensor) -> int:
    nonzero = int((weight != 0).sum())
    rows = weight.shape[0]
    return nonzero * (FP32_BYTES + INDEX_BYTES) + (rows + 1) * INDEX_BYTES


def layer_stats(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerStats]:
    """One row per conv/linear layer, counting zeros in the weights as pruned."""
    by_module, _ = flops_by_module(model, input_shape)
    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES):
            continue
        weight = module.weight.detach()
        bias = module.bias.detach() if module.bias is not None else None
        weight_nonzero = int((weight != 0).sum())
        bias_params = bias.numel() if bias is not None else 0
        bias_nonzero = int((bias != 0).sum()) if bias is not None else 0
        flops = int(by_module.get(name, 0))
        density = int(live_weights(module).sum()) / weight.numel()  # = weight_nonzero / size without input masks
        rows.append(
            LayerStats(
                name=name,
                kind=type(module).__name__,
                weight_shape=tuple(weight.shape),
                params=weight.numel() + bias_params,
                nonzero=weight_nonzero + bias_nonzero,
                weight_params=weight.numel(),
                weight_nonzero=weight_nonzero,
                dense_bytes=FP32_BYTES * (weight.numel() + bias_params),
                sparse_bytes=_csr_bytes(weight) + FP32_BYTES * bias_params,
                flops=flops,
                effective_flops=flops * density,
            )
        )
    return rows


def summarize(model: nn.Module, input_shape: tuple[int, ...]) -> dict:
    """Whole-model figures: sizes, compression ratios, FLOPs and theoretical speedup."""
    layers = layer_stats(model, input_shape)
    _, total_flops = flops_by_module(model, input_shape)
    all_params = sum(p.numel() for p in model.parameters())
    all_nonzero = sum(int((p.detach() != 0).sum()) for p in model.parameters())
    layer_params = sum(layer.params for layer in layers)
    other_params = all_params - layer_params  # e.g. BatchNorm affine parameters, kept dense
    weights = sum(layer.weight_params for layer in layers)
    weights_nonzero = sum(layer.weight_nonzero for layer in layers)
    layer_flops = sum(layer.flops for layer in layers)
    effective = total_flops - layer_flops + sum(layer.effective_flops for layer in layers)
    return {
        "params": all_params,
        "nonzero_params": all_nonzero,
        "weights": weights,
        "nonzero_weights": weights_nonzero,
        # ShrinkBench: prunable (conv/linear weights) / their nonzeros.
        "compression": weights / max(weights_nonzero, 1),
        "compression_all_params": all_params / max(all_nonzero, 1),
        "dense_bytes": FP32_BYTES * all_params,
        "sparse_bytes": sum(layer.sparse_bytes for layer in layers) + FP32_BYTES * other_params,
        "flops": total_flops,
        "effective_flops": effective,
        "theoretical_speedup": total_flops / max(effective, 1e-9),
        "layers": [asdict(layer) for layer in layers],
    }


def against_dense(dense: dict, pruned: dict) -> dict:
    """A pruned model's summary figures counted against the dense model's (summarize() of both):
    compression = dense conv/linear weights / the pruned model's nonzero ones; theoretical speedup =
    dense MACs / pruned effective MACs. The same numbers as the pruned model's own when pruning only
    zeroed weights; the right ones when it removed them (physically smaller layers)."""
    return {
        "compression": dense["weights"] / max(pruned["nonzero_weights"], 1),
        "compression_all_params": dense["params"] / max(pruned["nonzero_params"], 1),
        "theoretical_speedup": dense["flops"] / max(pruned["effective_flops"], 1e-9),
    }
