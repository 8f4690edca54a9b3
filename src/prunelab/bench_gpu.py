"""bench's GPU section (written only when CUDA is present): our training loop against plain loops.

Every figure is measured in the same invocation: absolute seconds and images/s on the GPU,
and each of our runs as a ratio to a plain loop at the same settings (data already on the
device, pre-normalized, no augmentation, eager PyTorch, synchronized only at the end).
The functions take the device and the sizes, so the tests run them on the CPU at toy sizes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import accel
from .config import OptimConfig
from .data.loader import TensorLoader
from .models import build
from .train import fit


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epoch(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int, precision: str = "fp32",
                channels_last: bool = False) -> float:
    """Seconds for one epoch of a bare SGD loop over float images already on the device."""
    device = images.device
    accel.to_memory_order(model, channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(labels), device=device)
    _synchronize(device)
    start = time.perf_counter()
    for first in range(0, len(labels), batch_size):
        index = order[first : first + batch_size]
        batch = accel.batch_in_order(images[index], channels_last)
        with accel.autocast(precision, device):
            loss = F.cross_entropy(model(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _synchronize(device)
    return time.perf_counter() - start


def fit_epoch(model, loader: TensorLoader, test: TensorLoader, **options) -> float:
    """Seconds of the training epoch that prunelab's `fit` logs (its own timer), with `options`
    for OptimConfig (precision, channels_last, compile); evaluation only after the epoch."""
    cfg = OptimConfig(epochs=1, lr=0.01, momentum=0.9, schedule="constant", **options)
    with tempfile.TemporaryDirectory() as folder:
        log = fit(model, loader, test, cfg, Path(folder) / "state.pt", "bench", description="bench")
    return log[0]["seconds"]


def _data(count: int, shape: tuple, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, *shape), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (count,), generator=g)
    return images.to(device), labels.to(device)


def training_rows(device: torch.device, arch: str, count: int, shape: tuple, settings: list[dict]) -> list[dict]:
    """For each setting (batch, precision, channels_last, compile): our fit's epoch and a plain
    loop's at the same batch, precision and memory order, both after one warm-up epoch."""
    images, labels = _data(count, shape, device)
    mean, std = (0.5,) * shape[0], (0.25,) * shape[0]
    floats = (images.float() / 255 - 0.5) / 0.25
    test = TensorLoader(images[:256], labels[:256], 256, mean, std, device=device)
    rows = []
    for setting in settings:
        batch, precision = setting["batch"], setting.get("precision", "fp32")
        channels_last, mode = setting.get("channels_last", False), setting.get("compile", "off")
        loader = TensorLoader(images, labels, batch, mean, std, shuffle=True, device=device)
        times = {}
        for name in ("plain", "ours"):
            torch.manual_seed(0)
            model = build(arch, in_channels=shape[0], num_classes=10, image_size=shape[1]).to(device)
            run = (lambda: plain_epoch(model, floats, labels, batch, precision, channels_last)) if name == "plain" \
                else (lambda: fit_epoch(model, loader, test, precision=precision, channels_last=channels_last,
                                        compile=mode))
            run()  # warm-up: kernels chosen, compiled graphs captured
            times[name] = run()
        rows.append({
            "model": arch, "images": count, "batch": batch, "precision": precision,
            "channels_last": "yes" if channels_last else "no", "compile": mode,
            "ours s": f"{times['ours']:.3f}", "plain loop s": f"{times['plain']:.3f}",
            "ours images/s": f"{count / times['ours']:,.0f}", "plain images/s": f"{count / times['plain']:,.0f}",
            "plain / ours time": f"{times['plain'] / times['ours']:.2f}x",
        })
    return rows


def gpu_section(device: torch.device, lenet_images: int = 60_000, vgg_images: int = 10_000) -> tuple[str, list[dict]]:
    """The GPU table: LeNet-5 on MNIST-shaped data, VGG16_bn on CIFAR-shaped data (synthetic bytes:
    the speed of a step does not depend on the pixels)."""
    rows = training_rows(device, "lenet5", lenet_images, (1, 28, 28), [
        {"batch": 128}, {"batch": 128, "compile": "reduce-overhead"}])
    rows += training_rows(device, "vgg16_bn", vgg_images, (3, 32, 32), [
        {"batch": 128}, {"batch": 512, "precision": "bf16", "channels_last": True}])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    return (f"GPU: {name} (targets: LeNet-5 epoch <= 0.2 s; VGG16_bn ours >= 0.95x the plain loop, "
            ">= 55k images/s at bf16 + channels_last, batch 512)", rows)
