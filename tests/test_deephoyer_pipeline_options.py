"""Options that follow DeepHoyer's original MNIST pipeline (yanghr/DeepHoyer, mnist/*/): raw [0, 1]
pixels (`data.normalize = false`), its threshold convention (numpy's std over n, |w| < t dropped),
and flushing subnormal floats on the CPU (`flush_denormal`), which its long regularized runs need."""

from __future__ import annotations

import torch
import torch.nn as nn

from conftest import experiment, tiny_raw, to_toml
from prunelab.accel import flushed_denormals
from prunelab.data.loader import load_splits, make_loaders
from prunelab.families.deephoyer.threshold import threshold_round_masks
from prunelab.stages import get_dataset


def test_raw_pixels_without_normalization(tiny_config):
    exp = experiment(tiny_config(data={"normalize": False, "train_subset": 64, "test_subset": 64}))
    get_dataset(exp)
    splits = load_splits(exp)
    _, test = make_loaders(exp, splits, torch.device("cpu"))
    images, _ = next(iter(test))
    expected = splits.test_images[: images.shape[0]].float().div(255).reshape(images.shape)
    assert torch.allclose(images, expected) and images.min() >= 0 and images.max() <= 1
    normalized = experiment(tiny_config(data={"train_subset": 64, "test_subset": 64}))
    _, test = make_loaders(normalized, load_splits(normalized), torch.device("cpu"))
    assert next(iter(test))[0].min() < 0  # the default subtracts the mean


def _layer_with(weights: list[float]) -> nn.Linear:
    layer = nn.Linear(len(weights), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
    return layer


def test_the_deephoyer_threshold_convention(tmp_path, synthetic_source):
    """|w| = 1, 2, 3, 4: the sample std (n - 1) is 1.291, numpy's (n) 1.118. At std_ratio 2 / 1.118...
    a weight exactly at numpy's threshold stays only under DeepHoyer's comparison."""
    weights = [1.0, -2.0, 3.0, -4.0]
    numpy_std = torch.tensor(weights).std(correction=0).item()
    ratio = 2.0 / numpy_std  # numpy's threshold is exactly |w| = 2
    model = nn.Sequential(_layer_with(weights))
    masks = {"0.weight": torch.ones(1, 4, dtype=torch.bool)}
    for convention, kept in (("deephoyer", [False, True, True, True]), ("prunelab", [False, False, True, True])):
        raw = tiny_raw(tmp_path, synthetic_source)
        raw["prune"] = {"method": "threshold", "std_ratio": ratio, "scope": "layer", "iterations": 1,
                        "threshold_convention": convention}
        path = tmp_path / f"{convention}.toml"
        path.write_text(to_toml(raw))
        exp = experiment(path)
        got = threshold_round_masks(exp.prune, model, masks)["0.weight"].flatten().tolist()
        assert got == kept, convention


def test_flushing_subnormals_on_the_cpu_and_restoring_the_default():
    tiny = torch.tensor([1e-40])  # subnormal in float32 (smallest normal ~1.18e-38)
    with flushed_denormals(True, torch.device("cpu")):
        flushed = (tiny * 1.0).item()
    assert (tiny * 1.0).item() != 0.0  # the default again after the block
    if torch.set_flush_denormal(False):  # only where the CPU supports FTZ/DAZ (x86 with SSE3)
        assert flushed == 0.0
    with flushed_denormals(False, torch.device("cpu")):
        assert (tiny * 1.0).item() != 0.0


def test_the_best_fine_tuning_epoch_is_labelled_beside_the_last():
    from prunelab.families.deephoyer.report import best_epoch_note

    log = [{"phase": "fine-tune", "round": 1, "epoch": 1, "test_accuracy": 97.0},
           {"phase": "fine-tune", "round": 2, "epoch": 1, "test_accuracy": 98.3},
           {"phase": "fine-tune", "round": 2, "epoch": 2, "test_accuracy": 98.1}]
    note = best_epoch_note({"epoch_log": log})
    assert "Last fine-tuning epoch (2 of 2): top-1 98.10%" in note and "98.30% (epoch 1)" in note
    assert best_epoch_note({"epoch_log": []}) is None and best_epoch_note(None) is None
