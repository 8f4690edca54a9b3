"""prune: dense.pt -> rounds of (mask, fine-tune under the masks) -> pruned.pt, prune_log.csv and
prune_train_log.csv (every training epoch's train and test loss)."""

from __future__ import annotations

from .. import paths
from ..config import Experiment
from ..data import load_splits, make_loaders
from ..device import resolve, seed_everything
from ..errors import UserError
from ..evaluate import evaluate
from ..log import console
from ..models import build_for
from ..pruning import MaskSet, at_init, prunable_parameters, round_masks
from ..train import fit
from . import checkpoints


def _check_layer_names(exp: Experiment, names: list[str]) -> None:
    layers = [name.rsplit(".", 1)[0] for name in names]
    for layer in exp.prune.layer_sparsity:
        if layer not in layers:
            raise UserError(
                f"{exp.path}: prune.layer_sparsity.{layer}: no prunable layer of that name "
                f"(prunable: {', '.join(dict.fromkeys(layers))})"
            )


def _resume_round(exp: Experiment, config_hash: str) -> int:
    """The last round whose checkpoint is current (0 if none)."""
    for k in range(exp.prune.iterations, 0, -1):
        if checkpoints.is_current(paths.prune_round(exp, k), config_hash):
            return k
    return 0


def prune(exp: Experiment, force: bool = False) -> None:
    if exp.prune is None:
        raise UserError(f"{exp.path}: prune: section missing; add a [prune] table")
    cfg = exp.prune
    if cfg.granularity == "filter":  # physically removed filters: a stage of its own
        from ..structured.stage import prune_filters

        return prune_filters(exp, force=force)
    config_hash = exp.stage_hash("prune")
    out = paths.pruned(exp)
    if not force and checkpoints.is_current(out, config_hash):
        console.print(f"[green]{out}[/] is up to date; skipping prune (--force to redo)")
        return
    device = resolve(exp)
    seed_everything(exp.seed)
    model = build_for(exp).to(device)
    if cfg.start == "dense":
        dense = checkpoints.load_current(exp, paths.dense(exp), exp.stage_hash("train"))
        checkpoints.load_into(model, dense, paths.dense(exp))
    at_init.check(exp)
    train_loader, test_loader = make_loaders(exp, load_splits(exp), device)
    epoch_log: list[dict] = []  # every training epoch of this stage, for prune_train_log.csv
    if cfg.start == "init" and cfg.at_init.pre_epochs > 0:  # score after a few epochs of dense training ([train]'s recipe)
        pre = exp.train.model_copy(update={"epochs": cfg.at_init.pre_epochs})
        key = exp.model_copy(update={"train": pre}).stage_hash("train")  # a dense run of pre_epochs epochs
        pre_log = fit(model, train_loader, test_loader, pre, paths.pretrain_state(exp, key), key, description="pre-train")
        epoch_log += [{"phase": "pre-train", "round": 0, **row} for row in pre_log]
    names = prunable_parameters(model, cfg.prune_bias, cfg.prune_classifier)
    _check_layer_names(exp, names)
    params = dict(model.named_parameters())
    dense_std = {name: params[name].detach().std().item() for name in names}  # for quality x std
    masks = MaskSet.ones(model, names)
    before_masks = at_init.snapshot(exp, model)  # for the shuffle control

    log: list[dict] = []
    done = 0 if force else _resume_round(exp, config_hash)
    if done:
        state = checkpoints.load_current(exp, paths.prune_round(exp, done), config_hash)
        model.load_state_dict(state["model"])
        masks = MaskSet(model, state["masks"])
        log = list(state["log"])
        epoch_log = list(state.get("epoch_log", epoch_log))
        console.print(f"resuming prune after round {done}/{cfg.iterations}")
    for k in range(done + 1, cfg.iterations + 1):
        if force:
            paths.finetune_state(exp, k).unlink(missing_ok=True)
        masks.update(round_masks(cfg, k, model, masks.masks, dense_std, loader=train_loader))
        at_init_row = at_init.after_masks(exp, k, model, masks, before_masks)  # controls, collapse, target
        after_prune = evaluate(model, test_loader)
        train_loader.seed = exp.seed + 7919 * k  # a fresh data order per round
        finetune_cfg = cfg.finetune
        if k == cfg.iterations and cfg.last_round_epochs is not None:
            finetune_cfg = cfg.finetune.model_copy(update={"epochs": cfg.last_round_epochs})
        finetune_log = fit(
            model, train_loader, test_loader, finetune_cfg, paths.finetune_state(exp, k), config_hash,
            masks=masks, description=f"round {k}/{cfg.iterations} fine-tune",
        )
        epoch_log += [{"phase": "fine-tune", "round": k, **row} for row in finetune_log]
        after = evaluate(model, test_loader)
        density = masks.density()
        row = {
            "round": k,
            "density": density,
            "compression": 1 / density,
            "accuracy_after_prune": after_prune["accuracy"],
            "accuracy_after_finetune": after["accuracy"],
            "loss_after_finetune": after["loss"],
            "finetune_epochs": len(finetune_log),
            **at_init_row,
        }
        log.append(row)
        checkpoints.save(
            paths.prune_round(exp, k), model, config_hash, masks=masks.state(), arch=exp.model.arch, round=k, log=log,
            epoch_log=epoch_log,
        )
        paths.finetune_state(exp, k).unlink(missing_ok=True)
        console.print(
            f"round {k}/{cfg.iterations}: density {100 * density:.2f}% ({1 / density:.2f}x), "
            f"accuracy {after_prune['accuracy']:.2f}% after pruning, {after['accuracy']:.2f}% after fine-tuning"
        )
    checkpoints.write_csv(paths.prune_log(exp), log)
    checkpoints.write_csv(paths.prune_train_log(exp), epoch_log)
    checkpoints.save(out, model, config_hash, masks=masks.state(), arch=exp.model.arch, log=log)
    console.print(f"[green]{out}[/]: {1 / masks.density():.2f}x compression of the prunable weights")
