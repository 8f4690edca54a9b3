"""End to end: reproduce on a small slice, resume after interruption, determinism, stale inputs."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from prunelab import config, paths
from prunelab import train as train_module
from prunelab.atomic import load_torch
from prunelab.cli import run
from prunelab.stages import get_dataset, prune, train

from conftest import REAL_FASHION


def test_reproduce_end_to_end(tiny_config, capsys):
    path = tiny_config()
    assert run("reproduce", [str(path)]) == 0
    exp = config.load(path)
    for artifact in (paths.dense(exp), paths.pruned(exp), paths.metrics(exp), paths.report(exp),
                     paths.train_log(exp), paths.prune_log(exp), paths.density_plot(exp)):
        assert artifact.is_file(), artifact
    pruned = load_torch(paths.pruned(exp))
    masks = pruned["masks"]
    assert set(masks) == {"fc1.weight", "fc2.weight"}  # classifier not pruned by default
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert kept == pytest.approx(0.1 * total, abs=1)  # layer scope: each layer rounds separately
    for name, mask in masks.items():
        assert (pruned["model"][name][~mask] == 0).all()
    metrics = json.loads(paths.metrics(exp).read_text())
    assert metrics["dense"]["accuracy"] > 50  # synthetic classes are easy
    assert metrics["pruned"]["compression"] > 1
    report = paths.report(exp).read_text()
    for heading in ("## Summary", "## Parameters per layer", "## Size per layer", "## FLOPs per layer", "## Pruning rounds"):
        assert heading in report
    rows = list(csv.DictReader(paths.prune_log(exp).open()))
    assert [int(r["round"]) for r in rows] == [1, 2]
    capsys.readouterr()
    assert run("reproduce", [str(path)]) == 0  # a second run skips every finished stage
    out = capsys.readouterr().out
    assert out.count("is up to date") == 4


def test_interrupted_training_resumes_to_identical_weights(tiny_config, monkeypatch):
    path = tiny_config(train={"epochs": 3})
    exp = config.load(path)
    get_dataset(exp)
    train(exp)
    reference = load_torch(paths.dense(exp))["model"]

    other = config.load(path, [f"results_root={json.dumps(str(path.parent / 'results2'))}"])
    real_evaluate = train_module.evaluate
    calls = {"n": 0}

    def evaluate_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # after epoch 2 has been evaluated but before it is checkpointed
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", evaluate_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(other)
    assert not paths.dense(other).exists()
    assert load_torch(paths.train_state(other))["epoch"] == 1
    monkeypatch.setattr(train_module, "evaluate", real_evaluate)
    train(other)
    resumed = load_torch(paths.dense(other))["model"]
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_stale_dense_model_is_refused(tiny_config, capsys):
    path = tiny_config(train={"epochs": 1})
    exp = config.load(path)
    get_dataset(exp)
    train(exp)
    assert run("prune", [str(path), "--set", "train.lr=0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "dense.pt: made from a different config" in err
    # The hint repeats the user's override, so following it literally makes the right dense model.
    assert err.endswith(f"run `python tasks/train.py {path} --set train.lr=0.2`")


def test_prune_without_dense_names_the_command(tiny_config, capsys):
    path = tiny_config()
    assert run("prune", [str(path)]) == 2
    assert f"dense.pt: not found; run `python tasks/train.py {path}` first" in capsys.readouterr().err


def test_unknown_layer_in_layer_sparsity(tiny_config, capsys):
    path = tiny_config(train={"epochs": 1}, prune={"layer_sparsity": {"fc9": 0.5}})
    exp = config.load(path)
    get_dataset(exp)
    train(exp)
    assert run("prune", [str(path)]) == 2
    err = capsys.readouterr().err
    assert "prune.layer_sparsity.fc9: no prunable layer" in err and "fc1, fc2" in err


def test_corrupt_checkpoint_is_one_line(tiny_config, capsys):
    path = tiny_config()
    exp = config.load(path)
    paths.dense(exp).parent.mkdir(parents=True)
    paths.dense(exp).write_bytes(b"not a checkpoint")
    get_dataset(exp)
    assert run("prune", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable prunelab checkpoint" in err


def test_same_config_and_seed_give_identical_models(tiny_config):
    path = tiny_config(train={"epochs": 1}, prune={"iterations": 1})
    a = config.load(path)
    b = config.load(path, [f"results_root={json.dumps(str(path.parent / 'again'))}"])
    for exp in (a, b):
        get_dataset(exp)
        train(exp)
        prune(exp)
    first, second = load_torch(paths.pruned(a))["model"], load_torch(paths.pruned(b))["model"]
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="needs apt-get install dataset-fashion-mnist")
@pytest.mark.parametrize("arch", ["lenet300_100", "lenet5"])
def test_real_fashion_slice_end_to_end(tmp_path, arch):
    raw = {
        "name": f"{arch}_slice", "device": "cpu", "results_root": str(tmp_path / "results"),
        "data": {"dataset": "fashion-mnist", "root": str(tmp_path / "dataset"), "train_subset": 10000},
        "model": {"arch": arch},
        "train": {"epochs": 3, "lr": 0.05},
        "prune": {"compression": 5, "scope": "global", "iterations": 2, "prune_classifier": True,
                  "finetune": {"epochs": 1, "lr": 0.005}},
        "test": {"latency_repeats": 3},
    }
    path = tmp_path / "slice.toml"
    path.write_text(__import__("conftest").to_toml(raw))
    assert run("reproduce", [str(path)]) == 0
    exp = config.load(path)
    metrics = json.loads(paths.metrics(exp).read_text())
    assert metrics["dense"]["accuracy"] > 75
    assert metrics["pruned"]["compression"] == pytest.approx(5, rel=1e-3)
    assert metrics["pruned"]["accuracy"] > metrics["dense"]["accuracy"] - 5
