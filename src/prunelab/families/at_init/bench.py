"""Benchmark: SynFlow pruning of the CIFAR VGG16 at initialization on the CPU.

100 rounds of score-then-prune to 10x (density 0.1, global scope), each round one
forward and backward of one all-ones 3x32x32 image (float32) plus the round's pruning
of the 14.7M conv weights, three ways: exactly by each round's k-th largest score (the
default, an O(n) selection), exactly by top-k masks of the global ranking in every round
(the previous exact path, the baseline of the ratio), and at sampled thresholds
(`synflow_exact_rounds = false`). The figure is the median wall time of a few repeats,
each on a freshly seeded model. How far the sampled rounds move the final mask is
measured against the exact one, next to how far the exact mask itself moves with 99
rounds instead of 100 (a reference for what "the same mask" can mean here).
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

from ...config import schema
from ...family import BenchSection
from ...log import progress_bar
from ...models import build
from ...pruning.masks import MaskSet, prunable_parameters
from . import synflow
from .bench_sweep import sweep_scaling
from .scores import at_init_masks

# How the rounds 1 .. rounds-1 prune: (exact rounds?, through top-k masks instead of the k-th value?)
WAYS = {"kth": (True, False), "topk": (True, True), "sampled": (False, False)}


@contextlib.contextmanager
def _top_k_rounds(enabled: bool):
    """Every exact round through the general top-k selection (the path before the k-th value one)."""
    original = synflow._exact_round
    if enabled:
        synflow._exact_round = lambda *args, **kwargs: False  # "not done": iterate selects by top-k masks
    try:
        yield
    finally:
        synflow._exact_round = original


def _masks(arch: str, rounds: int, way: str, compression: float, seed: int) -> tuple[dict, float]:
    """(final masks, seconds) of one SynFlow run on a model seeded with `seed`; `way`: a WAYS key."""
    exact, top_k = WAYS[way]
    cfg = schema.current().prune(method="synflow", start="init", scope="global", compression=compression,
                                 at_init={"synflow_rounds": rounds, "synflow_exact_rounds": exact})
    batch = [(torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long))]  # only its shape is used
    torch.manual_seed(seed)
    model = build(arch, in_channels=3, num_classes=10, image_size=32)
    current = MaskSet.ones(model, prunable_parameters(model)).masks
    with _top_k_rounds(top_k):
        start = time.perf_counter()
        masks = at_init_masks(cfg, 1, model, current, loader=batch)
        return masks, time.perf_counter() - start


def _shared(masks: dict, reference: dict) -> float:
    """Fraction of the reference's kept weights that `masks` keeps too."""
    both = sum(int((masks[n] & reference[n]).count_nonzero()) for n in reference)
    return both / sum(int(reference[n].count_nonzero()) for n in reference)


def synflow_timing(arch: str = "vgg16", rounds: int = 100, compression: float = 10.0, repeats: int = 3) -> list[dict]:
    """One row per way of running the rounds: median seconds, density, mask shared with exact rounds."""
    runs = [("exact, k-th value each round (default)", rounds, "kth", repeats),
            ("exact, top-k masks each round (previous exact path)", rounds, "topk", repeats),
            ("sampled thresholds", rounds, "sampled", repeats),
            ("exact, k-th value each round (default)", rounds - 1, "kth", 1)]
    results = []
    with progress_bar() as progress:
        task = progress.add_task(f"synflow {arch}", total=sum(r[3] for r in runs), status="")
        for label, count, way, times in runs:
            seconds, first = [], None
            for seed in range(times):
                masks, elapsed = _masks(arch, count, way, compression, seed)
                first = masks if first is None else first  # seed 0: the masks compared below
                seconds.append(elapsed)
                progress.update(task, advance=1, status=f"{label}: {elapsed:.2f}s")
            results.append((label, count, seconds, first))
    exact_masks, top_k_seconds = results[0][3], results[1][2]
    rows = []
    for label, count, seconds, masks in results:
        kept = sum(int(m.count_nonzero()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        median = statistics.median(seconds)
        rows.append({
            "run": f"{count} rounds, {label}",
            "seconds (median)": f"{median:.2f}",
            "seconds (each)": ", ".join(f"{s:.2f}" for s in seconds),
            "ms per round": f"{1000 * median / count:.0f}",
            "top-k exact time / this": f"{statistics.median(top_k_seconds) / median:.2f}x",
            "achieved density": f"{kept / total:.6f}",
            f"kept weights shared with the exact {rounds}-round mask (seed 0)": f"{100 * _shared(masks, exact_masks):.1f}%",
            "CPU threads": str(torch.get_num_threads()),
        })
    return rows


def benchmark() -> list[BenchSection]:
    return [("SynFlow scoring of the CIFAR VGG16 (14.7M weights, 10x, batch of 1, CPU; target: exact 100 rounds "
             "<= 4 s on 2 cores)", synflow_timing()),
            ("Sweep scaling: one grid serially and in parallel worker processes (`sweep --jobs N`)",
             sweep_scaling())]
