"""Filter ranking criteria as Torch-Pruning importance objects.

Each criterion is called with a DepGraph group (all layers whose channels are
removed together: a conv, its BatchNorm, the consumers' input channels, and for
residual or depthwise coupling the partner convs) and returns one score per
channel of the group's root; the lowest scores are removed first.

Scores are computed from the conv/linear layers whose *output* channels the
group removes ("the filters"), averaged over those layers when several share
the channels (residual partners), and divided by their mean so that groups are
comparable under global ranking (the order inside a group is unchanged).

- l1 / l2: norm of each filter's kernel weights (Li et al. 2017 use l1).
- taylor: mean over images of |spatial mean of activation x gradient| at the
  filter's output (Molchanov et al. 2017), from `prepare(model, batches)`.
- kmeans: cluster the filters, rank each cluster's members by l1 norm, and
  keep one member per cluster before any second member (Pruning Engine seed).
- random: uniform scores from a seeded generator (the baseline).
"""

from __future__ import annotations

import abc
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from ...log import progress_bar
from ...registry import Registry

# Score normalisation guard: a group whose scores are all zero stays all zero.
EPS = 1e-12


def out_channel_layers(group) -> list[tuple[nn.Module, list[int], list[int]]]:
    """(layer, channel indices, root indices) for each conv/linear whose outputs the group removes."""
    found = []
    for item in group:
        layer, handler = item.dep.target.module, item.dep.handler
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and handler in (
            tp.prune_conv_out_channels, tp.prune_depthwise_conv_out_channels, tp.prune_linear_out_channels
        ):
            found.append((layer, list(item.idxs), list(item.root_idxs)))
    return found


def filters_of(group) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(flattened filters in root order, root indices) per output layer of the group."""
    rows = []
    for layer, idxs, root_idxs in out_channel_layers(group):
        weight = layer.weight.detach()[idxs].flatten(1).float()
        rows.append((weight, torch.tensor(root_idxs, dtype=torch.long)))
    return rows


def group_size(group) -> int:
    return len(group[0].idxs)


def _mean_over_layers(per_layer: list[tuple[torch.Tensor, torch.Tensor]], size: int) -> torch.Tensor:
    """Average per-channel scores of the layers that share the group's channels."""
    total = torch.zeros(size)
    count = torch.zeros(size)
    for scores, root_idxs in per_layer:
        total.index_add_(0, root_idxs, scores.cpu().float())
        count.index_add_(0, root_idxs, torch.ones(len(root_idxs)))
    return total / count.clamp(min=1)


def _normalized(scores: torch.Tensor) -> torch.Tensor:
    return scores / (scores.mean() + EPS)


class FilterImportance(tp.importance.Importance):
    """Base of every criterion: optional data and keep-count hooks; `__call__(group)` scores a group."""

    def prepare(self, model: nn.Module, batches: Iterable, total: int | None = None) -> None:
        """Data-driven criteria gather statistics from `batches` (`total` of them, for the progress bar)."""

    def expect_keep(self, keep: dict[nn.Module, int]) -> None:
        """How many channels each group (by root module) will keep; only k-means uses it."""


class LayerwiseImportance(FilterImportance):
    """Per-layer filter scores, averaged over coupled layers, mean-normalised."""

    @abc.abstractmethod
    def layer_scores(self, layer: nn.Module, filters: torch.Tensor, idxs: list[int]) -> torch.Tensor:
        """One score per filter in `idxs` of `layer` (`filters`: their weights, one row each); higher = keep."""

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor | None:
        layers = out_channel_layers(group)
        if not layers:
            return None
        per_layer = []
        for layer, idxs, root_idxs in layers:
            filters = layer.weight.detach()[idxs].flatten(1).float()
            per_layer.append((self.layer_scores(layer, filters, idxs), torch.tensor(root_idxs, dtype=torch.long)))
        return _normalized(_mean_over_layers(per_layer, group_size(group)))


class NormImportance(LayerwiseImportance):
    """The p-norm of each filter's kernel weights (bias excluded, as Li et al.)."""

    def __init__(self, p: int):
        self.p = p

    def layer_scores(self, layer, filters, idxs):
        return filters.norm(p=self.p, dim=1)


