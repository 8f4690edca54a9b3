"""bench: speed figures as ratios against baselines measured in the same run -> results/benchmarks.md.

1. One training epoch on 60k real images for the LeNets: our in-memory loader vs
   a bare in-memory loop (pre-normalized float tensor, sliced) and vs a plain
   per-sample torch.utils.data.DataLoader; plus the matmul-bound floor of the
   epoch (model FLOPs x 3 for forward + backward / measured matmul FLOP/s).
2. The LeNet-5 epoch of prunelab's `fit` at 1 and 2 threads, standard vs channels_last order
   (the CPU target: <= 1.6 s on 2 cores).
3. The wall time of `reproduce` for LeNet-5 (into a temporary results root), and a shortened
   3-seed `reproduce` with its seeds one after the other and in parallel (bench_seeds.py).
4. With CUDA: the GPU section (bench_gpu.py).
5. Sparse kernels: pruned models with torch's CSR kernels (and 2:4 on CUDA) against dense, and exported
   (bench_kernels.py; alone: `bench --only sparse_kernels`).
6. Every family's own benchmark sections (family.Family.benchmark), in registration order (the
   at-init family's include sweep scaling: cells per hour at --jobs 1 and N).
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import config, paths
from .provenance import cpu_name
from .atomic import write_text
from .bench_gpu import fit_epoch, gpu_section
from .bench_kernels import kernels_benchmark
from .bench_seeds import seeds_benchmark
from .data.loader import TensorLoader, load_splits
from .data.spec import spec_for
from .family import FAMILIES, BenchSection
from .log import console, progress_bar
from .metrics import flops_by_module
from .models import build
from .report.markdown import plural, table
from .stages import STAGES

BENCH_CONFIG = "configs/lenet5_fashion.toml"


def _epoch(model, batches, optimizer) -> float:
    """Seconds for one pass of SGD steps over `batches` (an iterable of (x, y))."""
    start = time.perf_counter()
    for images, labels in batches:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return time.perf_counter() - start


class _PerSample(torch.utils.data.Dataset):
    """The per-sample baselines: one image converted and normalized per __getitem__ call.

    pil=True is what torchvision's MNIST + ToTensor + Normalize do per image (a PIL image,
    then to a float tensor in [0, 1], then normalized), written without torchvision;
    pil=False skips PIL and converts the uint8 tensor directly (the cheapest per-sample path).
    """

    def __init__(self, images, labels, mean, std, pil: bool):
        self.images, self.labels, self.mean, self.std, self.pil = images, labels, mean, std, pil

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        if self.pil:
            picture = Image.fromarray(self.images[index, 0].numpy(), mode="L")
            image = torch.from_numpy(np.array(picture, dtype=np.uint8)).unsqueeze(0).float().div(255)
        else:
            image = self.images[index].float().div(255)
        return (image - self.mean) / self.std, int(self.labels[index])


def _bare_batches(images_float, labels, batch_size, seed):
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(labels), batch_size):
        index = order[start : start + batch_size]
        yield images_float[index], labels[index]


def matmul_flops_per_s(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def loader_benchmark(exp, archs=("lenet300_100", "lenet5"), batch_size: int = 128) -> list[dict]:
    spec = spec_for(exp)
    splits = load_splits(exp)
    images, labels = splits.train_images, splits.train_labels
    mean, std = spec.mean[0], spec.std[0]
    images_float = (images.float() / 255 - mean) / std
    peak = matmul_flops_per_s()
    rows = []
    with progress_bar() as progress:
        variants = ("ours", "bare", "per-sample tensor", "per-sample PIL")
        task = progress.add_task("loader benchmark", total=len(variants) * len(archs), status="")
        for arch in archs:
            times = {}
            for variant in variants:
                progress.update(task, status=f"{arch}: {variant}")
                torch.manual_seed(0)
                model = build(arch)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                if variant == "ours":
                    batches = TensorLoader(images, labels, batch_size, spec.mean, spec.std, shuffle=True)
                elif variant == "bare":
                    batches = _bare_batches(images_float, labels, batch_size, 0)
                else:
                    dataset = _PerSample(images, labels, mean, std, pil=variant.endswith("PIL"))
                    batches = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
                times[variant] = _epoch(model, batches, optimizer)
                progress.advance(task)
            _, macs = flops_by_module(build(arch), spec.image_shape)
            floor = 2 * macs * 3 * len(labels) / peak  # 2 FLOPs per MAC; backward ~ 2x forward
            rows.append({
                "model": arch, "images": len(labels), "ours_s": times["ours"], "bare_s": times["bare"],
                "per_sample_tensor_s": times["per-sample tensor"], "per_sample_pil_s": times["per-sample PIL"],
                "floor_s": floor, "ours_vs_bare": times["ours"] / times["bare"],
                "speedup_vs_per_sample": times["per-sample PIL"] / times["ours"],
                "speedup_vs_per_sample_tensor": times["per-sample tensor"] / times["ours"],
                "matmul_gflops": peak / 1e9,
            })
    return rows


def memory_order_benchmark(exp, arch: str = "lenet5", threads: tuple[int, ...] = (1, 2)) -> list[dict]:
    """One epoch of `fit` on the real training split per (threads, memory order); ratios within a thread count."""
    spec = spec_for(exp)
    splits = load_splits(exp)
    loader = TensorLoader(splits.train_images, splits.train_labels, 128, spec.mean, spec.std, shuffle=True)
    test = TensorLoader(splits.test_images[:1000], splits.test_labels[:1000], 1000, spec.mean, spec.std)
    before, rows = torch.get_num_threads(), []
    try:
        for count in threads:
            torch.set_num_threads(count)
            seconds = {}
            for channels_last in (False, True):
                torch.manual_seed(0)
                seconds[channels_last] = fit_epoch(build(arch), loader, test, channels_last=channels_last)
            rows.append({"model": arch, "images": len(splits.train_labels), "torch threads": count,
                         "standard order s": f"{seconds[False]:.2f}", "channels_last s": f"{seconds[True]:.2f}",
                         "standard / channels_last": f"{seconds[False] / seconds[True]:.2f}x"})
    finally:
        torch.set_num_threads(before)
    return rows


def reproduce_wall_time(config_path: str = BENCH_CONFIG) -> dict:
    """Run the whole pipeline of `config_path` into a temporary results root; seconds per stage."""
    with tempfile.TemporaryDirectory() as root:
        exp = config.load(config_path, [f"results_root={root!r}".replace("'", '"')])
        exp.threads = torch.get_num_threads()  # the benchmark's --threads, not the config's
        stages = {}
        start = time.perf_counter()
        for stage in ("get_dataset", "train", "prune", "test", "report"):
            began = time.perf_counter()
            STAGES[stage](exp)
            stages[stage] = time.perf_counter() - began
        return {"config": config_path, "total_s": time.perf_counter() - start, "stages": stages}


def _markdown(loader_rows, reproduce, family_sections: list[BenchSection]) -> str:
    """family_sections: every (title, rows) table after the reproduce one, spine's and families'."""
    lines = [
        "# Benchmarks",
        f"Machine: {platform.machine()}, {plural(torch.get_num_threads(), 'torch thread')}, torch {torch.__version__}, "
        f"Python {platform.python_version()}, CPU {cpu_name()} ({torch.backends.cpu.get_cpu_capability()})"
        + (f", GPU {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})" if torch.cuda.is_available() else
           ", no GPU") + ". "
        "Written by `pixi r bench --publish` (`python tasks/bench.py --publish`); "
        "every ratio compares runs made in the same invocation.",
        "## Training epoch on 60k real Fashion-MNIST images (batch 128, SGD)",
        "ours = prunelab's in-memory uint8 loader (per-batch normalization, seeded permutation); bare = a "
        "pre-normalized float tensor sliced by a permutation (no loader at all); per-sample = "
        "`torch.utils.data.DataLoader` (num_workers=0, default collate) over a Dataset that converts one "
        "image per call, either as torchvision's MNIST + ToTensor + Normalize do (PIL image -> float "
        "tensor -> normalize) or straight from the uint8 tensor. "
        "Floor = model FLOPs x 3 (forward + backward) x images / measured 1024x1024 matmul FLOP/s.",
        table(
            [[r["model"], f"{r['ours_s']:.2f}", f"{r['bare_s']:.2f}", f"{r['per_sample_pil_s']:.2f}",
              f"{r['per_sample_tensor_s']:.2f}", f"{r['floor_s']:.2f}", f"{r['ours_vs_bare']:.2f}x",
              f"{r['speedup_vs_per_sample']:.1f}x", f"{r['speedup_vs_per_sample_tensor']:.1f}x",
              f"{r['matmul_gflops']:.1f}"]
             for r in loader_rows],
            ["model", "ours (s)", "bare loop (s)", "per-sample PIL (s)", "per-sample tensor (s)",
             "matmul floor (s)", "ours / bare (target <= 1.2)", "per-sample PIL / ours (target >= 3)",
             "per-sample tensor / ours", "matmul GFLOP/s"],
        ),
    ]
    if reproduce is not None:
        lines += [
            f"## `reproduce` wall time: {reproduce['config']}",
            table([[stage, f"{seconds:.1f}"] for stage, seconds in reproduce["stages"].items()]
                  + [["**total**", f"{reproduce['total_s']:.1f}"]], ["stage", "seconds"]),
        ]
    for title, rows in family_sections:
        lines += [f"## {title}", table([list(r.values()) for r in rows], list(rows[0].keys()))]
    return "\n\n".join(lines) + "\n"


# Sections that `bench --only NAME` measures alone, each merged into the existing file in place of
# its earlier figures (the other sections keep theirs).
ONLY = {"seeds": lambda: seeds_benchmark(torch.get_num_threads()), "sparse_kernels": kernels_benchmark}


def only_sections() -> dict:
    """What `bench --only NAME` measures: the spine's ONLY sections and each family's benchmark by its name."""
    return {**ONLY, **{family.name: family.benchmark for family in FAMILIES.values() if family.benchmark is not None}}


def merge_sections(text: str, sections: list[BenchSection]) -> str:
    """`text` (a benchmarks.md) with each section replaced by the new one of the same title, or added."""
    parts = text.rstrip("\n").split("\n\n## ")
    for title, rows in sections:
        new = f"{title}\n\n" + table([list(r.values()) for r in rows], list(rows[0].keys()))
        key = title.split(" (", 1)[0]
        matches = [i for i, part in enumerate(parts) if i and part.split(" (", 1)[0] == key]
        if matches:
            parts[matches[0]] = new
        else:
            parts.append(new)
    return "\n\n## ".join(parts) + "\n"


def run_only(output: Path, name: str) -> str:
    """One ONLY section, merged into `output` (written fresh when there is none yet)."""
    sections = only_sections()[name]()
    text = merge_sections(output.read_text() if output.is_file() else "# Benchmarks\n", sections)
    write_text(output, text)
    console.print(text)
    return text


def run_benchmarks(output: Path, config_path: str = BENCH_CONFIG, with_reproduce: bool = True) -> str:
    """Every benchmark, written to `output` (paths.benchmarks: runs/, or results/ when published)."""
    exp = config.load(config_path)
    STAGES["get_dataset"](exp)
    loader_rows = loader_benchmark(exp)
    sections = [("LeNet-5 training epoch of `fit` on 60k real images (batch 128): memory order and threads "
                 "(target: <= 1.6 s on 2 cores)", memory_order_benchmark(exp))]
    reproduce = reproduce_wall_time(config_path) if with_reproduce else None
    if with_reproduce:
        sections += seeds_benchmark(torch.get_num_threads())
    if torch.cuda.is_available():
        sections.append(gpu_section(torch.device("cuda")))
    sections += kernels_benchmark()  # sparse kernels (bench_kernels.py)
    for family in FAMILIES.values():
        if family.benchmark is not None:
            sections += family.benchmark()
    text = _markdown(loader_rows, reproduce, sections)
    write_text(output, text)
    console.print(text)
    return text
