"""train: the dense model -> results/<name>/dense.pt and train_log.csv."""

from __future__ import annotations

from pathlib import Path

from .. import paths
from ..atomic import load_torch
from ..config import Experiment
from ..data import load_splits, make_loaders
from ..device import resolve, seed_everything
from ..errors import UserError
from ..log import console
from ..models import build_for
from ..pruning import prunable_parameters
from ..regularizers import build_regularizer
from ..train import fit
from . import checkpoints


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
    model = build_for(exp).to(device)
    if exp.train.pretrained is not None:
        _load_pretrained(exp, model)
    regularizer = None
    if exp.train.regularizer is not None:
        # Conv/linear weights, classifier excluded: fixed here rather than read from [prune],
        # which is not part of the train stage's config hash.
        names = prunable_parameters(model)
        chosen = exp.train.regularizer.layers
        for layer in chosen:
            if f"{layer}.weight" not in names:
                layers = ", ".join(name.rsplit(".", 1)[0] for name in names)
                raise UserError(f"{exp.path}: train.regularizer.layers: no prunable layer {layer!r} (prunable: {layers})")
        if chosen:
            names = [name for name in names if name.rsplit(".", 1)[0] in chosen]
        regularizer = build_regularizer(exp.train.regularizer, model, names)
    train_loader, test_loader = make_loaders(exp, load_splits(exp), device)
    log = fit(
        model, train_loader, test_loader, exp.train, paths.train_state(exp), config_hash,
        description="train", regularizer=regularizer,
    )
    checkpoints.write_csv(paths.train_log(exp), log)
    checkpoints.save(out, model, config_hash, arch=exp.model.arch, log=log)
    final = log[-1]["test_accuracy"] if log else float("nan")
    console.print(f"[green]{out}[/]: dense {exp.model.arch}, test accuracy {final:.2f}%")
