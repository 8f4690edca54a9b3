"""prune with granularity = "filter": dense.pt -> steps of (rank, remove filters, fine-tune)
-> pruned.pt (state_dict + "architecture") and prune_log.csv.

Each step removes channels through the DepGraph (remove.py) towards
1 - ratio x k/steps of the dense channels, then retrains with [prune.finetune]
(warm-up, mixup and distillation from the dense model as configured). Every
step leaves prune_round_<k>.pt, so an interrupted run resumes after the last
finished step (and inside a fine-tune from its per-epoch state).
"""

from __future__ import annotations

import copy
from itertools import islice

import torch
import torch.nn as nn

from .. import paths
from ..config import Experiment
from ..data import DATASETS, load_splits, make_loaders
from ..device import resolve, seed_everything
from ..errors import UserError
from ..evaluate import evaluate
from ..log import console
from ..metrics import flops_by_module
from ..models import build_for
from ..stages import checkpoints
from ..train import fit
from .criteria import make_importance
from .rebuild import architecture_of, out_channels, rebuild_model
from .remove import remove_filters, resolve_targets


def counts(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, fvcore MACs for one image) of a model."""
    return sum(p.numel() for p in model.parameters()), flops_by_module(model, input_shape)[1]


def _resume_step(exp: Experiment, config_hash: str) -> int:
    """The last step whose checkpoint is current (0 if none)."""
    for k in range(exp.prune.filters.steps, 0, -1):
        if checkpoints.is_current(paths.prune_round(exp, k), config_hash):
            return k
    return 0


def _teacher(exp: Experiment, dense: nn.Module, device: torch.device) -> nn.Module | None:
    """A frozen copy of the dense model when [prune.finetune] distills from it."""
    if exp.prune.finetune.distill_alpha <= 0:
        return None
    teacher = copy.deepcopy(dense).to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def prune_filters(exp: Experiment, force: bool = False) -> None:
    cfg = exp.prune
    filters = cfg.filters
    config_hash = exp.stage_hash("prune")
    out = paths.pruned(exp)
    if not force and checkpoints.is_current(out, config_hash):
        console.print(f"[green]{out}[/] is up to date; skipping prune (--force to redo)")
        return
    if cfg.start != "dense":
        raise UserError(
            f"{exp.path}: prune.start: filter pruning removes filters of the trained model; use \"dense\""
        )
    device = resolve(exp)
    seed_everything(exp.seed)
    shape = DATASETS[exp.data.dataset].image_shape
    example = torch.zeros(1, *shape)
    arch = exp.model.arch
    dense_checkpoint = checkpoints.load_current(exp, paths.dense(exp), exp.stage_hash("train"))
    model = build_for(exp)
    checkpoints.load_into(model, dense_checkpoint, paths.dense(exp))
    targets = resolve_targets(exp, model, example)
    dense_channels = out_channels(architecture_of(model, arch))
    dense_params, dense_macs = counts(model, shape)
    teacher = _teacher(exp, model, device)
    train_loader, test_loader = make_loaders(exp, load_splits(exp), device)

    log: list[dict] = []
    done = 0 if force else _resume_step(exp, config_hash)
    if done:
        path = paths.prune_round(exp, done)
        state = checkpoints.load_current(exp, path, config_hash)
        model = rebuild_model(exp, state["architecture"])
        checkpoints.load_into(model, state, path)
        log = list(state["log"])
        console.print(f"resuming filter pruning after step {done}/{filters.steps}")
    model.to(device)
    for k in range(done + 1, filters.steps + 1):
        if force:
            paths.finetune_state(exp, k).unlink(missing_ok=True)
        importance = make_importance(filters.criterion, exp.seed + k)
        train_loader.seed = exp.seed + 7919 * k  # a fresh data order per step (and for Taylor's batches)
        train_loader.set_epoch(0)
        importance.prepare(model, islice(train_loader, filters.taylor_batches), total=filters.taylor_batches)
        remove_filters(model, example.to(device), importance, targets, dense_channels, progress=k / filters.steps)
        params, macs = counts(model, shape)
        after_prune = evaluate(model, test_loader)
        finetune_log = fit(
            model, train_loader, test_loader, cfg.finetune, paths.finetune_state(exp, k), config_hash,
            description=f"step {k}/{filters.steps} fine-tune", teacher=teacher,
        )
        after = evaluate(model, test_loader)
        log.append({
            "round": k,
            "density": params / dense_params,  # parameters kept, all of them (BatchNorm included)
            "compression": dense_params / params,
            "params": params,
            "macs": macs,
            "macs_kept": macs / dense_macs,
            "theoretical_speedup": dense_macs / macs,
            "accuracy_after_prune": after_prune["accuracy"],
            "accuracy_after_finetune": after["accuracy"],
            "loss_after_finetune": after["loss"],
            "finetune_epochs": len(finetune_log),
        })
        checkpoints.save(
            paths.prune_round(exp, k), model, config_hash, arch=arch,
            architecture=architecture_of(model, arch), round=k, log=log,
        )
        paths.finetune_state(exp, k).unlink(missing_ok=True)
        console.print(
            f"step {k}/{filters.steps}: {params:,} params ({dense_params / params:.2f}x fewer), "
            f"{macs:,} MACs ({dense_macs / macs:.2f}x fewer), accuracy {after_prune['accuracy']:.2f}% after "
            f"removal, {after['accuracy']:.2f}% after fine-tuning"
        )
    checkpoints.write_csv(paths.prune_log(exp), log)
    checkpoints.save(out, model, config_hash, arch=arch, architecture=architecture_of(model, arch), log=log)
    console.print(f"[green]{out}[/]: {arch} with filters removed ({filters.criterion}, {filters.steps} steps)")
