"""The at-init family's second benchmark, sweep scaling: cells per hour of one small at-init
grid at --jobs 1 and --jobs N.

The grid (8 cells: random masks at 4 compressions x 2 seeds, LeNet-5 fine-tuned for 2 epochs on
20,000 real Fashion-MNIST images, 1 torch thread each) runs twice into fresh temporary results
roots, serially and in N worker processes; the figure is cells / wall hour of each, and their ratio.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ... import config
from ...stages.sweep import sweep
from ...stages.sweep_jobs import usable_cpus

GRID = """
name = "bench_sweep_scaling"
seed = 0
threads = 1
results_root = {root!r}
[data]
dataset = "fashion-mnist"
root = {data!r}
train_subset = {images}
test_subset = 1000
[model]
arch = "lenet5"
[prune]
method = "random"
start = "init"
scope = "global"
compression = 2
iterations = 1
[prune.finetune]
epochs = {epochs}
lr = 0.05
[test]
latency_batch_sizes = [1]
latency_repeats = 1
latency_warmup = 1
[sweep]
kind = "at_init"
stages = ["prune", "test"]
variants = [{{ "prune.compression" = 2 }}, {{ "prune.compression" = 5 }}, {{ "prune.compression" = 10 }},
            {{ "prune.compression" = 20 }}]
[sweep.grid]
seed = [0, 1]
"""
CELLS = 8


def sweep_scaling(jobs: int | None = None, data_root: str = "dataset", images: int = 20_000,
                  epochs: int = 2) -> list[dict]:
    """One row: cells per hour at --jobs 1 and --jobs `jobs` (default: the CPUs this process may use)."""
    jobs = jobs or max(2, usable_cpus())
    seconds, threads = {}, torch.get_num_threads()  # the sweep sets the grid's thread count: restored after
    for count in (1, jobs):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "grid.toml"
            path.write_text(GRID.format(root=str(Path(folder) / "runs"), data=str(Path(data_root).resolve()),
                                        images=images, epochs=epochs))
            exp = config.load(str(path))
            start = time.perf_counter()
            try:
                sweep(exp, jobs=count)
            finally:
                torch.set_num_threads(threads)
            seconds[count] = time.perf_counter() - start
    return [{
        "grid": f"{CELLS} cells: LeNet-5, {images:,} images, {epochs} epochs, 1 thread each",
        "--jobs 1 s": f"{seconds[1]:.1f}", f"--jobs {jobs} s": f"{seconds[jobs]:.1f}",
        "--jobs 1 cells/hour": f"{CELLS * 3600 / seconds[1]:,.0f}",
        f"--jobs {jobs} cells/hour": f"{CELLS * 3600 / seconds[jobs]:,.0f}",
        "ratio": f"{seconds[1] / seconds[jobs]:.2f}x",
    }]
