"""Between a model and its compressed file: which weights are quantized and how (bits per layer kind),
the sections the file holds, what the decoder must find, and the fp32 size it is compared with."""

from __future__ import annotations

import torch
import torch.nn as nn

from .container import Codebook, RawTensor, SparseLayer
from .quantize import Quantized, fixed_point, kmeans_share, quantizable_layers
from .settings import CompressConfig

FP32_BYTES = 4


def _is_conv(model: nn.Module, weight_name: str) -> bool:
    return isinstance(model.get_submodule(weight_name.rsplit(".", 1)[0]), nn.modules.conv._ConvNd)


def quantize_layers(model: nn.Module, masks: dict[str, torch.Tensor], cfg: CompressConfig,
                    generator: torch.Generator) -> dict[str, Quantized]:
    """Every conv/linear weight (the classifier too, as Han et al. do), quantized over its kept weights:
    the pruner's mask where it saved one, else the nonzero entries."""
    params = dict(model.named_parameters())
    layers = {}
    for name in quantizable_layers(model):
        weight = params[name].detach()
        mask = masks[name].to(weight.device, torch.bool) if name in masks else weight != 0
        if cfg.quantizer == "kmeans":
            bits = cfg.conv_bits if _is_conv(model, name) else cfg.fc_bits
            layers[name] = kmeans_share(weight, mask, bits, cfg.init, generator)
        else:
            layers[name] = fixed_point(weight, mask, cfg.total_bits, cfg.frac_bits)
    return layers


def _codebook(quantized: Quantized) -> Codebook:
    if quantized.kind == "fixed":
        return Codebook(kind="fixed", values=None, total_bits=quantized.bits, frac_bits=quantized.frac_bits)
    return Codebook(kind="kmeans", values=quantized.codebook.detach().cpu().float().numpy())


def file_sections(model: nn.Module, layers: dict[str, Quantized], cfg: CompressConfig) -> list:
    """The model's state dict in file order: each quantized weight as a sparse section (kept positions,
    codebook symbols, relative-index width by layer kind), every other tensor raw."""
    sections: list = []
    for name, tensor in model.state_dict().items():
        if name not in layers:
            sections.append(RawTensor(name=name, tensor=tensor.detach().cpu()))
            continue
        quantized = layers[name]
        mask = quantized.mask.detach().cpu().flatten()
        sections.append(SparseLayer(
            name=name, shape=tuple(tensor.shape),
            positions=torch.nonzero(mask).flatten().numpy().astype("int64"),
            symbols=quantized.labels.detach().cpu().flatten()[mask].numpy().astype("int64"),
            codebook=_codebook(quantized),
            index_bits=cfg.conv_index_bits if _is_conv(model, name) else cfg.fc_index_bits,
        ))
    return sections


def expected_tensors(model: nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """What the decoder must find in the file: every state-dict entry of the model, with its shape and dtype."""
    return {name: (tuple(tensor.shape), tensor.dtype) for name, tensor in model.state_dict().items()}


def original_bytes(model: nn.Module) -> int:
    """The model as a plain fp32 file would hold it: 4 bytes per floating-point state-dict entry
    (parameters and BatchNorm statistics; Han et al.'s 1070 KB for LeNet-300-100's 266,610 parameters)."""
    return FP32_BYTES * sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
