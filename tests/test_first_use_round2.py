"""First use, round 2: running from another directory, the one-seed route through check and report,
runs with overrides sharing a run folder, did-you-mean for keys, --set values and tasks, the
`prunelab` command's bench, tests and task list, and how a one-seed report reads."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from prunelab import cli, config, paths
from prunelab.atomic import load_json, load_torch, write_json
from prunelab.cli import console, run
from prunelab.replicates import replicates
from prunelab.report import replicates as over_seeds
from prunelab.report.baseline import Compared
from prunelab.stages import STAGES
from prunelab.stages.check import check

from conftest import experiment, tiny_raw, to_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# 3. Running from another directory.

@pytest.fixture
def clone(tmp_path, synthetic_source):
    """A repository-like folder: pyproject.toml and configs/tiny.toml whose data.root and results_root
    are relative (as the checked-in configs' are); returns (root, config path)."""
    root = tmp_path / "clone"
    (root / "configs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    raw = tiny_raw(tmp_path, synthetic_source, train={"epochs": 1}, results_root="runs")
    raw["data"].update(root="dataset", train_subset=600)
    path = root / "configs" / "tiny.toml"
    path.write_text(to_toml(raw))
    return root, path


def test_a_missing_input_from_another_directory_says_where_to_cd(clone, tmp_path, monkeypatch, capsys):
    root, path = clone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    note = f"you are in {elsewhere}; the config's relative paths are read from the current directory: cd {root} first"
    assert run("test", [str(path)]) == 2
    assert _one_line(capsys) == f"error: {Path('runs/tiny/dense.pt')}: not found; {note}"
    assert run("train", [str(path)]) == 2  # the data set: its own message, then where to run from
    line = _one_line(capsys)
    assert line.startswith(f"error: {path}: data set mnist not found in {Path('dataset/mnist')}; ")
    assert line.endswith(f"; {note}")
    monkeypatch.chdir(root)  # in the config's root: the usual hint, no note
    assert run("test", [str(path)]) == 2
    assert _one_line(capsys) == (f"error: {Path('runs/tiny/dense.pt')}: not found; "
                                 f"run `python tasks/train.py {path}` first")


def test_a_run_from_another_directory_that_finds_its_inputs_is_not_refused(clone, tmp_path, monkeypatch):
    _, path = clone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run("get_dataset", [str(path)]) == 0
    assert run("train", [str(path)]) == 0
    assert (elsewhere / "runs" / "tiny" / "dense.pt").is_file()


# 4 and 11. One seed through report and check; how a one-seed report reads.

def _seeds_config(tmp_path, synthetic_source, seeds=(0, 1, 2)) -> Path:
    raw = tiny_raw(tmp_path, synthetic_source, train={"epochs": 1}, results_root=str(tmp_path / "runs"))
    raw.pop("seed")
    raw["seeds"] = list(seeds)
    raw["data"]["train_subset"] = 600
    path = tmp_path / "replicated.toml"
    path.write_text(to_toml(raw))
    return path


def test_one_seed_run_alone_is_reported_and_checked_without_set(tmp_path, synthetic_source, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # publish writes ./results/<name>
    path = _seeds_config(tmp_path, synthetic_source)
    assert run("reproduce", [str(path), "--set", "seeds=[0]"]) == 0
    exp = experiment(path)
    capsys.readouterr()
    assert run("report", [str(path)]) == 0
    out = capsys.readouterr().out
    not_run = (f"{paths.replicates_dir(exp)}: seeds 1, 2 not run (no metrics.json); reporting seed 0 alone; "
               f"`python tasks/reproduce.py {path}` runs them")
    assert not_run in out.splitlines()
    assert "(seed 0 (seeds 1, 2 not run))" in out and "±" not in out  # the terminal summary's title
    report = paths.report(exp).read_text()
    assert "## Over seed 0 (seeds 1, 2 not run)\n" in report
    assert "| ours, seed 0 " in report and "1 seed" not in report
    over = report.split("## Seed 0 in detail")[0]
    assert "±" not in over and "## Each seed" not in over and "| std " not in over
    summary = load_json(paths.replicates_summary(exp))
    assert summary["seeds"] == [0] and summary["not_run"] == [1, 2] and list(summary["metrics"]) == ["0"]
    # check: the seeds that ran against the published ones, one line naming the others.
    assert run("publish", [str(path), "--set", "seeds=[0]", "--allow-overrides"]) == 0
    capsys.readouterr()
    assert run("check", [str(path)]) == 0
    out = capsys.readouterr().out
    assert not_run.replace("reporting", "checking") in out.splitlines() and "matches it" in out
    # Hints keep the user's overrides: the seeds they asked for.
    assert run("check", [str(path), "--set", "seeds=[0, 1]"]) == 0
    assert (f"{paths.replicates_dir(exp)}: seed 1 not run (no metrics.json); checking seed 0 alone; "
            f"`python tasks/reproduce.py {path} --set 'seeds=[0, 1]'` runs them") in capsys.readouterr().out


def test_check_of_seeds_compares_those_that_ran(tmp_path, monkeypatch, capsys):
    shutil.copytree(RESULTS / "lenet5", tmp_path / "results" / "lenet5")
    monkeypatch.chdir(tmp_path)
    exp = config.load(str(REPO / "configs" / "lenet5.toml"), [f'results_root="{tmp_path / "runs"}"'])
    seed0 = replicates(exp)[0]
    with pytest.raises(Exception, match=r"seed-0.metrics\.json: not found; run `python tasks/reproduce\.py"):
        check(exp)  # none ran: the first one's missing file, with the command that runs them
    write_json(paths.metrics(seed0), load_json(RESULTS / "lenet5" / "replicates.json")["metrics"]["0"])
    capsys.readouterr()
    check(exp)
    out = capsys.readouterr().out
    assert f"{paths.replicates_dir(exp)}: seeds 1, 2 not run (no metrics.json); checking seed 0 alone;" in out


def _compared(dense: float, pruned: float) -> tuple[Compared, list[dict]]:
    entries = {"dense": {"accuracy": dense}, "pruned": {"accuracy": pruned, "compression": 10.0,
                                                        "theoretical_speedup": 2.0}}
    return Compared(list(entries.items()), entries["dense"], ""), [{"compression": 10.5}]


def test_a_one_seed_report_names_the_seed_and_shows_no_spread():
    found = over_seeds.figures({0: _compared(98.0, 97.0)})
    assert over_seeds.over(found) == "seed 0" and over_seeds.over(found, [1, 2]) == "seed 0 (seeds 1, 2 not run)"
    summary = over_seeds.summary_table(found, [])
    assert "| ours, seed 0 " in summary and "±" not in summary and "mean" not in summary
    assert over_seeds.seeds_table(found) == ""  # no mean and std rows for one value
    assert "±" not in over_seeds.note([], "mnist", found)
    lines = over_seeds.terminal_lines("tiny", found)
    assert lines[0] == "tiny (seed 0)" and not any("±" in line for line in lines)
    several = over_seeds.figures({0: _compared(98.0, 97.0), 1: _compared(99.0, 98.0)})
    assert over_seeds.over(several) == "2 seeds" and over_seeds.over(several, [2]) == "2 seeds (seed 2 not run)"
    assert "| ours, mean ± std over 2 seeds " in over_seeds.summary_table(several, [])
    assert "| std " in over_seeds.seeds_table(several)
    assert over_seeds.terminal_lines("tiny", several)[0] == "tiny (2 seeds, mean ± std)"


# 7. A run with other overrides does not replace an artifact silently.

def test_an_artifact_made_with_other_overrides_is_not_replaced(tiny_config, tmp_path, capsys):
    path = tiny_config(train={"epochs": 2}, data={"train_subset": 600})
    exp = experiment(path)
    assert run("get_dataset", [str(path)]) == 0
    assert run("train", [str(path), "--set", "train.epochs=1"]) == 0
    made = load_torch(paths.dense(exp))
    capsys.readouterr()
    assert run("train", [str(path)]) == 2
    assert _one_line(capsys) == (f"error: {paths.dense(exp)}: made with --set train.epochs=1, this run has no "
                                 f"overrides; `python tasks/train.py {path} --force` replaces it, or "
                                 "--set results_root=<another dir> keeps both")
    assert load_torch(paths.dense(exp))["digest"] == made["digest"]  # untouched
    assert run("reproduce", [str(path), "--set", "train.epochs=3"]) == 2
    assert _one_line(capsys).startswith(f"error: {paths.dense(exp)}: made with --set train.epochs=1, this run "
                                        "has --set train.epochs=3; `python tasks/reproduce.py")
    # Keys outside the stage hash never stop it: the same artifact is current.
    assert run("train", [str(path), "--set", "train.epochs=1", "--set", "test.latency_repeats=3"]) == 0
    assert "is up to date" in capsys.readouterr().out
    # Both ways out.
    other = tmp_path / "kept"
    assert run("train", [str(path), "--set", f'results_root="{other}"']) == 0
    assert load_torch(paths.dense(exp))["digest"] == made["digest"]
    assert run("train", [str(path), "--force"]) == 0
    assert load_torch(paths.dense(exp))["made_by"]["overrides"] == []


def test_overrides_outside_the_stage_hash_or_of_seeds_never_stop_a_run(tmp_path, synthetic_source, capsys):
    path = _seeds_config(tmp_path, synthetic_source, seeds=(0, 1))
    assert run("get_dataset", [str(path)]) == 0
    assert run("train", [str(path), "--set", "seeds=[0]", "--set", "test.latency_repeats=3"]) == 0
    seed0 = replicates(experiment(path))[0]
    before = load_torch(paths.dense(seed0))["digest"]
    path.write_text(path.read_text().replace("lr = 0.05", "lr = 0.04"))  # the config changed: retrain
    assert run("train", [str(path)]) == 0
    assert load_torch(paths.dense(seed0))["digest"] != before
    assert paths.dense(replicates(experiment(path))[1]).is_file()


# 8. Did you mean.

def test_an_unknown_key_names_the_closest_one(tiny_config, capsys):
    path = tiny_config()
    path.write_text(path.read_text().replace("epochs = 2", "epoch = 2"))
    assert run("train", [str(path)]) == 2
    assert _one_line(capsys) == f"error: {path}: train.epoch: unknown key; did you mean `train.epochs`?"


def test_a_bad_set_value_names_the_set_not_the_file(tiny_config, capsys):
    path = tiny_config()
    assert run("train", [str(path), "--set", "train.epochs=abc"]) == 2
    assert _one_line(capsys) == ("error: --set train.epochs=abc: Input should be a valid integer, not a string "
                                 "(got 'abc')")
    assert run("train", [str(path), "--set", "train.epoch=3"]) == 2
    assert _one_line(capsys) == "error: --set train.epoch=3: unknown key; did you mean `train.epochs`?"
    assert run("train", [str(path), "--set", "trian.epochs=3"]) == 2
    assert _one_line(capsys) == "error: --set trian.epochs=3: trian: unknown key; did you mean `train`?"
    assert run("train", [str(path), "--set", "train.epochs"]) == 2
    assert _one_line(capsys) == "error: --set train.epochs: expected KEY=VALUE, e.g. --set train.epochs=2"


def test_an_unknown_task_names_the_closest_one(capsys):
    assert console(["trian", "configs/lenet5.toml"]) == 2
    assert _one_line(capsys) == "prunelab: error: unknown task 'trian'; did you mean `prunelab train`?"
    assert console(["benhc"]) == 2
    assert _one_line(capsys) == "prunelab: error: unknown task 'benhc'; did you mean `prunelab bench`?"


# 9. prunelab bench, prunelab tests, prunelab alone.

def test_prunelab_bench_runs_the_benchmarks(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "run_benchmarks", lambda out, with_reproduce: calls.append((out, with_reproduce)))
    threads = torch.get_num_threads()
    try:
        assert console(["bench", "--no-reproduce", "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert console(["bench", "--publish"]) == 0
    assert calls == [(paths.benchmarks(False), False), (paths.benchmarks(True), True)]
    assert "prunelab.cli import bench_main" in (REPO / "tasks" / "bench.py").read_text()  # one parser for both


def test_prunelab_tests_runs_pytest_and_returns_its_status(monkeypatch, capfd, tmp_path):
    monkeypatch.chdir(REPO)
    assert console(["tests", "--co", "-q", "tests/test_architecture.py"]) == 0
    assert "test_architecture.py::" in capfd.readouterr().out
    assert console(["tests", "--co", "-q", "tests/no_such_test.py"]) == 4  # pytest's usage error
    monkeypatch.chdir(tmp_path)
    assert console(["tests"]) == 2
    assert "no tests/ folder here" in capfd.readouterr().err


def test_prunelab_alone_lists_the_tasks(capsys):
    names = [name.replace("_", "-") for name in STAGES] + ["bench", "tests"]
    assert console(["--help"]) == 0
    out = capsys.readouterr().out.splitlines()
    listed = [line.split()[0] for line in out[out.index("tasks:") + 1:] if line.startswith("  ")]
    assert listed == names  # one line each
    assert console([]) == 2
    err = capsys.readouterr().err
    assert all(f"\n  {name} " in err for name in names) and err.strip().endswith("prunelab: error: no TASK given")
    pixi = tomllib.loads((REPO / "pixi.toml").read_text())["tasks"]
    assert pixi["bench"]["cmd"] == "python tasks/bench.py" and pixi["tests"]["cmd"] == "python -m pytest"
