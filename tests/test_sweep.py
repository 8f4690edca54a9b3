"""The at-init sweep on a tiny synthetic config: exact densities, resumable, report tables."""

from __future__ import annotations

import json
import re

import pytest

from prunelab import config, paths
from prunelab.atomic import load_torch
from prunelab.cli import run
from prunelab.sweep import cell_experiment, cell_overrides

METHODS = ["random", "synflow"]
SPARSITIES = [0.5, 0.9]  # compression 2x and 10x
SWEEP = """
[sweep]
kind = "at_init"
stages = ["prune", "test"]
report_compression = 10
discussion = "Synthetic data: nothing to compare with the papers."
variants = [
{variants}
]

[sweep.grid]
seed = [0]
"""


@pytest.fixture
def sweep_config(tiny_config):
    path = tiny_config(
        data={"train_subset": 200, "test_subset": 100},
        prune={"method": "random", "start": "init", "scope": "global", "iterations": 1,
               "finetune": {"epochs": 1, "lr": 0.05}, "at_init": {"synflow_rounds": 3}},
    )
    # Seeds in the variants (they override the grid's seed) keep the shuffle control to one cell.
    variants = [{"prune.method": m, "prune.sparsity": s, "seed": seed}
                for m in METHODS for s in SPARSITIES for seed in (0, 1)]
    variants.append({"prune.method": "synflow", "prune.sparsity": 0.9, "prune.at_init.shuffle": True})
    lines = ",\n".join("{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in v_.items()) + " }"
                       for v_ in variants)
    path.write_text(path.read_text() + SWEEP.format(variants=lines))
    return path


