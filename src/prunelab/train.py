"""The training / fine-tuning loop: checkpoint every epoch, resumable; families plug in through hooks.

A hook (TrainHook) may act once the optimizer exists (KeepMasks: re-apply masks after
every step), transform the loss (Distill: from a teacher), or add a penalty that is
logged in its own column (a family's sparsity regularizer). The spine's hooks live here.

Under torchrun (distributed.py) the model trains in DistributedDataParallel, each rank on its
share of every global batch; hooks always see the model itself, never the wrapper.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import accel, distributed
from .atomic import load_torch, save_torch
from .config import FinetuneConfig, OptimConfig
from .errors import UserError
from .evaluate import evaluate
from .log import console, progress_bar
from .pruning.masks import MaskSet


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )


def lr_at(cfg: OptimConfig, epoch_progress: float) -> float:
    """Learning rate at a fractional epoch (the schedule is evaluated every step)."""
    if cfg.schedule == "cosine" and cfg.epochs > 0:
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(epoch_progress / cfg.epochs, 1.0)))
    elif cfg.schedule == "step":
        lr = cfg.lr * cfg.gamma ** sum(1 for m in cfg.milestones if epoch_progress >= m)
    else:
        lr = cfg.lr
    if cfg.warmup_epochs > 0 and epoch_progress < cfg.warmup_epochs:
        lr *= epoch_progress / cfg.warmup_epochs
    return lr


class TrainHook:
    """Something `fit` calls: override what you need."""

    column: str | None = None  # a train-log column for the mean of penalty() over the epoch's images

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Once, before the first step (and before a resumed state is loaded)."""

    def transform(self, loss: torch.Tensor, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The batch's loss as logged and optimized (`images` after mixup)."""
        return loss

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A term added to the objective only (logged in `column`), or None."""
        return None


class KeepMasks(TrainHook):
    """Masked weights stay exactly zero: the masks are re-applied after every optimizer step."""

    def __init__(self, masks: MaskSet):
        self.masks = masks

    def attach(self, model, optimizer):
        # The pruner computed the masks from identical weights and data on every rank; rank 0's are
        # sent anyway, so no rank can keep a weight the others zero (a no-op in one process).
        distributed.broadcast_(self.masks.masks.values())
        self.masks.apply()
        self.masks.attach(optimizer)


class Distill(TrainHook):
    """Knowledge distillation: loss = (1 - a) CE + a T^2 KL(teacher || student) at temperature T."""

    def __init__(self, teacher: nn.Module, cfg: FinetuneConfig):
        self.teacher = teacher.eval()
        self.alpha, self.temperature = cfg.distill_alpha, cfg.distill_temperature

    def transform(self, loss, images, logits):
        with torch.no_grad():
            soft_targets = F.softmax(self.teacher(images) / self.temperature, dim=1)
        distill = F.kl_div(F.log_softmax(logits / self.temperature, dim=1), soft_targets, reduction="batchmean")
        return (1 - self.alpha) * loss + self.alpha * self.temperature**2 * distill


def training_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: OptimConfig, generator: torch.Generator,
    batch: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, logits, images as fed): cross-entropy, with mixup when configured. `batch`: the global
    batch's size when this process holds only its share of it (DDP), None in a single process."""
    mixed_labels, lam = None, 1.0
    if cfg.mixup_alpha > 0:
        # Drawn from the seeded per-epoch generator, so a resumed run mixes identically; partners
        # come from the whole global batch (gathered from every rank under DDP), as in one process.
        draw_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        lam = float(np.random.default_rng(draw_seed).beta(cfg.mixup_alpha, cfg.mixup_alpha))
        pool_images, pool_labels, rows = distributed.whole_batch(images, labels, batch)
        # Host-side draws; non_blocking: the copy to a GPU does not wait for the queued kernels.
        perm = torch.randperm(pool_labels.shape[0], generator=generator)[rows].to(images.device, non_blocking=True)
        images = lam * images + (1 - lam) * pool_images[perm]
        mixed_labels = pool_labels[perm]
    logits = model(images)
    if labels.numel() == 0:  # a rank's share of a short last batch can be empty; it still joins the step
        return logits.sum() * 0.0, logits, images
    loss = F.cross_entropy(logits, labels)
    if mixed_labels is not None:
        loss = lam * loss + (1 - lam) * F.cross_entropy(logits, mixed_labels)
    return loss, logits, images


def all_finite(model: nn.Module) -> torch.Tensor:
    """One on-device flag: every parameter and floating buffer (BatchNorm statistics) is finite."""
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return torch.stack([torch.isfinite(t).all() for t in tensors]).all()


def diverged(description: str, epoch: int, cfg: OptimConfig, settings: str | None, what: str,
             state_path: Path) -> UserError:
    """The one-line error for a non-finite loss or weight: the stage, the epoch, the keys to look at.
    Raised before the epoch's state is saved: the previous epoch's state (if any) stays."""
    key = f"{settings}." if settings else ""
    kept = f" (the state after epoch {epoch - 1} stays in {state_path})" if epoch > 1 else ""
    return UserError(
        f"{description} diverged in epoch {epoch}/{cfg.epochs}: {what}; lower {key}lr (now {cfg.lr:g}) or check "
        f"{key}optimizer ({cfg.optimizer}), {key}weight_decay ({cfg.weight_decay:g}) and {key}precision "
        f"({cfg.precision}); nothing was recorded as done{kept}"
    )


def no_learning(loss: float, classes: int, description: str) -> str | None:
    """The warning for a first epoch no better than chance: the mean cross-entropy of a uniform guess
    over `classes` is ln(classes) (nats)."""
    chance = math.log(classes)
    if loss > chance:
        return (f"training loss after epoch 1 was {loss:.4f}, above ln(classes) = {chance:.4f}: "
                f"the model did not start to learn ({description})")
    return None


def fit(
    model: nn.Module,
    train_loader,
    test_loader,
    cfg: OptimConfig,
    state_path: Path,
    config_hash: str,
    description: str = "train",
    hooks: list[TrainHook] | tuple[TrainHook, ...] = (),
    settings: str | None = None,
) -> list[dict]:
    """Train for cfg.epochs, evaluating and checkpointing (atomically) after each epoch.

    If `state_path` holds a state with the same config hash, training resumes
    after its last finished epoch. Returns the per-epoch log rows (a hook with a
    `column` adds one: the mean of its penalty per image). Under torchrun every rank
    resumes from the same state, logs the same rows, and only rank 0 writes the state.

    Divergence guard: at the epoch's one host synchronization, a non-finite loss, penalty, parameter
    or buffer is a UserError naming `description`, the epoch and the keys of `settings` (the config
    table of `cfg`, e.g. "prune.finetune"; None: the keys unprefixed), raised before the
    epoch's state is saved, so the last good epoch's state stays for a rerun. A first epoch whose loss
    is above ln(classes) gets a `warning` in its row (and on the console).
    """
    device = next(model.parameters()).device
    channels_last = accel.uses_channels_last(cfg.channels_last, model, device)
    if channels_last:
        accel.to_memory_order(model, True)  # before the optimizer and hooks see the parameters
    optimizer = build_optimizer(model, cfg)
    for hook in hooks:
        hook.attach(model, optimizer)
    log: list[dict] = []
    start_epoch = 0
    if state_path.is_file():  # the same file on every rank: rank 0 wrote it before a barrier
        state = load_torch(state_path)
        if state.get("config_hash") == config_hash:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            log = list(state["log"])
            start_epoch = int(state["epoch"])
            console.print(f"resuming {description} from {state_path} after epoch {start_epoch}")
    world = distributed.world_size()
    # In one process: the model and the loader themselves. Under torchrun: the model in DDP and
    # this rank's share of every global batch.
    net = accel.compiled(distributed.wrap(model), cfg.compile)
    loader = train_loader.shard(distributed.rank(), world) if world > 1 else train_loader
    steps_per_epoch = len(loader)
    classes = 0  # the logits' width, read from the first step's output
    with progress_bar() as progress, accel.flushed_denormals(cfg.flush_denormal, device):
        task = progress.add_task(
            description, total=cfg.epochs * steps_per_epoch, completed=start_epoch * steps_per_epoch, status=""
        )
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            loader.set_epoch(epoch)
            mix_generator = torch.Generator().manual_seed(loader.seed * 7 + epoch)
            began = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            penalty_sums = {hook.column: torch.zeros_like(loss_sum) for hook in hooks if hook.column}
            correct = torch.zeros_like(loss_sum)
            for step, (images, labels) in enumerate(loader):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(cfg, epoch + step / steps_per_epoch)
                batch = loader.batch_count(step) if world > 1 else None
                images = accel.batch_in_order(images, channels_last)
                with accel.autocast(cfg.precision, device):
                    loss, logits, fed = training_loss(net, images, labels, cfg, mix_generator, batch)
                    for hook in hooks if labels.numel() else ():  # an empty share's loss stays 0
                        loss = hook.transform(loss, fed, logits)
                classes = logits.shape[-1]  # for the first epoch's chance level, ln(classes)
                objective = loss
                if batch is not None:
                    # DDP averages the ranks' gradients: weighting each rank's mean loss by its share of
                    # the global batch (exactly 1 when the batch splits evenly) makes that the batch mean.
                    objective = loss * (labels.numel() * world / batch)
                for hook in hooks:
                    penalty = hook.penalty(model)
                    if penalty is not None:
                        objective = objective + penalty
                        if hook.column:
                            penalty_sums[hook.column] += penalty.detach() * labels.numel()
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                # Accumulate on-device: no host sync per step.
                loss_sum += loss.detach() * labels.numel()
                correct += (logits.detach().argmax(1) == labels).sum()
                progress.advance(task)
            train_seconds = time.perf_counter() - began
            distributed.all_sum_(loss_sum, correct, *penalty_sums.values())  # every rank logs the same row
            # DDP sends rank 0's buffers (BatchNorm statistics) before each forward, so after the last
            # step each rank holds its own: take rank 0's, to evaluate and save the same model everywhere.
            distributed.broadcast_(model.buffers())
            # The epoch's one host synchronization: the sums and the finiteness flag in one transfer.
            loss_total, correct_total, finite, *penalty_totals = torch.stack(
                [loss_sum, correct, all_finite(model).to(loss_sum.dtype), *penalty_sums.values()]).tolist()
            faults = [] if math.isfinite(loss_total) else [f"the training loss is {loss_total}"]
            faults += [f"the {column} is {total}" for column, total in zip(penalty_sums, penalty_totals)
                       if not math.isfinite(total)]
            faults += [] if finite else ["a weight is no longer finite"]
            if faults:  # before the state is saved: the last good epoch's state stays
                raise diverged(description, epoch + 1, cfg, settings, " and ".join(faults), state_path)
            seen = loader.num_samples  # every image once per epoch, over all ranks
            evaluated = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
            test = evaluate(model, test_loader) if evaluated else {"loss": None, "accuracy": None}
            row = {
                "epoch": epoch + 1,
                "lr": lr_at(cfg, epoch + 1),
                "train_loss": loss_total / seen,
                "train_accuracy": 100.0 * correct_total / seen,
                "test_loss": test["loss"],
                "test_accuracy": test["accuracy"],
                "seconds": train_seconds,
            }
            for column, total in zip(penalty_sums, penalty_totals):
                row[column] = total / seen
            warning = no_learning(row["train_loss"], classes, description) if epoch == 0 and classes else None
            if warning:
                row["warning"] = warning
                console.print(f"[yellow]warning:[/] {warning}")
            log.append(row)
            with distributed.rank_zero_writes() as writing:
                if writing:
                    save_torch(state_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                            "epoch": epoch + 1, "log": log, "config_hash": config_hash})
            tested = f"test {row['test_accuracy']:.2f}%" if evaluated else "not tested"
            progress.update(task, status=f"epoch {epoch + 1}/{cfg.epochs} loss {row['train_loss']:.3f} {tested}")
            console.print(f"{description} epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, "
                          f"{tested} ({train_seconds:.1f}s)")
    if channels_last:
        accel.to_memory_order(model, False)  # artifacts and later stages see the standard layout
    return log
