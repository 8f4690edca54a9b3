"""DeepHoyer family: cross-layer structural counts, the structural report, the frontier report, end to end."""

from __future__ import annotations

import copy
import csv
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunelab import checkpoints, config, paths
from prunelab.atomic import save_torch, write_json
from prunelab.cli import run
from prunelab.families.deephoyer import frontier_report
from prunelab.families.deephoyer.frontier import DECAY_KEY, KIND_KEY, Point, compare, sparsest_at, verdict
from prunelab.families.deephoyer.report import sections
from prunelab.families.deephoyer.structure import sequential_links, structure_stats
from prunelab.family import ReportInputs
from prunelab.models import build

from conftest import tiny_raw, to_toml

# ---------------------------------------------------------------- cross-layer propagation


class _Chain(nn.Module):
    """conv 1->4 (8x8) -> relu -> pool (4x4) -> conv 4->6 -> relu -> flatten (6 x 16) -> fc 96->5 -> relu -> fc 5->3."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc1 = nn.Linear(6 * 4 * 4, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x)).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


def _chain_with_zeros() -> nn.Module:
    model = _Chain()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
        model.conv1.weight[1] = 0  # filter 1 -> conv2's input channel 1 goes too
        model.conv2.weight[:, 3] = 0  # input channel 3 unread -> conv1's filter 3 goes too
        model.conv2.weight[5] = 0  # filter 5 -> fc1's columns 80..95 (channel 5's 4x4 block) go too
        model.fc1.weight[:, 0:16] = 0  # channel 0's whole block unread -> conv2's filter 0 goes too
        model.fc1.weight[:, 20] = 0  # one pixel of channel 1: only that column
        model.fc1.weight[2] = 0  # neuron 2 -> fc2's input 2 goes too
    return model


def test_sequential_links_follow_the_forward():
    assert sequential_links(_Chain()) == {"conv1": ("conv2", False), "conv2": ("fc1", True), "fc1": ("fc2", False)}
    assert sequential_links(build("lenet5_caffe", 1, 10, 28)) == {
        "conv1": ("conv2", False), "conv2": ("fc1", True), "fc1": ("fc2", False)}


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 1)
        self.conv2 = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        y = self.conv1(x)
        return self.conv2(y) + y  # conv1's output has two consumers: its channels cannot go


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = x * 2
        return self.fc2(self.fc1(x))


class _LinearOverWidth(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1)
        self.fc = nn.Linear(8, 3)  # applied to the last (width) dim of (N, 4, 8, 8): not the channels

    def forward(self, x):
        return self.fc(self.conv(x))


def test_no_links_through_residuals_mismatched_axes_or_untraceable_models():
    assert sequential_links(_Residual()) == {}
    assert sequential_links(_LinearOverWidth()) == {}
    assert sequential_links(_Branchy()) == {}


def test_structure_stats_propagates_zero_groups():
    model = _chain_with_zeros()
    stats = structure_stats(model, (1, 8, 8), propagate=True)
    conv1, conv2, fc1, fc2 = stats["layers"]
    assert (conv1["zero_rows"], conv1["removed_rows"], conv1["out_kept"], conv1["in_kept"]) == (1, 2, 2, 1)
    assert (conv2["zero_rows"], conv2["zero_cols"], conv2["removed_rows"], conv2["removed_cols"]) == (1, 1, 2, 2)
    assert (fc1["zero_rows"], fc1["zero_cols"], fc1["removed_cols"], fc1["in_kept"]) == (1, 17, 33, 63)
    assert (fc2["zero_cols"], fc2["removed_cols"], fc2["in_kept"]) == (0, 1, 4)
    # MACs by hand: conv1 4x1x9x64, conv2 6x4x9x16, fc1 96x5, fc2 5x3, scaled by the kept fractions.
    assert [layer["macs"] for layer in stats["layers"]] == [2304, 3456, 480, 15]
    assert [layer["structural_weights"] for layer in stats["layers"]] == [2 * 9, 4 * 2 * 9, 4 * 63, 3 * 4]
    assert conv1["structural_macs"] == pytest.approx(2 * 9 * 64)
    assert conv2["structural_macs"] == pytest.approx(4 * 2 * 9 * 16)
    assert fc1["structural_macs"] == pytest.approx(4 * 63)
    assert fc2["structural_macs"] == pytest.approx(3 * 4)
    total = stats["total"]
    assert total["propagated"] is True
    assert total["structural_speedup"] == pytest.approx((2304 + 3456 + 480 + 15) / (1152 + 1152 + 252 + 12))


def test_structure_stats_without_propagation_counts_own_groups_only():
    stats = structure_stats(_chain_with_zeros(), (1, 8, 8))
    conv1, conv2, fc1, fc2 = stats["layers"]
    assert (conv1["out_kept"], conv2["out_kept"], conv2["in_kept"], fc1["in_kept"], fc2["in_kept"]) == (3, 5, 3, 79, 5)
    assert all(layer["removed_rows"] == layer["zero_rows"] for layer in stats["layers"])


# ---------------------------------------------------------------- structural report section


def _lenet5_caffe_pruned() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    dense = build("lenet5_caffe", 1, 10, 28)
    pruned = copy.deepcopy(dense)
    with torch.no_grad():
        pruned.conv1.weight[10:] = 0  # 10 of 20 filters left
        pruned.conv2.weight[:40] = 0  # 10 of 50 filters left
    return dense, pruned


def structure_sections(exp, dense, pruned, checkpoint) -> list[str]:
    """The DeepHoyer family's report sections for these models (metrics.json is not read)."""
    return sections(ReportInputs(exp, dense, pruned, checkpoint, measured={}))


