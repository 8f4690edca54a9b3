"""test: accuracy, loss and test time of the dense and the pruned model -> metrics.json."""

from __future__ import annotations

import torch

from .. import metrics as counts
from .. import paths
from ..atomic import load_json, write_json
from ..config import Experiment
from ..data import DATASETS, load_splits, make_loaders
from ..device import resolve, seed_everything
from ..evaluate import evaluate, latency
from ..log import console
from ..models import build_for
from . import checkpoints


def _stage_inputs(exp: Experiment) -> dict[str, tuple]:
    """Which checkpoints to measure: dense always, pruned when the config has [prune]."""
    inputs = {"dense": (paths.dense(exp), exp.stage_hash("train"))}
    if exp.prune is not None:
        inputs["pruned"] = (paths.pruned(exp), exp.stage_hash("prune"))
    return inputs


def test(exp: Experiment, force: bool = False) -> None:
    inputs = _stage_inputs(exp)
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
    timing_batch = next(iter(test_loader))[0][: exp.test.latency_batch_size]
    if timing_batch.shape[0] < exp.test.latency_batch_size:  # a tiny test subset: repeat images
        repeats = -(-exp.test.latency_batch_size // timing_batch.shape[0])
        timing_batch = timing_batch.repeat(repeats, 1, 1, 1)[: exp.test.latency_batch_size]
    results = {"config_hashes": wanted_hashes, "device": str(device), "torch_threads": torch.get_num_threads()}
    for key, checkpoint in loaded.items():
        model = build_for(exp).to(device)
        checkpoints.load_into(model, checkpoint, inputs[key][0])
        scores = evaluate(model, test_loader)
        timing = latency(model, timing_batch, exp.test.latency_repeats, exp.test.latency_warmup)
        summary = counts.summarize(model, shape)
        summary.pop("layers")
        results[key] = {**scores, "latency": timing, **summary}
        console.print(
            f"{key}: top-1 {scores['accuracy']:.2f}%, loss {scores['loss']:.4f}, "
            f"{timing['ms_per_batch']:.2f} ms per batch of {timing['batch_size']} ({timing['images_per_s']:.0f} images/s), "
            f"compression {summary['compression']:.2f}x"
        )
    write_json(out, results)
    console.print(f"[green]{out}[/] written")
