"""The compress stage end to end on a small synthetic slice: reproduce runs it, test measures the
model decoded from compressed.bin, the report shows the Deep Compression tables; resumes, skips,
and refuses a damaged, stale or foreign file in one line."""

from __future__ import annotations

import json

import pytest
import torch

from prunelab import checkpoints, config, paths
from prunelab import train as train_module
from prunelab.atomic import load_json, load_torch
from prunelab.cli import run
from prunelab.families.compression.container import decode
from prunelab.families.compression.layout import expected_tensors
from prunelab.stages import compress, get_dataset, prune, train

COMPRESS = {"quantizer": "kmeans", "fc_bits": 4, "fc_index_bits": 3, "finetune": {"epochs": 1, "lr": 0.001}}


@pytest.fixture
def compressed_run(tiny_config):
    """A tiny config with [compress], trained, pruned and compressed."""
    path = tiny_config(compress=COMPRESS)
    exp = config.load(path)
    get_dataset(exp)
    train(exp)
    prune(exp)
    compress(exp)
    return path, exp


def test_reproduce_runs_compress_and_test_measures_the_decoded_file(tiny_config, capsys):
    path = tiny_config(compress=COMPRESS)
    assert run("reproduce", [str(path)]) == 0
    exp = config.load(path)
    recorded = load_json(paths.compress_log(exp))
    assert recorded["file_bytes"] == paths.compressed(exp).stat().st_size == recorded["sizes"]["total_bytes"]
    metrics = json.loads(paths.metrics(exp).read_text())
    entry = metrics["compressed"]
    assert entry["file_bytes"] == recorded["file_bytes"]
    assert entry["storage_compression"] == pytest.approx(recorded["original_bytes"] / recorded["file_bytes"])
    assert metrics["inputs"]["compressed"] == recorded["file_sha256"]
    # Every weight of the decoded model takes one of at most 2**4 values per layer, pruned ones stay zero.
    model = checkpoints.build_for(exp)
    model.load_state_dict(decode(paths.compressed(exp), exp.stage_hash("compress"), expected_tensors(model)))
    masks = load_torch(paths.pruned(exp))["masks"]
    for name, weight in model.state_dict().items():
        if name.endswith("weight"):
            assert len(torch.unique(weight[weight != 0])) <= 2**4
        if name in masks:
            assert (weight[~masks[name]] == 0).all()
    report = paths.report(exp).read_text()
    for heading in ("## Deep Compression: compressed.bin", "### Per layer", "### Where the bytes go",
                    "### Size after each pass (MASE's three steps)"):
        assert heading in report
    assert "| compressed " in report  # its row in the summary
    capsys.readouterr()
    assert run("reproduce", [str(path)]) == 0
    assert capsys.readouterr().out.count("is up to date") == 5  # train, prune, compress, test, report inputs


def test_compress_is_deterministic_and_skips_when_current(compressed_run, capsys):
    path, exp = compressed_run
    first = paths.compressed(exp).read_bytes()
    capsys.readouterr()
    compress(exp)
    assert "up to date; skipping compress" in capsys.readouterr().out
    compress(exp, force=True)
    assert paths.compressed(exp).read_bytes() == first


