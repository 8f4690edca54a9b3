"""One pruned model measured with one sparse kernel (catalog.py): its entry in metrics.json.

1. Choice, per device and batch size: each layer the kernel takes is timed alone on the input it gets
   in the timing batch, the dense layer against the kernel's module, in turns (LAYER_REPEATS pairs); it
   keeps the kernel only where that measured faster, else it stays dense. The choice is recorded.
2. Time: the model with the chosen layers swapped in against the dense (masked) model on the same batch,
   in turns, the median of [test] latency_repeats pairs after latency_warmup; speedup = dense / kernel.
3. Check: the model with every layer that took the kernel at some device and batch size runs the whole
   test set beside the dense model. Logits must agree within TOLERANCE and the top-1 class must be the
   same, except on near ties (see `check`); else KernelMismatch, never a silent number.

What layers were chosen follows from timings, and so does which model was checked: both sit under
"latency" with the times, which `check` (stages/check.py) and the sweep comparisons leave out. The
layers the kernel cannot take, and why, are under "ineligible".
"""

from __future__ import annotations

import copy
import functools
import statistics
import time
from typing import Callable, Optional

import torch
import torch.nn as nn

from .catalog import Kernel, layers, swapped

# Logits of the kernel's model may differ from the dense model's by TOLERANCE[dtype] x max(1, the largest
# |logit| of the batch). fp32: a sparse product adds the same nonzero terms as the dense one in another
# order; the rounding of a k-term sum moves by about sqrt(k) x 6e-8 of its terms (k <= 4,608 in VGG16's
# convs: ~4e-6 per layer), so 1e-4 leaves room for ~20 layers, while a wrong index or a lost bias moves
# logits by far more. fp16 / bf16 (semi_structured, checked against the dense model in the same dtype):
# one rounding is 5e-4 / 4e-3 of a value, and the kernels accumulate in fp32.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}

LAYER_REPEATS = 10  # timed pairs per layer for the choice (at most [test] latency_repeats)


class KernelMismatch(Exception):
    """A kernel's outputs differ from the dense model's by more than the stated tolerance."""


def _synchronize(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def paired_ms(calls: dict[str, Callable[[], object]], repeats: int, warmup: int, sync: Callable[[], None]) -> dict:
    """Median milliseconds of one call of each function, timed in turns (a, b, a, b, ...) so that the slow
    spells of a shared machine fall on all of them alike. One call per sample: on a machine whose cores
    are busy with other work a longer sample holds the preemptions, and the median of single calls skips
    them (measured: batch-1 LeNet-300-100 medians over 2 ms samples varied 3x between runs)."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            sync()
            start = time.perf_counter()
            call()
            sync()
            samples[key].append(time.perf_counter() - start)
    return {key: 1000.0 * statistics.median(times) for key, times in samples.items()}


def _keep_input(found: dict, name: str, module: nn.Module, args: tuple) -> None:
    found[name] = args[0].detach().clone()


@torch.no_grad()
def layer_inputs(model: nn.Module, names: list[str], batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input each named layer gets when `model` runs `batch` (before any input mask of its own)."""
    found: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_pre_hook(functools.partial(_keep_input, found, name), prepend=True)
               for name in names]
    try:
        model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return found


def _on(model: nn.Module, device: torch.device, dtype: Optional[torch.dtype]) -> nn.Module:
    moved = copy.deepcopy(model).to(device)
    return (moved.to(dtype) if dtype is not None else moved).eval()


@torch.no_grad()
def _batch_record(dense: nn.Module, kernel: Kernel, taken: dict[str, float], batch: torch.Tensor, repeats: int,
                  warmup: int, sync: Callable[[], None]) -> dict:
    """One batch size on one device: each layer's choice, then the whole model against dense."""
    modules = dict(dense.named_modules())
    inputs = layer_inputs(dense, list(taken), batch)
    choice = {}
    for name, kept in taken.items():
        layer, sparse, x = modules[name], kernel.build(modules[name]), inputs[name]
        ms = paired_ms({"dense": lambda: layer(x), "kernel": lambda: sparse(x)}, min(repeats, LAYER_REPEATS), 1, sync)
        choice[name] = {"density": kept, "kernel": kernel.name if ms["kernel"] < ms["dense"] else "dense",
                        "dense_ms": ms["dense"], f"{kernel.name}_ms": ms["kernel"]}
    chosen = [name for name, row in choice.items() if row["kernel"] == kernel.name]
    if chosen:
        fast = swapped(dense, kernel, chosen)
        ms = paired_ms({"dense": lambda: dense(batch), "kernel": lambda: fast(batch)}, repeats, warmup, sync)
    else:  # every layer stays dense: the kernel's model is the dense one
        ms = paired_ms({"dense": lambda: dense(batch)}, repeats, warmup, sync)
        ms["kernel"] = ms["dense"]
    size = batch.shape[0]
    return {"batch_size": size, "ms_per_batch": ms["kernel"], "images_per_s": 1000.0 * size / ms["kernel"],
            "dense_ms_per_batch": ms["dense"], "speedup": ms["dense"] / ms["kernel"], "layers": choice}