class RandomImportance(LayerwiseImportance):
    """Uniform random scores from a seeded generator: the same seed ranks the same way."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def layer_scores(self, layer, filters, idxs):
        return torch.rand(filters.shape[0], generator=self.generator) + EPS


class TaylorImportance(LayerwiseImportance):
    """Molchanov et al. 2017: |spatial mean of activation x gradient| per image and channel,
    averaged over the images of `prepare`'s batches (cross-entropy loss, model in eval mode
    so BatchNorm running statistics are not touched)."""

    def __init__(self):
        self.scores: dict[nn.Module, torch.Tensor] = {}

    def prepare(self, model: nn.Module, batches: Iterable, total: int | None = None) -> None:
        layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        sums = {layer: None for layer in layers}
        images_seen = 0
        handles = []

        def capture(layer):
            def forward_hook(module, inputs, output):
                # A copy: an in-place ReLU after the layer would overwrite the activation.
                activation = output.detach().clone()

                def grad_hook(grad):
                    # (N, C, H, W) -> (N, C): spatial mean of a*g, then |.|, summed over images.
                    product = activation * grad
                    if product.dim() > 2:
                        product = product.flatten(2).mean(2)
                    contribution = product.abs().sum(0)
                    sums[layer] = contribution if sums[layer] is None else sums[layer] + contribution

                output.register_hook(grad_hook)

            return forward_hook

        for layer in layers:
            handles.append(layer.register_forward_hook(capture(layer)))
        was_training = model.training
        model.eval()
        try:
            with progress_bar() as progress:
                task = progress.add_task("taylor scores", total=total, status="")
                for images, labels in batches:
                    model.zero_grad(set_to_none=True)
                    F.cross_entropy(model(images), labels).backward()
                    images_seen += labels.numel()
                    progress.advance(task)
        finally:
            for handle in handles:
                handle.remove()
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        if images_seen == 0:
            raise ValueError("taylor importance needs at least one batch")
        self.scores = {layer: (total / images_seen).cpu() for layer, total in sums.items() if total is not None}

    def layer_scores(self, layer, filters, idxs):
        if layer not in self.scores or len(self.scores[layer]) <= max(idxs):
            raise RuntimeError("TaylorImportance.prepare must run on the current model before ranking")
        return self.scores[layer][idxs]


def kmeans(points: torch.Tensor, k: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """Cluster labels of `points` (n, d) into k clusters: k-means++ seeding, then Lloyd steps."""
    n = points.shape[0]
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    closest = (points - points[chosen[0]]).pow(2).sum(1)  # squared distance to the nearest chosen center
    for _ in range(1, k):
        if float(closest.sum()) <= 0:  # fewer distinct filters than clusters
            pick = int(torch.randint(n, (1,), generator=generator))
        else:
            pick = int(torch.multinomial(closest / closest.sum(), 1, generator=generator))
        chosen.append(pick)
        closest = torch.minimum(closest, (points - points[pick]).pow(2).sum(1))
    centers = points[chosen].clone()
    labels = torch.cdist(points, centers).argmin(1)
    for _ in range(iterations):
        counts = torch.bincount(labels, minlength=k).unsqueeze(1)
        sums = torch.zeros_like(centers).index_add_(0, labels, points)
        centers = torch.where(counts > 0, sums / counts.clamp(min=1), centers)  # an empty cluster keeps its center
        new_labels = torch.cdist(points, centers).argmin(1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return labels


class KMeansImportance(FilterImportance):
    """Cluster a group's filters into as many clusters as channels it keeps; inside each cluster
    rank members by l1 norm. Score = tier (the 1st member of every cluster outranks every
    2nd member, ...) plus the member's l1 norm / the largest, scaled into [0, 0.5] to order a tier.
    So at the planned keep count exactly one representative per cluster survives."""

    def __init__(self, seed: int, iterations: int = 30):
        self.generator = torch.Generator().manual_seed(seed)
        self.iterations = iterations
        self.keep: dict[nn.Module, int] = {}

    def expect_keep(self, keep: dict[nn.Module, int]) -> None:
        self.keep = dict(keep)

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor | None:
        rows = filters_of(group)
        if not rows:
            return None
        size = group_size(group)
        # One feature vector per channel: the filters of every coupled layer, concatenated.
        features = torch.cat([torch.zeros(size, w.shape[1]).index_copy_(0, r, w) for w, r in rows], dim=1)
        norms = features.abs().sum(1)
        root = group[0].dep.target.module
        clusters = min(max(self.keep.get(root, size), 1), size)
        labels = kmeans(features, clusters, self.iterations, self.generator)
        tier = torch.zeros(size)
        for cluster in labels.unique():
            members = (labels == cluster).nonzero().flatten()
            order = members[norms[members].argsort(descending=True)]
            tier[order] = torch.arange(len(order), dtype=torch.float32)
        scores = (tier.max() + 1 - tier) + 0.5 * norms / (norms.max() + EPS)
        return _normalized(scores)


# criterion name -> factory(seed) of its importance object; [prune.filters] criterion takes these names.
CRITERIA: Registry[Callable[[int], FilterImportance]] = Registry("filter criterion")
CRITERIA.register("l1")(lambda seed: NormImportance(1))
CRITERIA.register("l2")(lambda seed: NormImportance(2))
CRITERIA.register("taylor")(lambda seed: TaylorImportance())
CRITERIA.register("kmeans")(KMeansImportance)
CRITERIA.register("random")(RandomImportance)


def make_importance(criterion: str, seed: int) -> FilterImportance:
    """The importance object for a [prune.filters] criterion name (seeded where it draws randomly)."""
    return CRITERIA.get(criterion, "prune.filters.criterion")(seed)
