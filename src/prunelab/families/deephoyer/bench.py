"""Benchmark: regularized epochs with and without flushing subnormal floats (`flush_denormal`).

Two measurements, each run with the CPU's flush-to-zero mode off and then on, in one process at
the current torch thread count, so that the ratio is what the option changes:

1. The arithmetic itself: one elementwise multiply-add over 2^20 float32 values that are all
   subnormal (1e-39), against the same over normal values (1e-3). This is the cost the option
   avoids where subnormals occur.
2. The regularized epoch of DeepHoyer's MNIST pipeline as configs/deephoyer_mlp_original_v.toml
   runs it: LeNet-300-100 on raw [0, 1] pixels (real MNIST, batch 100), Adam 1e-3, the penalty on
   every parameter, for each regularizer of the paper's frontier, from the same seeded start. Per
   way: seconds per epoch, the subnormal values left in the weights and Adam's state after the
   epochs (counted with flushing off), and how far the two ways' final weights and test
   accuracies differ (the option's effect on the numbers).
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from ... import config
from ...accel import flushed_denormals
from ...data.loader import load_splits, make_loaders
from ...device import seed_everything
from ...evaluate import evaluate
from ...family import BenchSection
from ...log import progress_bar
from ...models import build
from ...stages.get_dataset import get_dataset
from .regularizers import build_regularizer
from .settings import RegularizerConfig

PIPELINE_CONFIG = "configs/deephoyer_mlp_original_v.toml"
# (regularizer, decay): the original pipeline's points (configs/deephoyer_mlp_original_v.toml).
PENALTIES = (("l1", 1e-4), ("hoyer_square", 3e-5))
EPOCHS = 2  # per way and penalty: 2 x 600 steps of batch 100 on the 60k training images
SUBNORMAL, NORMAL = 1e-39, 1e-3  # float32's smallest normal value is 1.18e-38
ELEMENTS = 2 ** 20
REPEATS = 20
TRIALS = 5
CPU = torch.device("cpu")


def _subnormals(tensors) -> int:
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((t != 0) & (t.abs() < tiny)).sum()) for t in tensors)


def _multiply_add_ms(value: float, flush: bool, elements: int, repeats: int) -> float:
    with flushed_denormals(flush, CPU):
        x = torch.full((elements,), value)
        y = torch.full((elements,), 0.5)
        torch.addcmul(x, x, y)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            torch.addcmul(x, x, y)
        return (time.perf_counter() - start) / repeats * 1e3


def arithmetic_rows(elements: int = ELEMENTS, repeats: int = REPEATS, trials: int = TRIALS) -> list[dict]:
    """ms per multiply-add over `elements` values, subnormal and normal, flushing off and on: the
    median of `trials` alternating off/on timings (a shared CPU's drift falls on both ways)."""
    rows = []
    for label, value in (("subnormal (1e-39)", SUBNORMAL), ("normal (1e-3)", NORMAL)):
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(trials):
            for flush in (False, True):
                times[flush].append(_multiply_add_ms(value, flush, elements, repeats))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        rows.append({"values": label, "ms, flushing off": f"{off:.3f}", "ms, flushing on": f"{on:.3f}",
                     "off / on": f"{off / on:.2f}x"})
    return rows


def _regularized_epochs(kind: str, decay: float, flush: bool, train_loader, progress, task):
    """(seconds per epoch, model, optimizer) after EPOCHS regularized epochs from seed 0's start."""
    seed_everything(0)
    model = build("lenet300_100")
    names = [name for name, _ in model.named_parameters()]  # coverage "all_parameters", as element.py
    penalty = build_regularizer(RegularizerConfig(kind=kind, decay=decay), model, names)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with flushed_denormals(flush, CPU):  # the switch `[train] flush_denormal` flips in fit
        start = time.perf_counter()
        for _ in range(EPOCHS):
            model.train()
            for images, labels in train_loader:
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(images), labels) + penalty(model)
                loss.backward()
                optimizer.step()
                progress.advance(task)
        seconds = (time.perf_counter() - start) / EPOCHS
    return seconds, model, optimizer


def pipeline_rows() -> list[dict]:
    exp = config.load(PIPELINE_CONFIG)
    get_dataset(exp)
    splits = load_splits(exp)
    rows = []
    with progress_bar() as progress:
        train_loader, test_loader = make_loaders(exp, splits, CPU)
        task = progress.add_task("regularized epochs", total=len(PENALTIES) * 2 * EPOCHS * len(train_loader),
                                 status="")
        for kind, decay in PENALTIES:
            runs = {}
            for flush in (False, True):
                train_loader, test_loader = make_loaders(exp, splits, CPU)  # the same batches both ways
                runs[flush] = _regularized_epochs(kind, decay, flush, train_loader, progress, task)
            (off_s, off_model, off_opt), (on_s, on_model, _) = runs[False], runs[True]
            state = [t for s in off_opt.state.values() for t in s.values() if torch.is_tensor(t) and t.numel() > 1]
            difference = max(float((a - b).abs().max()) for a, b in zip(off_model.state_dict().values(),
                                                                         on_model.state_dict().values()))
            accuracy = {flush: evaluate(model, test_loader)["accuracy"] for flush, (_, model, _) in runs.items()}
            rows.append({
                "penalty": f"{kind} {decay:g}", "s/epoch, flushing off": f"{off_s:.2f}",
                "s/epoch, flushing on": f"{on_s:.2f}", "off / on": f"{off_s / on_s:.2f}x",
                "subnormal weights (off)": _subnormals(off_model.parameters()),
                "subnormal Adam state (off)": _subnormals(state),
                "max weight difference": f"{difference:.1e}",
                "top-1 off / on (%)": f"{accuracy[False]:.2f} / {accuracy[True]:.2f}",
            })
    return rows


def benchmark() -> list[BenchSection]:
    threads = torch.get_num_threads()
    return [
        (f"Subnormal floats: one multiply-add over {ELEMENTS:,} float32 values, flushing to zero off and on "
         f"(median of {TRIALS} alternating trials of {REPEATS} repeats, {threads} torch thread(s))", arithmetic_rows()),
        (f"Subnormal floats: regularized epochs of DeepHoyer's MNIST pipeline ({PIPELINE_CONFIG}: LeNet-300-100, "
         f"raw pixels, Adam 1e-3, batch 100, every parameter penalized; {EPOCHS} epochs per way from the same "
         f"seeded start, {threads} torch thread(s))", pipeline_rows()),
    ]