def _table(report: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the first markdown table after `heading`."""
    lines = []
    for line in report.split(f"## {heading}\n", 1)[1].splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[2:]


def test_sweep_densities_resume_and_report(sweep_config, capsys):
    exp = config.load(sweep_config)
    cells = [(cell_id, cell_experiment(exp, cell_id, o)) for cell_id, o in cell_overrides(exp)]
    assert len(cells) == 9  # 2 methods x 2 compressions x 2 seeds, + one shuffle control
    assert run("sweep", [str(sweep_config)]) == 0
    summary = json.loads(paths.sweep_summary(exp).read_text())
    assert [row["cell"] for row in summary["cells"]] == [cell_id for cell_id, _ in cells]
    assert all(row["metrics"] is not None for row in summary["cells"])
    stamps = {}
    for cell_id, cell in cells:
        masks = load_torch(paths.pruned(cell))["masks"]
        total = sum(m.numel() for m in masks.values())
        kept = sum(int(m.sum()) for m in masks.values())
        assert abs(kept - cell.prune.target_density() * total) <= 0.001 * total, cell_id
        stamps[cell_id] = paths.pruned(cell).stat().st_mtime_ns

    capsys.readouterr()
    assert run("sweep", [str(sweep_config)]) == 0  # finished cells are skipped
    out = capsys.readouterr().out
    assert out.count("is up to date; skipping prune") == 9 and out.count("is up to date; skipping test") == 9
    assert all(paths.pruned(cell).stat().st_mtime_ns == stamps[cell_id] for cell_id, cell in cells)

    assert run("report", [str(sweep_config)]) == 0
    report = paths.report(exp).read_text()
    number = re.compile(r"^\d[\d.e+-]* ± \d[\d.e+-]*$")  # fixed decimals, or significant digits (MACs)
    for heading in ("Top-1 accuracy (%)", "Test time (CPU ms per batch)", "Effective MACs (millions, one image)"):
        header, rows = _table(report, heading)
        assert header == ["compression"] + METHODS
        assert [row[0] for row in rows] == ["2x", "10x"]
        assert all(number.match(value) for row in rows for value in row[1:]), rows
    header, rows = _table(report, "Per layer at 10x")
    assert header == ["layer", "weight shape"] + METHODS and [row[0] for row in rows] == ["fc1", "fc2", "fc3"]
    assert all(row[-1] == "0.00" for row in rows if row[0] == "fc3")  # the classifier is not pruned
    header, rows = _table(report, "Controls: shuffled and re-initialized masks (top-1 %, difference to plain)")
    assert header == ["method", "compression", "plain", "shuffle"] and [r[:2] for r in rows] == [["synflow", "10x"]]
    header, rows = _table(report, "Achieved vs target density, layer collapse")
    assert len(rows) == 9 and all(float(r[4]) == pytest.approx(float(r[5]), abs=0.1) for r in rows)
    assert "synflow at 10x, shuffle:" in report and "At 10x, synflow" in report
    for png in ("sweep_accuracy.png", "sweep_test_time.png", "sweep_flops.png", "weights_random.png",
                "weights_synflow.png"):
        assert (paths.run_dir(exp) / png).stat().st_size > 1000
        assert f"({png})" in report


def test_a_sweep_records_how_it_ran_and_publishes(sweep_config, tmp_path, monkeypatch):
    """sweep.json carries the sweep's made_by; publish copies the report, figures and sweep.json."""
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")  # publish writes ./results/<name>/ (the runs are in tmp_path/results)
    exp = config.load(sweep_config)
    assert run("sweep", [str(sweep_config), "--set", "seed=3"]) == 0
    made_by = json.loads(paths.sweep_summary(exp).read_text())["made_by"]["sweep"]
    assert made_by["overrides"] == ["seed=3"] and made_by["threads"] == 1
    assert run("publish", [str(sweep_config), "--set", "seed=3"]) == 2  # an overridden sweep is not published
    assert run("sweep", [str(sweep_config)]) == 0
    assert run("publish", [str(sweep_config)]) == 0
    published = {path.name for path in (tmp_path / "repo" / "results" / exp.name).iterdir()}
    assert {"report.md", "sweep.json", "sweep_accuracy.png"} <= published
    report = (tmp_path / "repo" / "results" / exp.name / "report.md").read_text()
    assert "## How this was made" in report and f"`python tasks/sweep.py {sweep_config}`" in report


def test_a_seed_grid_starts_each_cell_from_its_own_seeds_dense_model(sweep_config):
    """A "{seed}" in train.pretrained is the cell's seed (the grid's, or a variant's), as in `reproduce`."""
    text = sweep_config.read_text().replace("seed = [0]\n", "seed = [0, 3]\n")
    sweep_config.write_text(text.replace("[train]\n", '[train]\npretrained = "runs/dense/seed-{seed}/dense.pt"\n', 1))
    exp = config.load(str(sweep_config))
    pretrained = {cell_id: cell_experiment(exp, cell_id, overrides).train.pretrained
                  for cell_id, overrides in cell_overrides(exp)}
    # A variant's seed replaces the grid's (the cell id keeps the key's place), and so its model.
    assert pretrained["seed-1__method-random__sparsity-0.5"] == "runs/dense/seed-1/dense.pt"
    assert pretrained["seed-3__method-synflow__sparsity-0.9__shuffle-true"] == "runs/dense/seed-3/dense.pt"
    assert pretrained["seed-0__method-synflow__sparsity-0.9__shuffle-true"] == "runs/dense/seed-0/dense.pt"


def test_a_variant_with_another_setting_is_its_own_column_not_a_seed(sweep_config):
    """An ablation's override (here the fine-tuning rate) is named in the method's label, so its cell
    is not averaged with the plain cell of the same method and compression as if it were a seed."""
    from prunelab.families.at_init.sweep_cells import load_cells

    text = sweep_config.read_text()
    assert '"prune.at_init.shuffle" = true' in text
    sweep_config.write_text(text.replace('"prune.at_init.shuffle" = true', '"prune.finetune.lr" = 0.02'))
    exp = config.load(str(sweep_config))
    cells = {cell_id: cell_experiment(exp, cell_id, overrides) for cell_id, overrides in cell_overrides(exp)}
    summary = {"cells": [{"cell": cell_id, "overrides": overrides, "metrics": None}
                         for cell_id, overrides in cell_overrides(exp)]}
    labels = {cell.cell_id: cell.method for cell in load_cells(exp, summary, cells)}
    assert labels["seed-0__method-synflow__sparsity-0.9__lr-0.02"] == "synflow (lr 0.02)"
    assert labels["seed-0__method-synflow__sparsity-0.9"] == "synflow"
