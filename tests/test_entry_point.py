"""The `prunelab` command (pyproject's [project.scripts] -> prunelab.cli:console): the tasks of
tasks/*.py and pixi as subcommands, with hints and made_by records in the `prunelab TASK` form."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from prunelab import paths
from prunelab.atomic import load_torch
from prunelab.cli import DEFAULT_CONFIGS, console
from prunelab.stages import STAGES

from conftest import experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_script_is_declared():
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["prunelab"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is console


def test_help_lists_every_task_in_the_pixi_form(capsys):
    assert console(["--help"]) == 0
    out = capsys.readouterr().out
    for task in [*STAGES, "bench", "tests"]:  # pixi's names (test_first_use checks that each is a pixi task)
        assert f"\n  {task.replace('_', '-')} " in out, task
    assert "usage: prunelab TASK CONFIG" in out


@pytest.mark.parametrize("argv", [["nope", "configs/lenet5.toml"], []])
def test_an_unknown_or_missing_task_is_one_line_and_exit_2(argv, capsys):
    assert console(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prunelab: error")]
    assert len(errors) == 1 and ("unknown task 'nope'" in errors[0] if argv else "TASK" in errors[0])


def test_a_task_has_its_own_help(capsys):
    with pytest.raises(SystemExit) as stopped:
        console(["sweep", "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: prunelab sweep") and "--shard K/N" in out


def test_reproduce_keeps_its_default_config(capsys):
    """`prunelab reproduce` runs the config tasks/reproduce.py runs."""
    tree = ast.parse((ROOT / "tasks" / "reproduce.py").read_text())
    assigned = {node.targets[0].id: node.value.value for node in tree.body
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)}
    assert assigned["DEFAULT_CONFIG"] == DEFAULT_CONFIGS["reproduce"]
    with pytest.raises(SystemExit):
        console(["reproduce", "--help"])
    assert f"default {DEFAULT_CONFIGS['reproduce']}" in capsys.readouterr().out


def test_tasks_run_and_hint_in_the_prunelab_form(tiny_config, capsys, monkeypatch):
    path = tiny_config(train={"epochs": 1})
    monkeypatch.setenv("PIXI_ENVIRONMENT_NAME", "default")  # typed `prunelab`, even inside `pixi shell`
    assert console(["prune", str(path), "--set", "train.lr=0.2"]) == 2  # no dense model yet
    assert f"run `prunelab train {path} --set train.lr=0.2` first" in capsys.readouterr().err
    assert console(["get-dataset", str(path)]) == 0
    assert console(["train", str(path), "--threads", "1"]) == 0
    made_by = load_torch(paths.dense(experiment(path)))["made_by"]
    assert made_by["command"] == f"prunelab train {path} --threads 1"
    assert console(["get_dataset", str(path)]) == 0  # the task file's spelling works too
    assert "is up to date" in capsys.readouterr().out
