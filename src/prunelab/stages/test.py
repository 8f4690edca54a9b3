"""test: accuracy, loss and test time of the dense and the pruned model -> metrics.json."""

from __future__ import annotations

import torch

from .. import checkpoints, paths
from .. import metrics as counts
from ..atomic import load_json, write_json
from ..config import Experiment
from ..data.catalog import DATASETS
from ..data.loader import load_splits, make_loaders
from ..device import resolve, seed_everything
from ..evaluate import evaluate, latency
from ..log import console


def stage_inputs(exp: Experiment) -> dict[str, tuple]:
    """Which checkpoints to measure: dense (unless pruning starts at init), and pruned."""
    inputs = {}
    if exp.prune is None or exp.prune.start == "dense":
        inputs["dense"] = (paths.dense(exp), exp.stage_hash("train"))
    if exp.prune is not None:
        inputs["pruned"] = (paths.pruned(exp), exp.stage_hash("prune"))
    return inputs


def _timing_batches(images: torch.Tensor, sizes: list[int]) -> dict[int, torch.Tensor]:
    """Test images batched at each size (repeated when the test set is smaller)."""
    batches = {}
    for size in sizes:
        repeats = -(-size // images.shape[0])
        batches[size] = images.repeat(repeats, 1, 1, 1)[:size].contiguous()
    return batches


def measure_latency(model: torch.nn.Module, images: torch.Tensor, exp: Experiment) -> dict:
    """{device: {batch size: timing}} on the CPU, and on CUDA when present."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    results = {}
    for device in devices:
        model.to(device)
        batches = _timing_batches(images.to(device), exp.test.latency_batch_sizes)
        results[device.type] = {
            str(size): latency(model, batch, exp.test.latency_repeats, exp.test.latency_warmup)
            for size, batch in batches.items()
        }
    return results


def test(exp: Experiment, force: bool = False) -> None:
    inputs = stage_inputs(exp)
    wanted_hashes = {key: config_hash for key, (_, config_hash) in inputs.items()}
    out = paths.metrics(exp)
    if not force and out.is_file() and load_json(out).get("config_hashes") == wanted_hashes:
        console.print(f"[green]{out}[/] is up to date; skipping test (--force to redo)")
        return
    device = resolve(exp)
    seed_everything(exp.seed)
    loaded = {key: checkpoints.load_current(exp, path, config_hash) for key, (path, config_hash) in inputs.items()}
    splits = load_splits(exp)
    _, test_loader = make_loaders(exp, splits, device)
    shape = DATASETS[exp.data.dataset].image_shape
    timing_images = next(iter(make_loaders(exp, splits, torch.device("cpu"))[1]))[0]
    results = {"config_hashes": wanted_hashes, "device": str(device), "torch_threads": torch.get_num_threads()}
    for key, checkpoint in loaded.items():
        model = checkpoints.build_model(exp, checkpoint, inputs[key][0]).to(device)
        scores = evaluate(model, test_loader)
        summary = counts.summarize(model, shape)
        summary.pop("layers")
        timing = measure_latency(model, timing_images, exp)
        results[key] = {**scores, "latency": timing, **summary}
        cpu = ", ".join(f"{t['ms_per_batch']:.2f} ms at batch {b}" for b, t in timing["cpu"].items())
        console.print(
            f"{key}: top-1 {scores['accuracy']:.2f}%, loss {scores['loss']:.4f}, CPU {cpu}, "
            f"compression {summary['compression']:.2f}x, theoretical speedup {summary['theoretical_speedup']:.2f}x"
        )
    if "dense" in results and "pruned" in results:  # a pruned model may be physically smaller than the dense one
        results["pruned"].update(counts.against_dense(results["dense"], results["pruned"]))
    write_json(out, results)
    console.print(f"[green]{out}[/] written")
