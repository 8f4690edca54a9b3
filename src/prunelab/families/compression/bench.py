"""Benchmark: `compress` of Han's LeNet-5 (Caffe) at 12x, on the CPU: k-means weight sharing (conv 8,
fc 5 bits), 3 epochs of centroid fine-tuning on 60k MNIST-shaped images, encode and decode of
compressed.bin. The fine-tuning epoch is timed against a plain epoch of the same pruned model in the
same run (the baseline), so the row's ratio holds on any machine. Random weights and images: the work
done does not depend on their values."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...family import BenchSection
from ...log import progress_bar
from ...models import build
from .container import decode, encode
from .layout import expected_tensors, file_sections, original_bytes, quantize_layers
from .quantize import bake, share
from .settings import CompressConfig

IMAGES = 60_000  # one MNIST training split
BATCH = 128
EPOCHS = 3
KEEP = 1 / 12  # Han et al.'s 12x


def _pruned_lenet5_caffe(seed: int) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A randomly initialized LeNet-5 (Caffe) with the smallest 11/12 of its weights zeroed (one global threshold)."""
    torch.manual_seed(seed)
    model = build("lenet5_caffe", in_channels=1, num_classes=10, image_size=28)
    weights = {name: p for name, p in model.named_parameters() if name.endswith("weight")}
    scores = torch.cat([p.detach().abs().flatten() for p in weights.values()])
    threshold = scores.kthvalue(int(len(scores) * (1 - KEEP))).values
    masks = {name: p.detach().abs() > threshold for name, p in weights.items()}
    with torch.no_grad():
        for name, p in weights.items():
            p.mul_(masks[name])
    return model, masks


def _epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Seconds for one epoch of SGD over the images (the optimizer sees only trainable parameters)."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    start = time.perf_counter()
    for first in range(0, len(images), BATCH):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images[first:first + BATCH]), labels[first:first + BATCH]).backward()
        optimizer.step()
    return time.perf_counter() - start


def compress_timing(seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(IMAGES, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (IMAGES,), generator=generator)
    cfg = CompressConfig(conv_bits=8, fc_bits=5, conv_index_bits=5, fc_index_bits=5)
    model, masks = _pruned_lenet5_caffe(seed)
    with progress_bar() as progress:
        task = progress.add_task("compress lenet5_caffe", total=3 + EPOCHS, status="plain epoch")
        plain_s = _epoch(model, images, labels)  # the baseline: masks are not even kept, the cheapest epoch
        progress.update(task, advance=1, status="k-means")
        start = time.perf_counter()
        layers = quantize_layers(model, masks, cfg, torch.Generator().manual_seed(seed))
        kmeans_s = time.perf_counter() - start
        share(model, layers)
        progress.update(task, advance=1, status="fine-tune")
        epochs_s = []
        for _ in range(EPOCHS):
            epochs_s.append(_epoch(model, images, labels))
            progress.update(task, advance=1)
        layers = bake(model, layers)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "compressed.bin"
            start = time.perf_counter()
            encode(path, "bench0000000", file_sections(model, layers, cfg))
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            decode(path, "bench0000000", expected_tensors(model))
            decode_s = time.perf_counter() - start
            file_bytes = path.stat().st_size
        progress.update(task, advance=1, status="done")
    fine_tune_s = sum(epochs_s)
    return [{
        "model": "lenet5_caffe at 12x, random weights",
        "images per epoch": IMAGES,
        "k-means s": round(kmeans_s, 3),
        f"fine-tune s ({EPOCHS} epochs)": round(fine_tune_s, 2),
        "encode s": round(encode_s, 3),
        "decode s": round(decode_s, 3),
        "compress total s": round(kmeans_s + fine_tune_s + encode_s + decode_s, 2),
        "shared-weight epoch / plain epoch": round(fine_tune_s / EPOCHS / plain_s, 3),
        "file bytes": file_bytes,
        "fp32 / file": round(original_bytes(model) / file_bytes, 1),
        "torch threads": torch.get_num_threads(),
    }]


def benchmark() -> list[BenchSection]:
    return [("Deep Compression: the compress stage of LeNet-5 (Caffe)", compress_timing())]
