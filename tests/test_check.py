"""The `check` task: a run's figures against the checked-in results/<name>/ (docs/ci.md).

A tiny synthetic run is published and checked (passes; an edited figure is one line); the seed,
sweep and compress comparisons run on copies of checked-in reports; and, with the real runs
present (PRUNELAB_RUNS, as in test_reference_reports.py), every checked-in report passes.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from prunelab import config, paths
from prunelab.atomic import load_json, write_json
from prunelab.cli import run
from prunelab.errors import DriftFound, UserError
from prunelab.replicates import replicates
from prunelab.stages.check import ACCURACY_TOLERANCE, RELATIVE_TOLERANCE, check, drifted

from conftest import experiment

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
RUNS = Path(os.environ.get("PRUNELAB_RUNS", REPO / "runs")).resolve()
NAMES = sorted(path.stem for path in (REPO / "configs").glob("*.toml") if (RESULTS / path.stem).is_dir())


def _edit(path: Path, *keys: str, by: float) -> tuple[float, float]:
    """Change one figure and reseal the file (as `publish` or `test` would have written it): (old, new)."""
    data = load_json(path)
    node = data
    for key in keys[:-1]:
        node = node[key]
    old = node[keys[-1]]
    node[keys[-1]] = old + by
    write_json(path, data)
    return old, old + by


def _drift(exp: config.Experiment) -> list[str]:
    with pytest.raises(DriftFound) as found:
        check(exp)
    assert str(found.value) == "\n".join(found.value.lines)
    return found.value.lines


@pytest.fixture
def published_tiny(tiny_config, tmp_path, monkeypatch) -> config.Experiment:
    """A tiny run, reproduced and published to ./results/tiny (the working directory is tmp_path)."""
    monkeypatch.chdir(tmp_path)
    path = tiny_config(train={"epochs": 1}, results_root=str(tmp_path / "runs"))
    assert run("reproduce", [str(path)]) == 0
    assert run("publish", [str(path)]) == 0
    return experiment(path)


def test_a_published_run_passes_and_an_edited_figure_is_one_line(published_tiny):
    exp = published_tiny
    check(exp)
    published = Path("results/tiny/metrics.json")
    old, new = _edit(published, "pruned", "accuracy", by=1.0)
    assert _drift(exp) == [f"{published}: pruned.accuracy {new} -> {old} (tolerance {ACCURACY_TOLERANCE:.2f} points)"]
    _edit(published, "pruned", "accuracy", by=-1.0)
    old, new = _edit(paths.metrics(exp), "pruned", "nonzero_weights", by=1)  # the run's side this time
    assert _drift(exp) == [f"{published}: pruned.nonzero_weights {old} -> {new} (must be equal)"]


def test_the_task_exits_1_with_one_line_per_drifted_figure(published_tiny, capsys):
    assert run("check", [published_tiny.path]) == 0
    _edit(Path("results/tiny/metrics.json"), "dense", "accuracy", by=2.0)
    capsys.readouterr()
    assert run("check", [published_tiny.path]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drift: results/tiny/metrics.json: dense.accuracy")


def test_accuracy_and_trained_figures_may_move_by_their_tolerance_and_timings_are_not_compared(published_tiny):
    exp = published_tiny
    _edit(paths.metrics(exp), "dense", "accuracy", by=ACCURACY_TOLERANCE)  # the bound is included
    _edit(paths.metrics(exp), "pruned", "loss", by=0.5)
    _edit(paths.metrics(exp), "pruned", "theoretical_speedup", by=0.05)  # a trained figure: well within 10%
    _edit(paths.metrics(exp), "pruned", "latency", "cpu", "1", "ms_per_batch", by=3.0)
    check(exp)


def test_a_hand_edited_reference_is_refused_as_damaged(published_tiny):
    published = Path("results/tiny/metrics.json")
    published.write_text(published.read_text().replace('"accuracy": ', '"accuracy": 1', 1))  # digest not resealed
    with pytest.raises(UserError, match=f"{re.escape(str(published))}: damaged"):
        check(published_tiny)


def test_a_missing_reference_or_run_is_bad_input_with_the_command_that_makes_it(tiny_config, tmp_path, monkeypatch,
                                                                              capsys):
    monkeypatch.chdir(tmp_path)
    path = tiny_config(results_root=str(tmp_path / "runs"))
    assert run("check", [str(path)]) == 2
    assert f"{Path('results/tiny')}: no checked-in results" in capsys.readouterr().err
    Path("results/tiny").mkdir(parents=True)
    write_json(Path("results/tiny/metrics.json"), {"pruned": {"accuracy": 90.0}})
    assert run("check", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "metrics.json: not found" in err
    assert f"`python tasks/reproduce.py {path}` first" in err


def _copy_of(name: str, tmp_path: Path, monkeypatch) -> config.Experiment:
    """A checked-in config whose results/<name>/ is copied to tmp_path (the working directory) and whose
    runs (under tmp_path/runs) are made from it by the caller."""
    shutil.copytree(RESULTS / name, tmp_path / "results" / name)
    monkeypatch.chdir(tmp_path)
    return config.load(str(REPO / "configs" / f"{name}.toml"), [f'results_root="{tmp_path / "runs"}"'])


def test_each_seed_is_compared_with_its_entry_in_replicates_json(tmp_path, monkeypatch):
    exp = _copy_of("lenet5", tmp_path, monkeypatch)
    measured = load_json(RESULTS / "lenet5" / "replicates.json")["metrics"]
    for seed in replicates(exp):
        write_json(paths.metrics(seed), measured[str(seed.seed)])
    check(exp)
    old, new = _edit(paths.metrics(replicates(exp)[1]), "pruned", "accuracy", by=-0.31)
    assert _drift(exp) == [f"{Path('results/lenet5/replicates.json')}: metrics.1.pruned.accuracy {old} -> {new} "
                           f"(tolerance {ACCURACY_TOLERANCE:.2f} points)"]
    check(config.load(exp.path, [f'results_root="{tmp_path / "runs"}"', "seeds=[0, 2]"]))  # only those seeds
    with pytest.raises(UserError, match="no seed 7"):
        check(config.load(exp.path, [f'results_root="{tmp_path / "runs"}"', "seeds=[7]"]))


def test_a_sweep_is_compared_cell_by_cell(tmp_path, monkeypatch):
    exp = _copy_of("deephoyer_mlp_sweep", tmp_path, monkeypatch)
    summary = load_json(RESULTS / "deephoyer_mlp_sweep" / "sweep.json")
    write_json(paths.sweep_summary(exp), summary)
    check(exp)
    cell = summary["cells"][1]["cell"]
    summary["cells"][1]["metrics"]["pruned"]["nonzero_weights"] += 10
    last = summary["cells"].pop()["cell"]
    write_json(paths.sweep_summary(exp), summary)
    published = Path("results/deephoyer_mlp_sweep/sweep.json")
    nonzero = summary["cells"][1]["metrics"]["pruned"]["nonzero_weights"]
    assert _drift(exp) == [
        f"{published}: cell {cell}: metrics.pruned.nonzero_weights {nonzero - 10} -> {nonzero} (must be equal)",
        f"{published}: cell {last}: not in {paths.sweep_summary(exp)}",
    ]


def test_compress_json_is_compared_where_it_is_checked_in(tmp_path, monkeypatch):
    name = "lenet300_100_fashion_deep_compression"
    exp = _copy_of(name, tmp_path, monkeypatch)
    for made in (paths.metrics(exp), paths.compress_log(exp)):
        write_json(made, load_json(RESULTS / name / made.name))
    check(exp)
    size = load_json(paths.compress_log(exp))["file_bytes"]
    _edit(paths.compress_log(exp), "file_bytes", by=-int(size * RELATIVE_TOLERANCE))  # a coded size: within 10%
    check(exp)
    _, new = _edit(paths.compress_log(exp), "file_bytes", by=-int(size * RELATIVE_TOLERANCE))  # now 20% off
    original = _edit(paths.compress_log(exp), "original_bytes", by=4)
    quantized = _edit(paths.compress_log(exp), "accuracy", "quantized", by=0.5)
    published = Path("results", name, "compress.json")
    assert _drift(exp) == [
        f"{published}: accuracy.quantized {quantized[0]} -> {quantized[1]} (tolerance 0.30 points)",
        f"{published}: file_bytes {size} -> {new} (tolerance 10%)",
        f"{published}: original_bytes {original[0]} -> {original[1]} (must be equal)",
    ]


def test_the_rules_figure_by_figure():
    log = [{"epoch": 1, "test_accuracy": 90.0, "seconds": 3.0}, {"epoch": 2, "test_accuracy": 91.0, "seconds": 2.0}]
    moved = [{"epoch": 1, "test_accuracy": 90.3, "seconds": 9.0}, {"epoch": 2, "test_accuracy": 90.5, "seconds": 1.0}]
    assert list(drifted({"log": log}, {"log": moved})) == ["log[1].test_accuracy 91.0 -> 90.5 (tolerance 0.30 points)"]
    assert list(drifted({"a": 1, "b": {"c": 2}}, {"a": 1, "d": 3})) == [
        'b {"c": 2} -> missing (must be equal)', "d missing -> 3 (must be equal)"]  # a missing table: one line
    assert list(drifted({"x": float("nan"), "flag": True}, {"x": float("nan"), "flag": 1})) == [
        "flag true -> 1 (must be equal)"]
    assert list(drifted({"shape": [3, 4]}, {"shape": [4, 3]})) == ["shape [3, 4] -> [4, 3] (must be equal)"]
    assert list(drifted({"rows": list(range(30))}, {})) == ["rows (30 entries) -> missing (must be equal)"]
    assert list(drifted({"accuracy": 99.39}, {"accuracy": 99.09})) == []  # 0.30 points: floats say 0.300000000004
    assert list(drifted({"made_by": {"at": 1}, "digest": "a"}, {"made_by": {"at": 2}, "digest": "b"})) == []
    sizes = {"sizes": {"total_bytes": 1000, "sections": [{"name": "fc1.weight", "fillers": 40}]}}
    moved = {"sizes": {"total_bytes": 1101, "sections": [{"name": "fc1.bias", "fillers": 44}]}}
    assert list(drifted(sizes, moved)) == ['sizes.sections[0].name "fc1.weight" -> "fc1.bias" (must be equal)',
                                           "sizes.total_bytes 1000 -> 1101 (tolerance 10%)"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_checked_in_report_matches_its_run(name, monkeypatch):
    """Done when: `check` passes on every checked-in report produced by a config (its run present)."""
    monkeypatch.chdir(REPO)
    exp = config.load(f"configs/{name}.toml", [f'results_root="{RUNS}"'])
    made = [paths.sweep_summary(exp)] if exp.sweep is not None else [paths.metrics(r) for r in replicates(exp) or [exp]]
    missing = [path for path in made if not path.is_file()]
    if missing:
        pytest.skip(f"{missing[0]} is not here (runs are not checked in): run `pixi r reproduce configs/{name}.toml`")
    check(exp)
