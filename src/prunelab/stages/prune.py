"""prune: dense.pt (or a fresh init) -> rounds of (prune, fine-tune) -> pruned.pt, prune_log.csv and
prune_train_log.csv (every training epoch's train and test loss).

One loop for every family: skip if current, resume after the last saved round, then for
each round k: the family prunes (family.Pruner.prune_round), evaluate, fine-tune with the
family's hooks (and distillation from the starting model when configured), evaluate, log,
save prune_round_<k>.pt.
"""

from __future__ import annotations

import copy

import torch.nn as nn

from .. import checkpoints, distributed, family, paths, provenance
from ..atomic import write_csv
from ..config import Experiment
from ..data.loader import load_splits, make_loaders
from ..device import resolve, round_data_seed, seed_everything
from ..errors import UserError
from ..evaluate import evaluate
from ..family import PruneContext
from ..log import console
from ..train import Distill, fit
from ..replicates import over_seeds

def _resume_round(exp: Experiment, rounds: int, config_hash: str, inputs: dict[str, str]) -> int:
    """The last round whose checkpoint is current (0 if none)."""
    for k in range(rounds, 0, -1):
        if checkpoints.is_current(paths.prune_round(exp, k), config_hash, inputs):
            return k
    return 0


def _start(exp: Experiment) -> dict | None:
    """The verified dense checkpoint pruning starts from, or None when it starts from a fresh init."""
    if exp.prune.start != "dense":
        return None
    return checkpoints.load_current(exp, paths.dense(exp), exp.stage_hash("train"))


def _teacher(model: nn.Module) -> nn.Module:
    """A frozen copy of the model before pruning, to distill from."""
    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


@over_seeds
def prune(exp: Experiment, force: bool = False) -> None:
    """Prune in rounds with fine-tuning (resumable) -> pruned.pt, prune_log.csv, prune_train_log.csv."""
    if exp.prune is None:
        raise UserError(f"{exp.path}: prune: section missing; add a [prune] table")
    cfg = exp.prune
    config_hash = exp.stage_hash("prune")
    out = paths.pruned(exp)
    dense = _start(exp)
    inputs = {} if dense is None else {"dense": dense["digest"]}
    if not force and checkpoints.is_current(out, config_hash, inputs):
        console.print(f"[green]{out}[/] is up to date; skipping prune (--force to redo)")
        return
    device = distributed.setup(exp, resolve(exp))  # under torchrun: join the other ranks (distributed.py)
    seed_everything(exp.seed)
    model = checkpoints.build_for(exp)
    if dense is not None:
        checkpoints.load_into(model, dense, paths.dense(exp))
    model.to(device)
    train_loader, test_loader = make_loaders(exp, load_splits(exp), device)
    distill = []
    if cfg.finetune.distill_alpha > 0:
        if cfg.start != "dense":
            raise UserError(f"{exp.path}: prune.finetune.distill_alpha: distillation needs a trained model to "
                            "distill from (prune.start = \"dense\")")
        distill = [Distill(_teacher(model), cfg.finetune)]
    pruner = family.select(cfg).pruner(PruneContext(exp, model, train_loader, test_loader, device))
    epoch_log = list(pruner.epoch_log)  # every training epoch of this stage, for prune_train_log.csv
    log: list[dict] = []
    done = 0 if force else _resume_round(exp, pruner.rounds, config_hash, inputs)
    if done:
        path = paths.prune_round(exp, done)
        state = checkpoints.load_current(exp, path, config_hash)
        pruner.restore(state, path)
        log = list(state["log"])
        epoch_log = list(state.get("epoch_log", epoch_log))
        console.print(f"resuming prune after {pruner.unit} {done}/{pruner.rounds}")
    for k in range(done + 1, pruner.rounds + 1):
        if force:
            with distributed.rank_zero_writes() as writing:
                if writing:
                    paths.finetune_state(exp, k).unlink(missing_ok=True)
        extra = pruner.prune_round(k)
        after_prune = evaluate(pruner.model, test_loader)
        train_loader.seed = round_data_seed(exp, k)
        finetune_cfg = cfg.finetune
        if k == pruner.rounds and cfg.last_round_epochs is not None:
            finetune_cfg = cfg.finetune.model_copy(update={"epochs": cfg.last_round_epochs})
        finetune_log = fit(
            pruner.model, train_loader, test_loader, finetune_cfg, paths.finetune_state(exp, k), config_hash,
            description=f"{pruner.unit} {k}/{pruner.rounds} fine-tune", hooks=pruner.hooks() + distill,
            settings="prune.finetune",
        )
        epoch_log += [{"phase": "fine-tune", "round": k, **row} for row in finetune_log]
        after = evaluate(pruner.model, test_loader)
        log.append({
            "round": k,
            **pruner.sizes(),
            "accuracy_after_prune": after_prune["accuracy"],
            "accuracy_after_finetune": after["accuracy"],
            "loss_after_finetune": after["loss"],
            "finetune_epochs": len(finetune_log),
            **extra,
        })
        with distributed.rank_zero_writes() as writing:
            if writing:
                checkpoints.save(paths.prune_round(exp, k), pruner.model, config_hash, inputs=inputs,
                                 **pruner.state(), arch=exp.model.arch, round=k, log=log, epoch_log=epoch_log)
                paths.finetune_state(exp, k).unlink(missing_ok=True)
        console.print(
            f"{pruner.unit} {k}/{pruner.rounds}: {pruner.summary()}, accuracy {after_prune['accuracy']:.2f}% "
            f"after pruning, {after['accuracy']:.2f}% after fine-tuning"
        )
    with distributed.rank_zero_writes() as writing:
        if writing:
            write_csv(paths.prune_log(exp), log)
            write_csv(paths.prune_train_log(exp), epoch_log)
            checkpoints.save(out, pruner.model, config_hash, inputs=inputs, **pruner.state(), arch=exp.model.arch,
                             log=log, made_by=provenance.made_by(exp, device))
    console.print(f"[green]{out}[/]: {pruner.summary()}")
