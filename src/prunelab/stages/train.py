"""train: the dense model -> <results_root>/<name>/dense.pt and train_log.csv."""

from __future__ import annotations

from pathlib import Path

from .. import checkpoints, distributed, paths, provenance
from ..atomic import load_torch, write_csv
from ..config import Experiment
from ..data.loader import load_splits, make_loaders
from ..device import resolve, seed_everything
from ..errors import UserError
from ..family import FAMILIES
from ..log import console
from ..train import fit
from ..replicates import over_seeds


def load_pretrained(exp: Experiment) -> tuple[Path, dict] | None:
    """The checkpoint `train.pretrained` names (verified), or None when training starts fresh."""
    if exp.train.pretrained is None:
        return None
    source = Path(exp.train.pretrained)
    if not source.is_file():
        where = "" if source.is_absolute() else f" (relative to the current directory, {Path.cwd()})"
        raise UserError(f"{exp.path}: train.pretrained: {source} not found{where}; "
                        f"{provenance.other_config_hint(source, 'train')}")
    try:
        return source, load_torch(source)
    except UserError as error:
        raise UserError(f"{exp.path}: train.pretrained: {error}") from None


@over_seeds
def train(exp: Experiment, force: bool = False) -> None:
    """Train the dense model (resumable) -> dense.pt, train_log.csv."""
    config_hash = exp.stage_hash("train")
    out = paths.dense(exp)
    pretrained = load_pretrained(exp)
    made_from = {} if pretrained is None else {"pretrained": pretrained[1]["digest"]}
    if not force and checkpoints.is_current(out, config_hash, made_from):
        console.print(f"[green]{out}[/] is up to date; skipping train (--force to redo)")
        return
    device = distributed.setup(exp, resolve(exp))  # under torchrun: join the other ranks (distributed.py)
    if force:
        with distributed.rank_zero_writes() as writing:
            if writing:
                paths.train_state(exp).unlink(missing_ok=True)
    seed_everything(exp.seed)
    model = checkpoints.build_for(exp).to(device)
    if pretrained is not None:
        checkpoints.load_into(model, pretrained[1], pretrained[0])
    hooks = [hook for pruning in FAMILIES.values() for hook in pruning.train_hooks(exp, model)]
    train_loader, test_loader = make_loaders(exp, load_splits(exp), device)
    log = fit(model, train_loader, test_loader, exp.train, paths.train_state(exp), config_hash, description="train",
              hooks=hooks, settings="train")
    with distributed.rank_zero_writes() as writing:
        if writing:
            write_csv(paths.train_log(exp), log)
            checkpoints.save(out, model, config_hash, inputs=made_from, arch=exp.model.arch, log=log,
                             made_by=provenance.made_by(exp, device))
            paths.train_state(exp).unlink(missing_ok=True)  # dense.pt holds everything a later stage needs
    # train.epochs = 0 keeps the pretrained weights as they are: nothing was evaluated here
    state = (f"test accuracy {log[-1]['test_accuracy']:.2f}%" if log
             else "train.pretrained as it is (0 epochs; `test` measures it)")
    console.print(f"[green]{out}[/]: dense {exp.model.arch}, {state}")
