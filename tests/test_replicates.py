"""Seed replicates (`seeds = [...]`): one ordinary run per seed, mean ± std over them in the report."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
import torch

from prunelab import config, paths
from prunelab.cli import run
from prunelab.errors import UserError
from prunelab.replicates import replicate, replicates
from prunelab.report import replicates as over_seeds
from prunelab.report.baseline import Compared

from conftest import tiny_raw, to_toml


def _config(tmp_path, synthetic_source, **sections):
    raw = tiny_raw(tmp_path, synthetic_source, **sections)
    raw.pop("seed")
    raw["seeds"] = [0, 1]
    raw["train"]["epochs"] = 1
    raw["data"]["train_subset"] = 600
    path = tmp_path / "replicated.toml"
    path.write_text(to_toml(raw))
    return path, raw


def test_seeds_are_checked(tmp_path, synthetic_source):
    path, raw = _config(tmp_path, synthetic_source)
    raw["seed"] = 3
    with pytest.raises(UserError, match=r"seeds: give seed or seeds, not both"):
        config.parse(raw, "c.toml")
    raw.pop("seed")
    raw["seeds"] = [1, 1]
    with pytest.raises(UserError, match=r"c.toml: seeds: each seed once \(got \[1, 1\]\)"):
        config.parse(raw, "c.toml")
    raw["seeds"] = [0, -1]
    with pytest.raises(UserError, match=r"c.toml: seeds.1: .*greater than or equal to 0"):
        config.parse(raw, "c.toml")


def test_each_seed_is_the_config_with_that_seed(tmp_path, synthetic_source):
    path, _ = _config(tmp_path, synthetic_source, train={"pretrained": "runs/base/seeds/seed-{seed}/dense.pt"})
    exp = config.load(path)
    runs = replicates(exp)
    assert [r.seed for r in runs] == [0, 1] and [r.name for r in runs] == ["seed-0", "seed-1"]
    assert paths.run_dir(runs[1]) == paths.run_dir(exp) / "seeds" / "seed-1"
    assert runs[1].train.pretrained == "runs/base/seeds/seed-1/dense.pt"
    assert runs[1].path == str(path) and runs[1].seeds == []
    plain = config.load(path, ["seeds=[]", "seed=1", "train.pretrained='runs/base/seeds/seed-1/dense.pt'"])
    assert runs[1].stage_hash("prune") == plain.stage_hash("prune")  # the same artifacts as a plain run
    assert replicate(exp, 7).seed == 7


def _compared(dense: float, pruned: float, compression: float) -> tuple[Compared, list[dict]]:
    entries = {"dense": {"accuracy": dense}, "pruned": {"accuracy": pruned, "compression": compression,
                                                        "theoretical_speedup": 2 * compression}}
    return Compared(list(entries.items()), entries["dense"], ""), [{"compression": compression + 0.5}]


def test_figures_are_mean_and_sample_std():
    found = over_seeds.figures({0: _compared(98.0, 97.0, 10.0), 1: _compared(99.0, 98.5, 12.0),
                                2: _compared(97.0, 97.0, 11.0)})
    assert list(found) == ["dense_top1", "pruned_top1", "change", "compression_all", "compression_pruner", "speedup"]
    assert found["dense_top1"]["mean"] == pytest.approx(98.0) and found["dense_top1"]["std"] == pytest.approx(1.0)
    changes = [-1.0, -0.5, 0.0]
    assert found["change"]["values"] == {"0": -1.0, "1": -0.5, "2": 0.0}
    assert found["change"]["std"] == pytest.approx(statistics.stdev(changes))
    assert found["compression_pruner"]["mean"] == pytest.approx(11.5)
    assert over_seeds.mean_std("change", found["change"]) == "-0.50 ± 0.50"
    assert over_seeds.mean_std("compression_all", found["compression_all"]) == "11.00x ± 1.00"
    single = over_seeds.figures({4: _compared(98.0, 97.0, 10.0)})
    assert single["dense_top1"]["std"] is None and over_seeds.mean_std("dense_top1", single["dense_top1"]) == "98.00"


def test_reproduce_runs_every_seed_and_reports_mean_and_std(tmp_path, synthetic_source, monkeypatch, capsys):
    path, _ = _config(tmp_path, synthetic_source)
    exp = config.load(path)
    assert run("reproduce", [str(path)]) == 0
    summary = json.loads(paths.replicates_summary(exp).read_text())
    pruned = [summary["metrics"][seed]["pruned"]["accuracy"] for seed in ("0", "1")]
    assert summary["figures"]["pruned_top1"]["values"] == {"0": pruned[0], "1": pruned[1]}
    assert summary["figures"]["pruned_top1"]["mean"] == pytest.approx(sum(pruned) / 2)
    assert summary["figures"]["pruned_top1"]["std"] == pytest.approx(statistics.stdev(pruned))
    report = paths.report(exp).read_text()
    assert "(seeds 0, 1)" in report and "## Over 2 seeds" in report and "## Seed 0 in detail" in report
    dense = over_seeds.mean_std("dense_top1", summary["figures"]["dense_top1"])
    assert re.search(rf"\| ours, mean ± std over 2 seeds +\| {re.escape(dense)} ", report)
    for seed in (0, 1):
        assert (paths.replicates_dir(exp) / f"seed-{seed}" / "report.md").is_file()
    assert "(2 seeds, mean ± std)" in capsys.readouterr().out
    # Seed 1's run is the plain run of the config with seed = 1: the same dense weights.
    plain_path = tmp_path / "plain.toml"
    raw = tiny_raw(tmp_path, synthetic_source, seed=1, name="plain")
    raw["train"]["epochs"], raw["data"]["train_subset"] = 1, 600
    plain_path.write_text(to_toml(raw))
    assert run("train", [str(plain_path)]) == 0
    replica = torch.load(paths.replicates_dir(exp) / "seed-1" / "dense.pt", weights_only=True)["model"]
    alone = torch.load(paths.dense(config.load(plain_path)), weights_only=True)["model"]
    assert all(torch.equal(replica[key], alone[key]) for key in alone)
    # A second reproduce redoes nothing; publish copies the summary beside the report.
    assert run("reproduce", [str(path), "--jobs", "1"]) == 0  # serially: the stages print here, not in job.log
    assert capsys.readouterr().out.count("is up to date") >= 6  # train, prune, test of each seed
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert run("publish", [str(path)]) == 0
    published = {p.name for p in (tmp_path / "repo" / "results" / exp.name).iterdir()}
    assert {"report.md", "replicates.json", "layer_density.png"} <= published


REAL_MNIST = Path(__file__).resolve().parents[1] / "dataset" / "mnist"


@pytest.mark.skipif(not (REAL_MNIST / "manifest.json").is_file(),
                    reason="needs real MNIST in dataset/mnist: python tasks/get_dataset.py configs/lenet5.toml")
def test_real_mnist_slice_over_two_seeds(tmp_path):
    """Real MNIST (copied from the repository's verified dataset/mnist), two seeds, a small slice."""
    raw = {
        "name": "mnist_slice", "seeds": [0, 1], "device": "cpu", "results_root": str(tmp_path / "runs"),
        "data": {"dataset": "mnist", "source": str(REAL_MNIST), "root": str(tmp_path / "dataset"),
                 "train_subset": 3000, "test_subset": 2000},
        "model": {"arch": "lenet300_100"},
        "train": {"epochs": 2, "lr": 0.05},
        "prune": {"compression": 4, "scope": "global", "iterations": 2, "prune_classifier": True,
                  "finetune": {"epochs": 1, "lr": 0.01}},
        "test": {"latency_batch_sizes": [64], "latency_repeats": 2},
    }
    path = tmp_path / "mnist_slice.toml"
    path.write_text(to_toml(raw))
    assert run("reproduce", [str(path)]) == 0
    summary = json.loads(paths.replicates_summary(config.load(path)).read_text())
    assert set(summary["metrics"]) == {"0", "1"}
    for seed in ("0", "1"):
        assert summary["metrics"][seed]["dense"]["accuracy"] > 75  # 3,000 real digits, 2 epochs: about 84%
        assert summary["figures"]["compression_pruner"]["values"][seed] == pytest.approx(4, rel=1e-4)
    assert summary["figures"]["dense_top1"]["values"]["0"] != summary["figures"]["dense_top1"]["values"]["1"]