def _exp(**train) -> config.Experiment:
    raw = {"name": "x", "model": {"arch": "lenet5_caffe"}, "train": train,
           "prune": {"method": "threshold", "std_ratio": 0.25, "granularity": "structure"}}
    return config.parse(raw, "x.toml")


def test_structure_section_on_known_zero_filters():
    dense, pruned = _lenet5_caffe_pruned()
    exp = _exp(regularizer={"kind": "group_hoyer_square", "decay": 1e-3})
    heading, _, table, summary = structure_sections(exp, dense, pruned, {"log": []})
    assert heading.startswith("## Structure")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines()[2:]}
    # conv1 keeps 10x1 (25 weights each): 250 params, 288,000 x 10/20 MACs.
    assert rows["conv1"][2:] == ["50.00", "10 / 20", "0 / 1", "10 / 20", "0 / 1", "10x1", "500", "250", "288,000",
                                 "144,000", "50.00"]
    # conv2: its own 40 zero filters, and conv1's 10 zero filters remove 10 of its input channels.
    assert rows["conv2"][2:] == ["80.00", "40 / 50", "0 / 20", "40 / 50", "10 / 20", "10x10", "25,000", "2,500",
                                 "1,600,000", "160,000", "10.00"]
    # fc1 loses the 40 x 16 input columns fed by conv2's zero filters (propagated, none of its own).
    assert rows["fc1"][2:] == ["0.00", "0 / 500", "0 / 800", "0 / 500", "640 / 800", "500x160", "400,000", "80,000",
                               "400,000", "80,000", "20.00"]
    assert rows["**total**"][-5:] == ["430,500", "87,750", "2,293,000", "389,000", "16.96"]
    assert f"**{2_293_000 / 389_000:.2f}x**" in summary


def test_structure_section_names_the_starting_dense_model(tmp_path):
    dense, pruned = _lenet5_caffe_pruned()
    source = tmp_path / "dense.pt"
    checkpoints.save(source, dense, "hash", log=[{"test_accuracy": 90.0}, {"test_accuracy": 91.0}])
    exp = _exp(regularizer={"kind": "group_hoyer_square", "decay": 1e-3}, pretrained=str(source))
    summary = structure_sections(exp, dense, pruned, {"log": [{"accuracy_after_finetune": 90.5}]})[-1]
    assert f"`{source}`: top-1 91.00% after its last epoch; pruned and fine-tuned: 90.50% (-0.50 points)" in summary


