"""Benchmark: SynFlow pruning of the CIFAR VGG16 at initialization on the CPU.

100 rounds of score-then-prune to 10x (density 0.1, global scope), each round one
float64 forward and backward of one all-ones 3x32x32 image plus an exact global
selection over the 14.7M conv weights. The figure is the median wall time of a few
repeats, each on a freshly seeded model.
"""

from __future__ import annotations

import statistics
import time

import torch

from .config import PruneConfig
from .log import progress_bar
from .models import build
from .pruning import MaskSet, prunable_parameters
from .pruning.at_init import at_init_masks


def synflow_timing(arch: str = "vgg16", rounds: int = 100, compression: float = 10.0, repeats: int = 3) -> dict:
    """{"seconds_median", "seconds", "rounds", "arch", ...}: SynFlow mask computation time (CPU, batch of 1)."""
    cfg = PruneConfig(method="synflow", start="init", scope="global", compression=compression,
                      at_init={"synflow_rounds": rounds})
    batch = [(torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long))]  # only its shape is used
    times, density = [], None
    with progress_bar() as progress:
        task = progress.add_task(f"synflow {arch}", total=repeats, status="")
        for repeat in range(repeats):
            torch.manual_seed(repeat)
            model = build(arch, in_channels=3, num_classes=10, image_size=32)
            names = prunable_parameters(model)
            masks = MaskSet.ones(model, names)
            start = time.perf_counter()
            new = at_init_masks(cfg, 1, model, masks.masks, loader=batch)
            times.append(time.perf_counter() - start)
            masks.update(new)
            density = masks.density()
            progress.update(task, advance=1, status=f"{times[-1]:.2f}s")
    return {
        "arch": arch,
        "rounds": rounds,
        "compression": compression,
        "achieved_density": density,
        "prunable_weights": sum(int(m.numel()) for m in masks.masks.values()),
        "seconds": times,
        "seconds_median": statistics.median(times),
        "seconds_per_round": statistics.median(times) / rounds,
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
    }
