"""Structural statistics of a (pruned) model: all-zero filters / channels and what removing them saves.

Per conv/linear layer: element sparsity of the weight, its own all-zero output
filters (rows) and input channels (columns), and the size a dense layer with the
removable ones taken out would have: weights = out_kept x in_kept x prod(kernel);
MACs = the layer's dense fvcore MACs x (out_kept / out) x (in_kept / in).

Cross-layer propagation (`propagate=True`): where layer P feeds layer Q through
nothing but channel-wise operations (activations, pooling, batch norm, dropout,
flatten), the channels between them are one set: channel c is removable when
P's output filter c is all-zero OR Q's input channel c is all-zero.
 - Q ignores channel c (zero column): P's filter c computes something nobody
   reads, so it goes; exact.
 - P's filter c is zero: the channel carries the constant act(bias_c), whose
   contribution to Q is a constant that folds into Q's bias; exact for linear
   consumers and unpadded convs (a padded conv sees the constant only inside the
   borders, so there the fold is the usual approximation of structured pruning).
Through a flatten (conv -> flatten -> linear) channel c is the block of
H x W consecutive input columns of the linear layer (channel-major order), so
a zero filter removes a whole block and a block of all-zero columns removes the
filter. The chain is read from a torch.fx trace; a model that does not trace,
or a layer whose output has several consumers (residual adds, concatenation),
is judged by its own rows and columns only.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...metrics import flops_by_module
from ...pruning.masks import PRUNABLE_TYPES

# Operations that map channel c of their input to channel c of their output and nothing else.
_CHANNELWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardswish,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Dropout2d, nn.Identity,
)
_CHANNELWISE_FUNCTIONS = {
    F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.hardswish, torch.relu, torch.tanh, torch.sigmoid,
    F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d, F.dropout, F.dropout2d,
}
_CHANNELWISE_METHODS = {"relu", "relu_", "tanh", "sigmoid", "contiguous"}


def _zero_groups(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool vectors: which rows (output filters) and which columns (input channels) are all zero."""
    nonzero = weight != 0
    rows = nonzero.flatten(1).any(1)
    cols = nonzero.transpose(0, 1).flatten(1).any(1)
    return ~rows, ~cols


def _step_kind(node, modules: dict[str, nn.Module]) -> str | None:
    """"channelwise", "flatten", or None for a node the chain may not pass through."""
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.Flatten):
            return "flatten" if module.start_dim == 1 else None
        if isinstance(module, _CHANNELWISE_MODULES):
            return "channelwise"
        return None
    if (node.op, node.target) in (("call_function", torch.flatten), ("call_method", "flatten")):
        start_dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        return "flatten" if start_dim == 1 else None  # start_dim 0 would fold the batch in
    if node.op == "call_function":
        return "channelwise" if node.target in _CHANNELWISE_FUNCTIONS else None
    if node.op == "call_method":
        return "channelwise" if node.target in _CHANNELWISE_METHODS else None
    return None


def _only_tensor_input(node) -> object | None:
    """The single fx node among a node's arguments (None if it has several)."""
    inputs = node.all_input_nodes
    return inputs[0] if len(inputs) == 1 else None


def _channels_line_up(producer: nn.Module, consumer: nn.Module, flattened: bool) -> bool:
    """Whether output channel c of `producer` is input channel c (or block c) of `consumer`:
    conv -> conv without a flatten, conv -> flatten -> linear, linear -> linear; ungrouped only."""
    if getattr(producer, "groups", 1) != 1 or getattr(consumer, "groups", 1) != 1:
        return False
    producer_conv, consumer_conv = not isinstance(producer, nn.Linear), not isinstance(consumer, nn.Linear)
    if producer_conv:
        return (consumer_conv and not flattened) or (not consumer_conv and flattened)
    return not consumer_conv  # a linear layer's features feed the next linear layer's columns


def sequential_links(model: nn.Module) -> dict[str, tuple[str, bool]]:
    """{producer layer: (consumer layer, through a flatten)} for conv/linear layers wired one to one.

    Empty when the model does not trace with torch.fx (then nothing is propagated).
    """
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # fx raises many types on data-dependent control flow
        return {}
    modules = dict(model.named_modules())
    links: dict[str, tuple[str, bool]] = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], PRUNABLE_TYPES):
            continue
        current, flattened = node, False
        while len(current.users) == 1:
            user = next(iter(current.users))
            if _only_tensor_input(user) is not current:
                break
            if user.op == "call_module" and isinstance(modules[user.target], PRUNABLE_TYPES):
                if _channels_line_up(modules[node.target], modules[user.target], flattened):
                    links[node.target] = (user.target, flattened)
                break
            kind = _step_kind(user, modules)
            if kind is None:
                break
            flattened |= kind == "flatten"
            current = user
    return links


def _removable(model: nn.Module, propagate: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{layer: (removable rows, removable columns)} as bool vectors, own zeros plus propagated ones."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}
    own = {name: _zero_groups(m.weight.detach()) for name, m in layers.items()}
    removable = {name: (rows.clone(), cols.clone()) for name, (rows, cols) in own.items()}
    if not propagate:
        return removable
    for producer, (consumer, _) in sequential_links(model).items():
        out_ch = layers[producer].weight.shape[0]
        in_cols = layers[consumer].weight.shape[1]
        block = in_cols // out_ch  # input columns per channel: H x W after a flatten, else 1
        if in_cols % out_ch or (block > 1 and isinstance(layers[producer], nn.Linear)):
            continue  # not a channel-major flatten of this producer: leave both layers alone
        zero_cols = own[consumer][1].view(out_ch, block)
        channel = own[producer][0] | zero_cols.all(1)  # removable channels between the two layers
        removable[producer][0].logical_or_(channel)
        removable[consumer][1].logical_or_(channel.repeat_interleave(block))
    return removable


@torch.no_grad()
def structure_stats(model: nn.Module, input_shape: tuple[int, ...], propagate: bool = False) -> dict:
    """{"layers": [row per conv/linear layer], "total": whole-model sums and ratios}.

    `input_shape` is one input without the batch dimension, e.g. (1, 28, 28); MACs are
    for one input. zero_rows / zero_cols count a layer's own all-zero groups;
    removed_rows / removed_cols (and the kept and structural figures) add those made
    removable by the neighbouring layers when `propagate` is set (see the module doc).
    """
    macs_by_module, _ = flops_by_module(model, input_shape)
    removable = _removable(model, propagate)
    layers = []
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES):
            continue
        weight = module.weight.detach()
        out_ch, in_ch = weight.shape[0], weight.shape[1]
        own_rows, own_cols = _zero_groups(weight)
        rows, cols = removable[name]
        out_kept, in_kept = out_ch - int(rows.sum()), in_ch - int(cols.sum())
        macs = int(macs_by_module.get(name, 0))
        layers.append({
            "name": name,
            "kind": type(module).__name__,
            "weight_shape": tuple(weight.shape),
            "sparsity": 1 - int((weight != 0).sum()) / weight.numel(),
            "zero_rows": int(own_rows.sum()),  # own all-zero output filters / neurons
            "zero_cols": int(own_cols.sum()),  # own all-zero input channels / features
            "removed_rows": int(rows.sum()),  # own + made removable by the next layer
            "removed_cols": int(cols.sum()),  # own + made removable by the previous layer
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
        "propagated": propagate,
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