def test_structure_section_only_for_deephoyer_runs():
    dense, pruned = _lenet5_caffe_pruned()
    magnitude = config.parse({"name": "x", "model": {"arch": "lenet5_caffe"}, "prune": {"sparsity": 0.9}}, "x.toml")
    assert structure_sections(magnitude, dense, pruned, None) == []
    trained_only = config.parse({"name": "x", "model": {"arch": "lenet5_caffe"},
                                 "train": {"regularizer": {"kind": "l1", "decay": 1e-4}}}, "x.toml")
    assert "trained (unpruned)" in structure_sections(trained_only, dense, dense, None)[1]


# ---------------------------------------------------------------- frontier report


def _metrics(accuracy: float, nonzero: int) -> dict:
    return {"dense": {"accuracy": accuracy + 1.0},
            "pruned": {"accuracy": accuracy, "nonzero_weights": nonzero, "weights": 1000,
                       "compression": 1000 / nonzero, "theoretical_speedup": 1000 / nonzero}}


def _sweep_exp(tmp_path) -> config.Experiment:
    raw = {"name": "frontier", "results_root": str(tmp_path), "data": {"dataset": "fashion-mnist"},
           "model": {"arch": "lenet300_100"}, "train": {"regularizer": {"kind": "l1", "decay": 1e-4}},
           "prune": {"method": "threshold", "std_ratio": 0.25},
           "sweep": {"kind": "regularizer", "grid": {"seed": [0]}, "variants": [{}]}}
    return config.parse(raw, "frontier.toml")


def _summary(cells: list[tuple[str, float, float | None, int | None]]) -> dict:
    rows = []
    for kind, decay, accuracy, nonzero in cells:
        rows.append({"cell": f"{kind}-{decay:g}", "overrides": {KIND_KEY: kind, DECAY_KEY: decay},
                     "metrics": None if accuracy is None else _metrics(accuracy, nonzero), "results": "x"})
    return {"name": "frontier", "kind": "regularizer", "cells": rows}


def _write_han(tmp_path, accuracy: float, nonzero: int) -> None:
    path = tmp_path / "lenet300_100_fashion" / "metrics.json"
    path.parent.mkdir(parents=True)
    write_json(path, _metrics(accuracy, nonzero))
    save_torch(path.parent / "pruned.pt", {"model": {}, "log": [{"round": 1, "finetune_epochs": 3},
                                                                {"round": 2, "finetune_epochs": 4}]})


def _point(accuracy: float, nonzero: float, method: str = "hoyer_square") -> Point:
    return Point(method, 1e-4, nonzero, accuracy, None, 100 / nonzero, 100 / nonzero, "c")


def test_sparsest_at_and_compare_use_the_accuracy_tolerance():
    hs = [_point(88.85, 5.0), _point(90.0, 20.0)]
    assert sparsest_at(hs, 89.0).nonzero == 5.0  # 88.85 >= 89.0 - 0.2
    assert sparsest_at(hs, 89.1).nonzero == 20.0
    assert sparsest_at(hs, 90.3) is None
    rows = compare(hs, [_point(89.0, 5.0, "l1"), _point(90.5, 50.0, "l1")])
    assert [row["wins"] for row in rows] == [True, False]  # ties count; never reaching 90.3 loses
    assert verdict(rows) is False and verdict([]) is None
    assert compare(hs, [_point(89.0, 5.0, "magnitude")], strict=True)[0]["wins"] is False  # "beats" is strict


