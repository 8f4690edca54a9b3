"""bench's "Sparse kernels" section (`bench --only sparse_kernels`): pruned models run with the kernels
`test` measures (prunelab/kernels/), each against the same model stored dense in the same run.

LeNet-300-100 at 12x and 60x (every layer, the classifier too, as configs/lenet300_100*.toml prune) and
VGG16 at 10x on 32x32 inputs (every conv; the classifier stays dense, the [prune] default), random masks,
batch 1 and 128 on the CPU: dense vs csr (the per-layer choice of kernels/measure.py) vs the model exported
with torch.export (prunelab/exporting.py, the export task's form). With CUDA, a second section: 2:4
semi-structured fp16 against dense fp16, the same models with 2:4 masks plus an MLP whose shapes the
kernel takes. Short: REPEATS timed pairs per figure, outputs checked on random images (test: the test set).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .family import BenchSection

try:  # the export task's code (exporting.py): the exported rows use it where it is present
    from . import exporting
except ImportError:  # pragma: no cover - a version without it
    exporting = None
from .kernels.catalog import CSR, KERNELS, SEMI_STRUCTURED, layers
from .kernels.measure import measure, paired_ms
from .models import build
from .pruning.pattern import pattern_masks
from .report.markdown import plural

SIZES = (1, 128)
# Timed pairs per figure: many for the LeNets (a batch takes under 2 ms, and the median of many skips a
# shared machine's preemptions), few for VGG16 (about 1 s per batch of 128 on 1 thread), so that the
# section stays under a minute of CPU time. One warm-up call each.
REPEATS = {"lenet300_100": 20, "vgg16": 3}
WARMUP = 1
CHECK_IMAGES = 64  # random images the kernels' outputs are checked on (test checks the real test set)


def _prunable(model: nn.Module, classifier: bool) -> list[nn.Module]:
    found = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return found if classifier else found[:-1]


@torch.no_grad()
def random_masks(model: nn.Module, density: float, classifier: bool, seed: int = 0) -> nn.Module:
    """Each prunable weight kept with probability `density` (a fixed seed), the others exactly 0."""
    generator = torch.Generator().manual_seed(seed)
    for module in _prunable(model, classifier):
        module.weight.mul_(torch.rand(module.weight.shape, generator=generator) < density)
    return model.eval()


@torch.no_grad()
def two_four_masks(model: nn.Module, classifier: bool) -> nn.Module:
    """The 2 largest |w| of every 4 consecutive inputs kept (pruning/pattern.py's layout)."""
    for module in _prunable(model, classifier):
        weight = module.weight
        mask = pattern_masks({"w": weight.abs()}, {"w": torch.ones_like(weight, dtype=torch.bool)}, 2, 4)["w"]
        weight.mul_(mask)
    return model.eval()


def exported(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module | None, str]:
    """The model exported as the export task exports it (exporting.export_model: the csr form where torch
    can export it, else the dense weights) and loaded back as a user loads model.pt2, with which form and
    batch it has; None and why where this version has no export code."""
    if exporting is None or not hasattr(exporting, "export_model"):
        return None, "no export code in this version"
    made = exporting.export_model(model, example, "bench model")
    return exporting.load(made.data), f"{made.kernels} weights, {made.traced.batch} batch"


def _row(model: str, kept: str, device: str, size: int, kernel: str, dense_ms: float, ms: float, on: str) -> dict:
    return {"model": model, "weights kept": kept, "device": device, "batch": size, "kernel": kernel,
            "dense ms": f"{dense_ms:.3f}", "kernel ms": f"{ms:.3f}", "speedup vs dense": f"{dense_ms / ms:.2f}x",
            "layers on the kernel (exported: its form)": on}


def _random_loader(shape: tuple[int, ...], dtype=torch.float32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(CHECK_IMAGES // 2, *shape, generator=generator, dtype=dtype),
             torch.randint(0, 10, (CHECK_IMAGES // 2,), generator=generator)) for _ in range(2)]


def kernel_rows(label: str, kept: str, model: nn.Module, shape: tuple[int, ...], kernel: str,
                device: torch.device, repeats: int) -> list[dict]:
    """One row per batch size: the model on `kernel` (layers chosen by timing) against dense."""
    batches = {size: torch.randn(size, *shape, generator=torch.Generator().manual_seed(size)) for size in SIZES}
    record = measure(model, KERNELS[kernel], batches, [device], _random_loader(shape), repeats, WARMUP)
    if "latency" not in record:
        why = record.get("skipped") or "; ".join(f"{k}: {v}" for k, v in record["ineligible"].items())
        return [{**_row(label, kept, device.type, 0, kernel, 1, 1, f"none ({why})"), "batch": "-", "dense ms": "-",
                 "kernel ms": "-", "speedup vs dense": "-"}]
    total = len(layers(model, KERNELS[kernel])[0]) + len(record["ineligible"])
    rows = []
    for size, timing in record["latency"]["devices"][device.type].items():
        on = [name for name, row in timing["layers"].items() if row["kernel"] == kernel]
        rows.append(_row(label, kept, device.type, int(size), kernel, timing["dense_ms_per_batch"],
                         timing["ms_per_batch"], f"{len(on)} of {total}" + (f" ({', '.join(on)})" if on else "")))
    return rows


@torch.no_grad()
def exported_rows(label: str, kept: str, model: nn.Module, shape: tuple[int, ...], repeats: int) -> list[dict]:
    """One row per batch size: the exported program against the eager dense model."""
    program, how = exported(model, torch.randn(max(SIZES), *shape))
    if program is None:
        return [{**_row(label, kept, "cpu", 0, "exported", 1, 1, how), "batch": "-", "dense ms": "-",
                 "kernel ms": "-", "speedup vs dense": "-"}]
    rows = []
    for size in SIZES:
        if "static" in how and size != max(SIZES):
            continue  # a static program takes its example's batch size only
        x = torch.randn(size, *shape)
        ms = paired_ms({"dense": lambda: model(x), "kernel": lambda: program(x)}, repeats, WARMUP, lambda: None)
        rows.append(_row(label, kept, "cpu", size, "exported (model.pt2)", ms["dense"], ms["kernel"], how))
    return rows


def _models() -> list[tuple[str, str, str, float, bool, tuple[int, ...]]]:
    """(label, weights kept, arch, density, classifier pruned, image shape)."""
    return [("LeNet-300-100 at 12x", "1/12", "lenet300_100", 1 / 12, True, (1, 28, 28)),
            ("LeNet-300-100 at 60x", "1/60", "lenet300_100", 1 / 60, True, (1, 28, 28)),
            ("VGG16 at 10x", "1/10", "vgg16", 1 / 10, False, (3, 32, 32))]


def kernels_benchmark() -> list[BenchSection]:
    torch.manual_seed(0)
    threads = plural(torch.get_num_threads(), "torch thread")
    rows = []
    for label, kept, arch, density, classifier, shape in _models():
        model = random_masks(build(arch, in_channels=shape[0], image_size=shape[1]), density, classifier)
        rows += kernel_rows(label, kept, model, shape, CSR, torch.device("cpu"), REPEATS[arch])
        rows += exported_rows(label, kept, model, shape, REPEATS[arch])
    sections = [(f"Sparse kernels: pruned models on the CPU (random masks, {threads}; speedup = dense ms / kernel ms, "
                 "timed in turns in the same run; a layer stays dense where csr measured slower)", rows)]
    if torch.cuda.is_available():
        sections.append(_semi_structured_section())
    return sections


def _semi_structured_section() -> BenchSection:
    device, rows = torch.device("cuda"), []
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                        nn.Linear(4096, 10))
    vgg16 = build("vgg16", in_channels=3, image_size=32)
    for label, model, shape, classifier in (("LeNet-300-100 at 2:4", build("lenet300_100"), (1, 28, 28), True),
                                            ("VGG16 at 2:4", vgg16, (3, 32, 32), False),
                                            ("MLP 3072-4096-4096-10 at 2:4", mlp, (3, 32, 32), False)):
        rows += kernel_rows(label, "2:4", two_four_masks(model, classifier), shape, SEMI_STRUCTURED, device,
                            repeats=20)
    return (f"Sparse kernels on CUDA: 2:4 semi-structured, fp16 against dense fp16 ({torch.cuda.get_device_name()})",
            rows)
