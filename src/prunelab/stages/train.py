"""train: the dense model -> results/<name>/dense.pt and train_log.csv."""

from __future__ import annotations

from pathlib import Path

from .. import checkpoints, paths
from ..atomic import load_torch, write_csv
from ..config import Experiment
from ..data.loader import load_splits, make_loaders
from ..device import resolve, seed_everything
from ..errors import UserError
from ..family import FAMILIES
from ..log import console
from ..train import fit


def _load_pretrained(exp: Experiment, model) -> None:
    source = Path(exp.train.pretrained)
    if not source.is_file():
        raise UserError(f"{exp.path}: train.pretrained: {source} not found")
    checkpoints.load_into(model, load_torch(source), source)


def train(exp: Experiment, force: bool = False) -> None:
    config_hash = exp.stage_hash("train")
    out = paths.dense(exp)
    if not force and checkpoints.is_current(out, config_hash):
        console.print(f"[green]{out}[/] is up to date; skipping train (--force to redo)")
        return
    if force:
        paths.train_state(exp).unlink(missing_ok=True)
    device = resolve(exp)
    seed_everything(exp.seed)
    model = checkpoints.build_for(exp).to(device)
    if exp.train.pretrained is not None:
        _load_pretrained(exp, model)
    hooks = [hook for pruning in FAMILIES.values() for hook in pruning.train_hooks(exp, model)]
    train_loader, test_loader = make_loaders(exp, load_splits(exp), device)
    log = fit(model, train_loader, test_loader, exp.train, paths.train_state(exp), config_hash, description="train",
              hooks=hooks)
    write_csv(paths.train_log(exp), log)
    checkpoints.save(out, model, config_hash, arch=exp.model.arch, log=log)
    final = log[-1]["test_accuracy"] if log else float("nan")
    console.print(f"[green]{out}[/]: dense {exp.model.arch}, test accuracy {final:.2f}%")