def test_damaged_file_is_refused_by_test_in_one_line(compressed_run, capsys):
    path, exp = compressed_run
    blob = bytearray(paths.compressed(exp).read_bytes())
    blob[len(blob) // 2] ^= 0x10
    paths.compressed(exp).write_bytes(bytes(blob))
    assert run("test", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "compressed.bin" in err and "compress.py" in err


def test_compress_needs_a_pruned_model_and_a_compress_table(tiny_config, capsys):
    path = tiny_config(compress=COMPRESS)
    assert run("compress", [str(path)]) == 2
    assert "pruned.pt: not found; run `python tasks/prune.py" in capsys.readouterr().err
    plain = tiny_config()
    assert run("compress", [str(plain)]) == 2
    assert "compress: section missing; add a [compress] table" in capsys.readouterr().err


def test_a_changed_compress_table_makes_the_file_stale(compressed_run, capsys):
    path, _ = compressed_run
    assert run("test", [str(path), "--set", "compress.fc_bits=3"]) == 2
    err = capsys.readouterr().err
    assert "compress.json: made from a different config" in err and "compress.py" in err


def test_fixed_point_compress_puts_every_weight_on_the_grid(tiny_config):
    path = tiny_config(compress={"quantizer": "fixed", "total_bits": 8, "frac_bits": 6,
                                 "finetune": {"epochs": 1, "lr": 0.001}})
    exp = config.load(path)
    get_dataset(exp)
    train(exp)
    prune(exp)
    compress(exp)
    model = checkpoints.build_for(exp)
    model.load_state_dict(decode(paths.compressed(exp), exp.stage_hash("compress"), expected_tensors(model)))
    for name, weight in model.state_dict().items():
        if name.endswith("weight"):
            scaled = weight * 2**6
            assert torch.equal(scaled, scaled.round()) and scaled.abs().max() <= 128


def test_compress_config_errors_name_the_key(tiny_config, capsys):
    path = tiny_config(compress={"frac_bits": 8, "total_bits": 8})
    assert run("compress", [str(path)]) == 2
    err = capsys.readouterr().err
    assert "compress" in err and "frac_bits" in err


def test_mase_passes_on_resnet18_colored_slice(tiny_config):
    """MASE's pipeline end to end on ResNet18 and colored MNIST (a 64-image slice): 20% of the weights
    and 10% of the input channels pruned, 8-bit fixed point with 4 fractional bits, fine-tuned, written,
    decoded. BatchNorm statistics and the input masks travel through the file as raw tensors."""
    path = tiny_config(
        data={"dataset": "colored-mnist", "train_subset": 64, "test_subset": 64, "batch_size": 32,
              "test_batch_size": 64},
        model={"arch": "resnet18"},
        train={"epochs": 1, "lr": 0.01},
        prune={"family": "mase", "method": "l1-norm", "sparsity": 0.2, "prune_classifier": True,
               "activation_sparsity": 0.1, "calibration_batches": 1, "iterations": 1, "finetune": {"epochs": 0}},
        compress={"quantizer": "fixed", "total_bits": 8, "frac_bits": 4, "conv_index_bits": 2, "fc_index_bits": 2,
                  "finetune": {"epochs": 1, "lr": 0.001}},
        test={"latency_batch_sizes": [8], "latency_repeats": 1, "latency_warmup": 0},
    )
    assert run("reproduce", [str(path)]) == 0
    exp = config.load(path)
    pruned = load_torch(paths.pruned(exp))
    decoded = checkpoints.build_model(exp, pruned, paths.pruned(exp))
    decoded.load_state_dict(decode(paths.compressed(exp), exp.stage_hash("compress"), expected_tensors(decoded)))
    state = decoded.state_dict()
    masks = {name: tensor for name, tensor in state.items() if name.endswith("input_mask")}
    assert masks and all(torch.equal(mask, pruned["model"][name]) for name, mask in masks.items())
    for name, mask in pruned["masks"].items():
        assert (state[name][~mask] == 0).all()
        scaled = state[name] * 16
        assert torch.equal(scaled, scaled.round())
    metrics = json.loads(paths.metrics(exp).read_text())
    assert metrics["compressed"]["effective_flops"] < 0.9 * metrics["dense"]["flops"]
    assert metrics["compressed"]["storage_compression"] > 4  # 8-bit codes, 80% kept, 2-bit indices


def test_interrupted_compress_resumes_to_the_same_file(tiny_config, monkeypatch):
    path = tiny_config(compress={**COMPRESS, "finetune": {"epochs": 2, "lr": 0.001}})
    exp = config.load(path)
    get_dataset(exp)
    train(exp)
    prune(exp)
    compress(exp)
    reference = paths.compressed(exp).read_bytes()
    paths.compressed(exp).unlink()
    paths.compress_log(exp).unlink()
    real_evaluate = train_module.evaluate
    calls = {"n": 0}

    def evaluate_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second fine-tuning epoch has trained but is not checkpointed
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", evaluate_then_die)
    with pytest.raises(KeyboardInterrupt):
        compress(exp)
    assert not paths.compressed(exp).exists() and paths.compress_state(exp).is_file()
    monkeypatch.setattr(train_module, "evaluate", real_evaluate)
    compress(exp)
    assert paths.compressed(exp).read_bytes() == reference
    assert not paths.compress_state(exp).exists()