def test_frontier_report_says_yes_when_hoyer_square_dominates(tmp_path):
    exp = _sweep_exp(tmp_path)
    _write_han(tmp_path, 88.9, 150)
    summary = _summary([("l1", 1e-5, 89.0, 200), ("l1", 1e-4, 88.0, 100), ("hoyer_square", 1e-5, 89.1, 100),
                        ("hoyer_square", 1e-4, 88.0, 40), ("hoyer", 1e-3, None, None)])
    frontier_report.write_report(exp, summary, {})
    report = paths.report(exp).read_text()
    assert "Hoyer-Square vs L1: **yes**" in report
    assert "Hoyer-Square vs Han magnitude pruning: **yes**" in report
    assert "the magnitude pipeline fine-tuned 7 epochs over 2 prune rounds" in report
    assert "Not measured yet (1): `hoyer-0.001`" in report
    assert "| L1 " in report and "| Han magnitude (reference)" in report
    png = paths.run_dir(exp) / frontier_report.FRONTIER_PNG
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({frontier_report.FRONTIER_PNG})" in report


def test_frontier_report_says_no_and_names_a_missing_reference(tmp_path):
    exp = _sweep_exp(tmp_path)
    summary = _summary([("l1", 1e-4, 89.0, 50), ("hoyer_square", 1e-4, 89.0, 100)])
    frontier_report.write_report(exp, summary, {})
    report = paths.report(exp).read_text()
    assert "Hoyer-Square vs L1: **no**" in report and "L1 (decay 0.0001): 89.00% at 5.000% nonzero" in report
    assert "lenet300_100_fashion/metrics.json` is missing" in report
    assert "Hoyer-Square vs Han magnitude pruning: not tested" in report
    assert "## Discussion" not in report


def test_frontier_report_ends_with_the_configs_discussion(tmp_path):
    exp = _sweep_exp(tmp_path)
    exp.sweep.discussion = "\nThe scale-invariant cells collapsed.\n"
    frontier_report.write_report(exp, _summary([("l1", 1e-4, 89.0, 50)]), {})
    report = paths.report(exp).read_text()
    assert "## Discussion\n\nThe scale-invariant cells collapsed.\n\n## How this was made" in report


# ---------------------------------------------------------------- end to end


def test_regularized_threshold_run_end_to_end(tmp_path, synthetic_source):
    raw = tiny_raw(tmp_path, synthetic_source)
    raw["train"] = {"epochs": 2, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                    "regularizer": {"kind": "group_hoyer_square", "decay": 1e-3}}
    raw["prune"] = {"method": "threshold", "std_ratio": 1.0, "granularity": "structure",
                    "finetune": {"epochs": 1, "optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0}}
    path = tmp_path / "deephoyer.toml"
    path.write_text(to_toml(raw))
    assert run("reproduce", [str(path)]) == 0
    exp = config.load(path)
    rows = list(csv.DictReader(paths.train_log(exp).open()))
    assert len(rows) == 2 and all(math.isfinite(float(row["regularizer"])) and float(row["regularizer"]) > 0
                                  for row in rows)
    report = paths.report(exp).read_text()
    assert "## Structure: zero filters and channels" in report
    assert "threshold after training with group_hoyer_square (decay 0.001)" in report
    # The section's totals are those of the pruned checkpoint, counted with propagation.
    model = checkpoints.build_model(exp, torch.load(paths.pruned(exp), weights_only=True), paths.pruned(exp))
    total = structure_stats(model, (1, 28, 28), propagate=True)["total"]
    assert f"{round(total['structural_macs']):,}" in report
    assert total["structural_macs"] < total["macs"]  # 1 x std of the group norms drops some rows and columns


def test_regularizer_layers_select_and_check_names(tiny_config, capsys):
    path = tiny_config(model={"arch": "lenet5"}, train={"epochs": 1, "regularizer": {"kind": "group_hoyer_square", "decay": 1e-3, "layers": ["conv9"]}})
    assert run("train", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.regularizer.layers: no prunable layer 'conv9'" in err
