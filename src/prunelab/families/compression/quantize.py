"""Weight quantizers: Deep Compression's trained weight sharing and MASE's uniform fixed point.

Deep Compression (Han, Mao, Dally 2016, section 3) clusters the surviving weights of each
layer with 1-D k-means into K = 2**bits shared values (the codebook), stores a bits-wide
index per weight, then fine-tunes the centroids: each centroid's gradient is the sum of the
gradients of the weights in its cluster, and pruned weights stay exactly zero. MASE's
student pipeline instead rounds each weight onto a signed fixed-point grid (8 bits, 4 of them
fractional, by default) and fine-tunes the float weights through a straight-through estimator.

Both are expressed as one `Quantized` record: a codebook (the values a kept weight may take),
a label per weight (its codebook index) and the pruning mask. `share` puts a model's layers
into their fine-tuning form with torch.nn.utils.parametrize; `bake` takes them out again,
leaving ordinary weights equal to the final quantized values bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from prunelab.pruning.masks import PRUNABLE_TYPES

INITS = ("linear", "density", "random")


@dataclass
class Quantized:
    """One layer's quantized weight: codebook[labels] where mask, exactly 0.0 elsewhere."""

    codebook: torch.Tensor  # float32 (K,), ascending: the values a kept weight may take
    labels: torch.Tensor  # int64, the weight's shape: each weight's codebook index (0 where pruned)
    mask: torch.Tensor  # bool, the weight's shape: the weights that survived pruning
    kind: str  # "kmeans" or "fixed"
    bits: int  # k-means: log2 of the requested K; fixed: total bits per weight
    frac_bits: int = 0  # fixed point only: bits after the binary point

    def values(self) -> torch.Tensor:
        """The dequantized weight, float32; where() rather than a product keeps pruned entries +0.0."""
        return torch.where(self.mask, self.codebook[self.labels], 0.0)


