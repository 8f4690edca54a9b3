"""The divergence guard of fit: a non-finite loss, penalty or weight stops training with one line
naming the stage, the epoch and the settings to look at; nothing is recorded as done and the last
good epoch's state stays for a rerun. A first epoch no better than chance is a warning row that the
report shows."""

from __future__ import annotations

import csv

import pytest
import torch

from prunelab import checkpoints, paths
from prunelab.atomic import load_torch
from prunelab.cli import run
from prunelab.data.loader import load_splits, make_loaders
from prunelab.errors import UserError
from prunelab.stages import STAGES
from prunelab.train import TrainHook, fit

from conftest import experiment, tiny_raw, to_toml

# Far too high for SGD on LeNet-300-100: the weights overflow within the first epoch.
TOO_HIGH = "1e6"


def _message(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_far_too_high_learning_rate_stops_training_and_records_nothing(tiny_config):
    path = tiny_config(train={"epochs": 2})
    assert run("get_dataset", [str(path)]) == 0
    exp = experiment(path, f"train.lr={TOO_HIGH}")
    with pytest.raises(UserError) as error:
        STAGES["train"](exp)
    message = _message(error)
    assert message.startswith("train diverged in epoch 1/2: ")
    assert all(key in message for key in ("train.lr (now 1e+06)", "train.optimizer", "train.weight_decay",
                                          "train.precision"))
    assert not paths.dense(exp).exists() and not paths.train_log(exp).exists()
    assert not paths.train_state(exp).exists()  # the diverged epoch's state was not saved
    sane = experiment(path)
    STAGES["train"](sane)  # a changed lr is another stage hash: it starts clean
    assert paths.dense(sane).is_file()


def test_through_the_cli_divergence_is_exit_2_and_one_line(tiny_config, capsys):
    path = tiny_config(train={"epochs": 1})
    assert run("get_dataset", [str(path)]) == 0
    capsys.readouterr()
    assert run("train", [str(path), "--set", f"train.lr={TOO_HIGH}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: train diverged in epoch 1/1")
    assert not paths.dense(experiment(path)).exists()


def test_fine_tuning_goes_through_the_guard(tiny_config):
    path = tiny_config(train={"epochs": 1})
    assert run("get_dataset", [str(path)]) == 0 and run("train", [str(path)]) == 0
    exp = experiment(path, f"prune.finetune.lr={TOO_HIGH}")
    with pytest.raises(UserError) as error:
        STAGES["prune"](exp)
    message = _message(error)
    assert message.startswith("round 1/2 fine-tune diverged in epoch 1/1: ") and "prune.finetune.lr" in message
    assert not paths.pruned(exp).exists() and not paths.prune_round(exp, 1).exists()
    assert not paths.finetune_state(exp, 1).exists()
    assert run("prune", [str(path)]) == 0 and paths.pruned(experiment(path)).is_file()


def test_regularized_training_goes_through_the_guard(tmp_path, synthetic_source):
    raw = tiny_raw(tmp_path, synthetic_source)
    raw["train"] = {"epochs": 1, "lr": float(TOO_HIGH),
                    "regularizer": {"kind": "group_hoyer_square", "decay": 1e-3}}
    raw["prune"] = {"method": "threshold", "std_ratio": 1.0, "granularity": "structure"}
    path = tmp_path / "regularized.toml"
    path.write_text(to_toml(raw))
    assert run("get_dataset", [str(path)]) == 0
    exp = experiment(path)
    with pytest.raises(UserError) as error:
        STAGES["train"](exp)
    assert _message(error).startswith("train diverged in epoch 1/1: ")
    assert not paths.dense(exp).exists()


class PoisonFrom(TrainHook):
    """From step `start` on, a NaN penalty on one weight: its gradient, then the weights, are NaN."""

    def __init__(self, start: int):
        self.start, self.steps = start, 0

    def penalty(self, model):
        self.steps += 1
        if self.steps <= self.start:
            return None
        return next(model.parameters()).sum() * float("nan")


def _fit(exp, hooks=(), epochs=2):
    torch.manual_seed(0)
    model = checkpoints.build_for(exp)
    train_loader, test_loader = make_loaders(exp, load_splits(exp), torch.device("cpu"))
    cfg = exp.train.model_copy(update={"epochs": epochs})
    return fit(model, train_loader, test_loader, cfg, paths.train_state(exp), "hash", description="train",
               hooks=hooks), len(train_loader)


def test_the_last_good_epochs_state_stays_and_resumes(tiny_config, capsys):
    path = tiny_config()
    assert run("get_dataset", [str(path)]) == 0
    exp = experiment(path)
    steps = len(make_loaders(exp, load_splits(exp), torch.device("cpu"))[0])
    with pytest.raises(UserError) as error:
        _fit(exp, [PoisonFrom(steps + 3)])  # goes bad in the middle of epoch 2
    message = _message(error)
    assert message.startswith("train diverged in epoch 2/2: the training loss is nan and a weight is no longer finite")
    assert f"the state after epoch 1 stays in {paths.train_state(exp)}" in message
    state = load_torch(paths.train_state(exp))
    assert state["epoch"] == 1 and len(state["log"]) == 1
    assert all(torch.isfinite(value).all() for value in state["model"].values())
    capsys.readouterr()
    log, _ = _fit(exp)  # the cause fixed, the same settings: resumes after the last good epoch
    assert f"resuming train from {paths.train_state(exp)} after epoch 1" in capsys.readouterr().out
    assert len(log) == 2 and log[0] == state["log"][0]


def _dense_run(tmp_path, synthetic_source, lr: float):
    """get-dataset, train, test and report of a dense-only experiment."""
    raw = tiny_raw(tmp_path, synthetic_source, name=f"lr{lr:g}", train={"epochs": 2, "lr": lr},
                   model={"arch": "lenet300_100", "init": "kaiming_normal"})
    del raw["prune"]
    path = tmp_path / f"lr{lr:g}.toml"
    path.write_text(to_toml(raw))
    for task in ("get_dataset", "train", "test", "report"):
        assert run(task, [str(path)]) == 0, task
    return experiment(path)


def test_a_run_that_does_not_learn_is_warned_and_reported(tmp_path, synthetic_source, capsys):
    # lr 1e-9 (lr must be > 0): the weights barely move, the loss stays at the initial ~2.58 > ln(10).
    exp = _dense_run(tmp_path, synthetic_source, 1e-9)
    out = capsys.readouterr().out
    assert "warning: training loss after epoch 1 was" in out
    rows = list(csv.DictReader(paths.train_log(exp).open()))
    assert rows[0]["warning"].startswith("training loss after epoch 1 was ") and rows[1]["warning"] == ""
    assert "above ln(classes) = 2.3026: the model did not start to learn (train)" in rows[0]["warning"]
    warned = [line for line in paths.report(exp).read_text().splitlines() if line.startswith("warning: ")]
    assert warned == [f"warning: {rows[0]['warning']}"]


def test_a_run_that_learns_has_no_warning(tmp_path, synthetic_source):
    exp = _dense_run(tmp_path, synthetic_source, 0.05)
    assert all("warning" not in row for row in load_torch(paths.dense(exp))["log"])
    assert "warning:" not in paths.report(exp).read_text()
