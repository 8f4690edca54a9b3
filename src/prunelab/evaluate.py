"""Accuracy, loss and latency."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> dict[str, float]:
    """Top-1 accuracy (%) and mean cross-entropy over the loader.

    The sums stay on the model's device until the end (one host synchronization, not one per
    batch); the loss is summed in float64, the same additions as Python floats would make.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for images, labels in loader:
        logits = model(images)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").double()
        correct += (logits.argmax(1) == labels).sum()
        count += labels.numel()
    model.train(was_training)
    return {"accuracy": 100.0 * int(correct) / max(count, 1), "loss": float(total_loss) / max(count, 1)}


@torch.no_grad()
def latency(model: nn.Module, images: torch.Tensor, repeats: int, warmup: int) -> dict[str, float]:
    """Median forward time of one batch: ms per batch and images per second."""
    model.eval()
    synchronize = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    for _ in range(warmup):
        model(images)
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(images)
        synchronize()
        times.append(time.perf_counter() - start)
    median_s = statistics.median(times)
    return {
        "batch_size": images.shape[0],
        "ms_per_batch": 1000.0 * median_s,
        "images_per_s": images.shape[0] / median_s,
        "device": str(images.device),
    }