def _edges(xs: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Cluster boundaries in the sorted weights xs: cluster j is xs[edges[j]:edges[j+1]].

    In 1-D the nearest-centroid cells are the intervals between the midpoints of adjacent
    (sorted) centroids, so a cluster is a contiguous run of the sorted weights. A weight exactly
    on a midpoint goes to the lower cluster, as torch.bucketize(x, mids) assigns it.
    """
    mids = (centroids[1:] + centroids[:-1]) / 2
    inner = torch.searchsorted(xs, mids, right=True)
    return torch.cat([inner.new_zeros(1), inner, inner.new_full((1,), xs.numel())])


def _lloyd(xs: torch.Tensor, centroids: torch.Tensor, max_iter: int, tol: float) -> torch.Tensor:
    """Lloyd's iterations over sorted float64 weights; returns the sorted centroids.

    Each cluster's sum is a difference of two prefix sums, so one iteration costs O(K log n)
    after a single O(n) cumsum, and it involves no atomics: deterministic on any device.
    Empty clusters keep their centroid. Centroids stay sorted: a non-empty cluster's mean lies
    between the midpoints that bound it, an empty one's old centroid lies strictly between them.
    Stops at a fixed point (no weight changes cluster) or when no centroid moves more than
    tol times the weights' range.
    """
    prefix = torch.cat([xs.new_zeros(1), xs.cumsum(0)])
    span = float(xs[-1] - xs[0])
    edges = _edges(xs, centroids)
    for _ in range(max_iter):
        counts = edges[1:] - edges[:-1]
        sums = prefix[edges[1:]] - prefix[edges[:-1]]
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        shift = float((updated - centroids).abs().max())
        centroids = updated
        new_edges = _edges(xs, centroids)
        if torch.equal(new_edges, edges) or shift <= tol * span:
            break
        edges = new_edges
    return centroids


def _init(xs: torch.Tensor, k: int, init: str, generator: torch.Generator | None) -> torch.Tensor:
    """K sorted starting centroids (float64) from the sorted surviving weights xs (Han's Fig. 4)."""
    if init == "linear":  # evenly spaced over [min, max]: keeps the rare large weights (Han's best)
        return torch.linspace(float(xs[0]), float(xs[-1]), k, dtype=xs.dtype, device=xs.device)
    if init == "density":  # evenly spaced CDF levels (i + 1/2)/K, read back through the empirical CDF
        levels = (torch.arange(k, dtype=xs.dtype, device=xs.device) + 0.5) / k
        position = levels * (xs.numel() - 1)  # linear interpolation, as torch.quantile does
        low = position.floor().long()
        high = (low + 1).clamp(max=xs.numel() - 1)
        return torch.lerp(xs[low], xs[high], position - low)
    distinct = torch.unique_consecutive(xs)  # "random": K distinct surviving weights
    pick = torch.randperm(distinct.numel(), generator=generator)[:k].to(xs.device)
    return distinct[pick].sort().values


def kmeans_share(
    weight: torch.Tensor,
    mask: torch.Tensor,
    bits: int,
    init: str = "linear",
    generator: torch.Generator | None = None,
    max_iter: int = 300,
    tol: float = 1e-7,
) -> Quantized:
    """Han's weight sharing: 1-D k-means with K = 2**bits over weight[mask].

    If the surviving weights take at most K distinct values, each becomes its own centroid
    (exact, fewer clusters). The clustering runs in float64; the codebook is float32 and the
    labels are the nearest float32 centroid. max_iter=0 returns the initial centroids.
    `generator` (a CPU torch.Generator) seeds the "random" init only.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, not {init!r}")
    mask = mask.to(device=weight.device, dtype=torch.bool)
    kept = weight.detach()[mask].to(torch.float64)
    xs = kept.sort().values
    k = 2**bits
    distinct = torch.unique_consecutive(xs)
    if distinct.numel() <= k:
        centroids = distinct if distinct.numel() else xs.new_zeros(1)
    else:
        centroids = _lloyd(xs, _init(xs, k, init, generator), max_iter, tol)
    codebook = centroids.to(torch.float32)
    mids = (codebook[1:].double() + codebook[:-1].double()) / 2
    labels = torch.zeros(weight.shape, dtype=torch.int64, device=weight.device)
    labels[mask] = torch.bucketize(kept, mids)
    return Quantized(codebook, labels, mask.clone(), "kmeans", bits)


def _fixed_values(weight: torch.Tensor, total_bits: int, frac_bits: int) -> torch.Tensor:
    """Round onto the signed grid of step 2**-frac_bits, saturating at the two's-complement ends.

    torch.round rounds half to even (0.03125 at 4 fractional bits -> 0.0, 0.09375 -> 0.125).
    Scaling by a power of two is exact in float, so these values equal the codebook's bit for bit.
    """
    half, scale = 2 ** (total_bits - 1), 2.0**frac_bits
    return torch.clamp(torch.round(weight * scale), -half, half - 1) / scale


def fixed_point(weight: torch.Tensor, mask: torch.Tensor, total_bits: int = 8, frac_bits: int = 4) -> Quantized:
    """MASE's uniform signed fixed point (default 8 bits, 4 fractional: step 1/16, range [-8, 7.9375]).

    code = clamp(round(w * 2**frac), -2**(total-1), 2**(total-1) - 1), value = code / 2**frac.
    The codebook lists all 2**total grid values ascending, so labels = code + 2**(total-1).
    """
    if not 1 <= total_bits <= 16:
        raise ValueError(f"total_bits must be in [1, 16] (the codebook holds 2**total_bits values), not {total_bits}")
    mask = mask.to(device=weight.device, dtype=torch.bool)
    half = 2 ** (total_bits - 1)
    codes = torch.arange(-half, half, dtype=torch.float32, device=weight.device)
    code = torch.round(_fixed_values(weight.detach().float(), total_bits, frac_bits) * 2.0**frac_bits)
    labels = torch.where(mask, code.long() + half, 0)
    return Quantized(codes / 2.0**frac_bits, labels, mask.clone(), "fixed", total_bits, frac_bits)


class SharedWeight(nn.Module):
    """Parametrization weight = codebook[labels] where kept, 0 where pruned; the codebook trains.

    The gather's backward is a scatter-add, so each centroid's gradient is the sum of its
    weights' gradients (Han's fine-tuning); where() gives pruned positions no gradient at all.
    """

    def __init__(self, quantized: Quantized, like: torch.Tensor):
        super().__init__()
        self.codebook = nn.Parameter(quantized.codebook.to(like.device, like.dtype).clone())
        self.register_buffer("labels", quantized.labels.to(like.device).clone())
        self.register_buffer("mask", quantized.mask.to(like.device).clone())
        self.bits = quantized.bits

    def forward(self, original: torch.Tensor) -> torch.Tensor:  # original: frozen and unused
        return torch.where(self.mask, self.codebook[self.labels], 0.0)


class FixedWeight(nn.Module):
    """Parametrization weight = fixed_point(original) where kept, 0 where pruned, straight-through.

    The forward value is q + (w - w.detach()) = q + 0 exactly (w + (q - w).detach() could be off by
    a rounding); its gradient with respect to w is the identity, also outside the saturated range.
    """

    def __init__(self, quantized: Quantized, like: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", quantized.mask.to(like.device).clone())
        self.total_bits, self.frac_bits = quantized.bits, quantized.frac_bits

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            q = _fixed_values(original, self.total_bits, self.frac_bits)
        return torch.where(self.mask, q + (original - original.detach()), 0.0)


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, _, attr = name.rpartition(".")
    return model.get_submodule(module_name), attr


def share(model: nn.Module, layers: Mapping[str, Quantized]) -> None:
    """Put each named weight ("fc1.weight") into its fine-tuning form, in place.

    k-means: the trainable parameter becomes "<module>.parametrizations.weight.0.codebook"; the
    float weight ("<module>.parametrizations.weight.original") is frozen. Fixed point: the float
    weight, under that same "original" name, stays trainable. Build the optimizer afterwards.
    """
    for name, quantized in layers.items():
        module, attr = _owner(model, name)
        weight = getattr(module, attr)
        if quantized.labels.shape != weight.shape:
            raise ValueError(f"{name}: labels of shape {tuple(quantized.labels.shape)}, weight {tuple(weight.shape)}")
        if quantized.kind not in ("kmeans", "fixed"):
            raise ValueError(f"{name}: unknown quantization kind {quantized.kind!r}")
        parametrization = (SharedWeight if quantized.kind == "kmeans" else FixedWeight)(quantized, weight)
        parametrization.names = tuple(module._parameters)  # the module's parameter order, for bake
        parametrize.register_parametrization(module, attr, parametrization)
        if quantized.kind == "kmeans":
            module.parametrizations[attr].original.requires_grad_(False)


@torch.no_grad()
def bake(model: nn.Module, layers: Mapping[str, Quantized]) -> dict[str, Quantized]:
    """Undo `share`: plain trainable weights equal to the final quantized values, bit for bit.

    Returns each layer's final Quantized: k-means with the trained codebook re-sorted ascending
    (labels renumbered to match), fixed point re-quantized from the trained float weights.
    The weight Parameter objects are the originals, so state_dict keys are the pre-share ones.
    """
    final = {}
    for name in layers:
        module, attr = _owner(model, name)
        parametrization = module.parametrizations[attr][0]
        mask = parametrization.mask
        if isinstance(parametrization, SharedWeight):
            codebook = parametrization.codebook.detach().float()
            order = codebook.argsort(stable=True)
            rank = torch.empty_like(order)
            rank[order] = torch.arange(order.numel(), device=order.device)
            labels = torch.where(mask, rank[parametrization.labels], 0)
            final[name] = Quantized(codebook[order], labels, mask.clone(), "kmeans", parametrization.bits)
        else:
            original = module.parametrizations[attr].original
            final[name] = fixed_point(original, mask, parametrization.total_bits, parametrization.frac_bits)
        parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
        # The weight came back as the module's last parameter; move the ones that followed it
        # before share ("bias") behind it again, so state_dict keys come in their original order.
        names = parametrization.names
        for later in names[names.index(attr) + 1 :]:
            module._parameters[later] = module._parameters.pop(later)
        weight = getattr(module, attr)
        weight.copy_(final[name].values())
        weight.requires_grad_(True)
    return final


def quantizable_layers(model: nn.Module) -> list[str]:
    """Every conv/linear weight, classifier included: Han quantizes all layers."""
    return [f"{name}.weight" for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)]


def quantize_model(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None,
    bits: int | Mapping[str, int] | Callable[[str, nn.Module], int],
    method: str = "kmeans",
    frac_bits: int = 4,
    init: str = "linear",
    generator: torch.Generator | None = None,
) -> dict[str, Quantized]:
    """Quantize every quantizable layer; a layer missing from masks (or masks None) counts as dense.

    bits: one width for all, a width per weight name, or bits(name, module) (Han: 8 for conv,
    5 for fully connected). method "kmeans" uses init/generator, "fixed" uses frac_bits.
    """
    if method not in ("kmeans", "fixed"):
        raise ValueError(f"method must be 'kmeans' or 'fixed', not {method!r}")
    masks = masks or {}
    result = {}
    for name in quantizable_layers(model):
        module, attr = _owner(model, name)
        weight = getattr(module, attr)
        mask = masks.get(name, torch.ones_like(weight, dtype=torch.bool))
        width = bits if isinstance(bits, int) else bits[name] if isinstance(bits, Mapping) else bits(name, module)
        if method == "kmeans":
            result[name] = kmeans_share(weight, mask, width, init, generator)
        else:
            result[name] = fixed_point(weight, mask, width, frac_bits)
    return result
