"""Activation pruning of the mase family: which input channels of each layer to zero at run time.

The inputs of every layer but the first (pruning/activations.maskable_layers) are recorded over
`calibration_batches` training batches (eval mode: BatchNorm on its running statistics, weight masks
applied), reduced per channel, and each layer keeps kept_count(1 - activation_sparsity, channels) of
its input channels, at least one (ties: the lower index is kept):

  l1-norm     mean |a| over every value the channel takes (images x positions)
  l2-norm     root mean square of those values
  apoz        Hu et al. 2016, "Network Trimming": the channels with the highest average percentage
              of zeros (exact zeros, e.g. after a ReLU) go first
  random      seeded, the calibration data unused
  similarity  a channel is the vector of all its values over the calibration set; repeatedly take the
              two most similar kept channels (cosine) and drop the weaker (smaller RMS; on a tie the
              higher index), until the target count. Channels that are always zero go first.

MASE's own activation pass thresholds each input element-wise at run time; MASE group 3's variants
prune whole feature maps / neurons, as here, with masks fixed after calibration.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn

from ...data.loader import TensorLoader
from ...pruning.activations import channel_values, input_channels, maskable_layers
from ...pruning.scores import eval_mode
from ...pruning.selection import kept_count


@dataclass
class ChannelStats:
    """Sums over the calibration values of one layer's input, per channel."""

    channels: int
    gram: bool  # keep sum(a_i a_j) for the similarity method (channels x channels)
    positions: int = 0  # values seen per channel
    abs_sum: torch.Tensor = field(init=False)
    square_sum: torch.Tensor = field(init=False)
    zeros: torch.Tensor = field(init=False)
    products: Optional[torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.abs_sum = torch.zeros(self.channels, dtype=torch.float64)
        self.square_sum = torch.zeros(self.channels, dtype=torch.float64)
        self.zeros = torch.zeros(self.channels, dtype=torch.float64)
        self.products = torch.zeros(self.channels, self.channels, dtype=torch.float64) if self.gram else None

    def add(self, values: torch.Tensor) -> None:
        """Values of shape (positions, channels): summed per batch in float32 (on the model's device),
        accumulated over batches in float64."""
        values = values.detach().float()
        self.positions += values.shape[0]
        self.abs_sum += values.abs().sum(0).cpu()
        self.square_sum += values.square().sum(0).cpu()
        self.zeros += (values == 0).sum(0).cpu()
        if self.products is not None:
            self.products += (values.T @ values).cpu()


@torch.no_grad()
def channel_stats(model: nn.Module, layers: list[str], batches: list[torch.Tensor],
                  gram: bool = False) -> dict[str, ChannelStats]:
    """Per-channel statistics of the named layers' inputs over the batches (images), in eval mode."""
    modules = dict(model.named_modules())
    stats = {name: ChannelStats(input_channels(modules[name]), gram) for name in layers}
    names = {modules[name]: name for name in layers}

    def record(module: nn.Module, args: tuple) -> None:
        stats[names[module]].add(channel_values(module, args[0]))

    handles = [modules[name].register_forward_pre_hook(record) for name in layers]
    try:
        with eval_mode(model):
            for images in batches:
                model(images)
    finally:
        for handle in handles:
            handle.remove()
    return stats


def top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Bool mask of the `keep` highest scores; among equal scores the lower index is kept."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[torch.sort(scores, descending=True, stable=True).indices[:keep]] = True
    return mask


def similarity_keep(products: torch.Tensor, keep: int) -> torch.Tensor:
    """Bool mask of `keep` channels left after dropping, one at a time, the weaker of the two most
    similar kept channels (cosine of their value vectors, from the sums of products a_i a_j)."""
    norms = products.diagonal().sqrt()
    kept = torch.ones(norms.numel(), dtype=torch.bool)
    if keep <= 0:
        return ~kept
    for channel in torch.nonzero(norms == 0).flatten().tolist()[: norms.numel() - keep]:
        kept[channel] = False  # never active: carries nothing
    safe = norms.clamp(min=torch.finfo(norms.dtype).tiny)
    cosine = products / safe[:, None] / safe[None, :]
    cosine.fill_diagonal_(-float("inf"))
    while int(kept.sum()) > keep:
        among = cosine.masked_fill(~(kept[:, None] & kept[None, :]), -float("inf"))
        first, second = divmod(int(torch.argmax(among)), norms.numel())  # first < second: symmetric, row-major
        kept[second if norms[second] <= norms[first] else first] = False
    return kept


def layer_mask(stats: ChannelStats, method: str, keep: int, generator: torch.Generator) -> torch.Tensor:
    """The input channels one layer keeps (bool, one per channel)."""
    if method == "similarity":
        return similarity_keep(stats.products, keep)
    if method == "random":
        return top(torch.rand(stats.channels, generator=generator), keep)
    positions = max(stats.positions, 1)
    scores = {
        "l1-norm": stats.abs_sum / positions,
        "l2-norm": (stats.square_sum / positions).sqrt(),
        "apoz": -stats.zeros / positions,  # fewer zeros = keep
    }[method]
    return top(scores, keep)


def activation_masks(model: nn.Module, batches: list[torch.Tensor], sparsity: float, method: str,
                     seed: int) -> dict[str, torch.Tensor]:
    """Input masks for every layer but the first: each keeps kept_count(1 - sparsity, channels) of its input
    channels, at least one (a layer with no input left would cut the network)."""
    layers = maskable_layers(model)
    if method == "random":  # no statistics needed
        modules = dict(model.named_modules())
        stats = {name: ChannelStats(input_channels(modules[name]), gram=False) for name in layers}
    else:
        stats = channel_stats(model, layers, batches, gram=method == "similarity")
    generator = torch.Generator().manual_seed(seed)
    return {name: layer_mask(s, method, max(1, kept_count(1 - sparsity, s.channels)), generator)
            for name, s in stats.items()}


def calibration_batches(loader: TensorLoader, count: int) -> list[torch.Tensor]:
    """The first `count` image batches of the loader."""
    return [images for images, _ in itertools.islice(iter(loader), count)]
