"""Benchmark: Li et al. 2017's VGG-16-A recipe on the CIFAR-10-shaped vgg16_bn, on the CPU.

50% of the filters of conv1 and conv8-13 are removed by l1 norm through the
DepGraph (random weights: counts and speed do not depend on training). Reported:
parameter and MAC (fvcore) reductions, and the measured forward speedup at each
batch size beside the theoretical one (dense MACs / pruned MACs). Dense and
pruned batches are timed alternately (after warm-up), so machine load drifts
hit both; each figure is the median of the repeats.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn as nn

from ...family import BenchSection
from ...log import progress_bar
from ...models import build
from .criteria import make_importance
from .pruner import counts
from .rebuild import architecture_of, out_channels
from .remove import Targets, remove_filters

INPUT_SHAPE = (3, 32, 32)  # CIFAR-10
# Li et al.'s VGG-16-A: conv layers (1-based, in forward order) that lose half of their filters.
VGG16_A_CONVS = (1, 8, 9, 10, 11, 12, 13)


def vgg16_a_ratios(model: nn.Module) -> dict[str, float]:
    """Our vgg16_bn module names for VGG-16-A's pruned layers -> 0.5 (fraction of filters removed)."""
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    return {convs[index - 1]: 0.5 for index in VGG16_A_CONVS}


def vgg16_a(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(dense, pruned) CIFAR-10 vgg16_bn, the pruned one by the VGG-16-A recipe, both in eval mode."""
    torch.manual_seed(seed)
    dense = build("vgg16_bn", in_channels=INPUT_SHAPE[0], num_classes=10, image_size=INPUT_SHAPE[1]).eval()
    pruned = copy.deepcopy(dense)
    targets = Targets(ratios=vgg16_a_ratios(dense), ignored=["fc"])
    remove_filters(pruned, torch.zeros(1, *INPUT_SHAPE), make_importance("l1", seed), targets,
                   out_channels(architecture_of(dense)))
    return dense, pruned.eval()


@torch.no_grad()
def _alternate_timing(models: list[nn.Module], images: torch.Tensor, repeats: int, warmup: int) -> list[float]:
    """Median seconds per forward of each model, timing the models in turn each repeat."""
    for model in models:
        for _ in range(warmup):
            model(images)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for index, model in enumerate(models):
            start = time.perf_counter()
            model(images)
            times[index].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def structured_speedup(batch_sizes: tuple[int, ...] = (1, 128), repeats: int = 7, warmup: int = 2) -> list[dict]:
    """One row per batch size: counts, theoretical and measured CPU speedup of VGG-16-A."""
    dense, pruned = vgg16_a()
    dense_params, dense_macs = counts(dense, INPUT_SHAPE)
    pruned_params, pruned_macs = counts(pruned, INPUT_SHAPE)
    theoretical = dense_macs / pruned_macs
    rows = []
    with progress_bar() as progress:
        task = progress.add_task("VGG-16-A speed", total=len(batch_sizes), status="")
        for size in batch_sizes:
            images = torch.randn(size, *INPUT_SHAPE, generator=torch.Generator().manual_seed(size))
            dense_s, pruned_s = _alternate_timing([dense, pruned], images, repeats, warmup)
            measured = dense_s / pruned_s
            rows.append({
                "model": "vgg16_bn, VGG-16-A (Li et al. 2017)",
                "batch": size,
                "params dense": dense_params,
                "params pruned": pruned_params,
                "params removed (%)": round(100 * (1 - pruned_params / dense_params), 2),
                "MACs dense": dense_macs,
                "MACs pruned": pruned_macs,
                "MACs removed (%)": round(100 * (1 - pruned_macs / dense_macs), 2),
                "dense ms": round(1000 * dense_s, 3),
                "pruned ms": round(1000 * pruned_s, 3),
                "theoretical speedup": round(theoretical, 3),
                "measured speedup": round(measured, 3),
                "measured / theoretical": round(measured / theoretical, 3),
                "torch threads": torch.get_num_threads(),
            })
            progress.update(task, advance=1, status=f"batch {size}: {measured:.2f}x")
    return rows


def benchmark() -> list[BenchSection]:
    return [("Structured pruning: theoretical vs measured speedup", structured_speedup())]