@torch.no_grad()
def check(model: nn.Module, kernel: Kernel, names: list[str], loader, device: torch.device) -> dict:
    """The model with the named layers on the kernel against the dense model over every batch of `loader`
    (the test set), on `device` in the kernel's dtype. Raises KernelMismatch when logits differ by more
    than the tolerance, or the top-1 class differs where the dense model's top two logits are further
    apart than twice the tolerance (closer than that, either class is the model's answer within rounding:
    such images are counted as near ties)."""
    dtype = kernel.dtype or torch.float32
    dense = _on(model, device, kernel.dtype)
    fast = swapped(dense, kernel, names)
    tolerance = TOLERANCE[dtype]
    worst = worst_relative = 0.0
    count = right = dense_right = ties = 0
    for images, labels in loader:
        images, labels = images.to(device, dtype), labels.to(device)
        expected, got = dense(images).float(), fast(images).float()
        scale = max(1.0, float(expected.abs().max()))
        difference = float((got - expected).abs().max())
        if difference > tolerance * scale:
            raise KernelMismatch(f"on {kernel.name} kernels: logits differ from dense by {difference:.3g}, over the "
                                 f"tolerance {tolerance * scale:.3g} ({tolerance:g} x the largest logit {scale:.3g})")
        top = expected.topk(min(2, expected.shape[1]), dim=1).values
        gap = top[:, 0] - top[:, -1]
        flipped = got.argmax(1) != expected.argmax(1)
        real = int((flipped & (gap > 2 * tolerance * scale)).sum())
        if real:
            raise KernelMismatch(f"on {kernel.name} kernels: top-1 class differs from dense on {real} test images "
                                 f"whose two highest logits are more than {2 * tolerance * scale:.3g} apart")
        worst, worst_relative = max(worst, difference), max(worst_relative, difference / scale)
        ties += int(flipped.sum())
        count += labels.numel()
        right += int((got.argmax(1) == labels).sum())
        dense_right += int((expected.argmax(1) == labels).sum())
    return {"device": device.type, "dtype": str(dtype).removeprefix("torch."), "layers": names, "images": count,
            "accuracy": 100.0 * right / max(count, 1), "dense_accuracy": 100.0 * dense_right / max(count, 1),
            "max_logit_difference": worst, "max_relative_difference": worst_relative, "tolerance": tolerance,
            "near_ties": ties}


@torch.no_grad()
def measure(model: nn.Module, kernel: Kernel, batches: dict[int, torch.Tensor], devices: list[torch.device],
            loader, repeats: int, warmup: int) -> dict:
    """The kernel's record for `model`: {"skipped": why} when it runs on none of `devices`; else
    {"ineligible": {layer: why}} and, when it takes any layer, "latency": {"devices": {device: {batch size:
    choice and times}}, "check": check(...)}. `batches` are float32 images on any device; `loader` the test
    set, checked on the first device the kernel runs on."""
    usable = [device for device in devices if kernel.device_problem(device) is None]
    if not usable:
        return {"skipped": kernel.device_problem(devices[0])}
    by_device: dict[str, dict] = {}
    ever: set[str] = set()
    for device in usable:
        dense = _on(model, device, kernel.dtype)
        taken, ineligible = layers(dense, kernel)
        if not taken:
            return {"ineligible": ineligible}
        per_size = {}
        for size, images in batches.items():
            batch = images.to(device, kernel.dtype or images.dtype)
            per_size[str(size)] = _batch_record(dense, kernel, taken, batch, repeats, warmup, _synchronize(device))
            ever |= {name for name, row in per_size[str(size)]["layers"].items() if row["kernel"] == kernel.name}
        by_device[device.type] = per_size
    chosen = [name for name in taken if name in ever]  # in model order
    checked = check(model, kernel, chosen, loader, usable[0]) if chosen else {"layers": []}
    return {"ineligible": ineligible, "latency": {"devices": by_device, "check": checked}}
