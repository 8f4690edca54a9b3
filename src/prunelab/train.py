"""The training / fine-tuning loop: masks respected, checkpoint every epoch, resumable."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .atomic import load_torch, save_torch
from .config import OptimConfig
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


def training_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: OptimConfig,
    generator: torch.Generator, teacher: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits): cross-entropy, with mixup and distillation from `teacher` when configured."""
    mixed_labels, lam = None, 1.0
    if cfg.mixup_alpha > 0:
        # Drawn from the seeded per-epoch generator, so a resumed run mixes identically.
        draw_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        lam = float(np.random.default_rng(draw_seed).beta(cfg.mixup_alpha, cfg.mixup_alpha))
        perm = torch.randperm(images.shape[0], generator=generator).to(images.device)
        images = lam * images + (1 - lam) * images[perm]
        mixed_labels = labels[perm]
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    if mixed_labels is not None:
        loss = lam * loss + (1 - lam) * F.cross_entropy(logits, mixed_labels)
    alpha = getattr(cfg, "distill_alpha", 0.0)
    if teacher is not None and alpha > 0:
        temperature = cfg.distill_temperature
        with torch.no_grad():
            soft_targets = F.softmax(teacher(images) / temperature, dim=1)
        distill = F.kl_div(F.log_softmax(logits / temperature, dim=1), soft_targets, reduction="batchmean")
        loss = (1 - alpha) * loss + alpha * temperature**2 * distill
    return loss, logits


def fit(
    model: nn.Module,
    train_loader,
    test_loader,
    cfg: OptimConfig,
    state_path: Path,
    config_hash: str,
    masks: MaskSet | None = None,
    description: str = "train",
    regularizer=None,
    teacher: nn.Module | None = None,
) -> list[dict]:
    """Train for cfg.epochs, evaluating and checkpointing (atomically) after each epoch.

    If `state_path` holds a state with the same config hash, training resumes
    after its last finished epoch. Returns the per-epoch log rows.
    `regularizer`, if given, is a callable model -> scalar loss added to the objective;
    `teacher`, if given (and cfg.distill_alpha > 0), is distilled into the model.
    """
    if teacher is not None:
        teacher.eval()
    optimizer = build_optimizer(model, cfg)
    if masks is not None:
        masks.apply()
        masks.attach(optimizer)
    log: list[dict] = []
    start_epoch = 0
    if state_path.is_file():
        state = load_torch(state_path)
        if state.get("config_hash") == config_hash:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            log = list(state["log"])
            start_epoch = int(state["epoch"])
            console.print(f"resuming {description} from {state_path} after epoch {start_epoch}")
    steps_per_epoch = len(train_loader)
    with progress_bar() as progress:
        task = progress.add_task(
            description, total=cfg.epochs * steps_per_epoch, completed=start_epoch * steps_per_epoch, status=""
        )
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            train_loader.set_epoch(epoch)
            mix_generator = torch.Generator().manual_seed(train_loader.seed * 7 + epoch)
            began = time.perf_counter()
            loss_sum = torch.zeros((), device=next(model.parameters()).device)
            reg_sum = torch.zeros_like(loss_sum)
            correct = torch.zeros_like(loss_sum)
            seen = 0
            for step, (images, labels) in enumerate(train_loader):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(cfg, epoch + step / steps_per_epoch)
                loss, logits = training_loss(model, images, labels, cfg, mix_generator, teacher)
                objective = loss
                if regularizer is not None:
                    penalty = regularizer(model)
                    objective = loss + penalty
                    reg_sum += penalty.detach() * labels.numel()
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                # Accumulate on-device: no host sync per step.
                loss_sum += loss.detach() * labels.numel()
                correct += (logits.detach().argmax(1) == labels).sum()
                seen += labels.numel()
                progress.advance(task)
            train_seconds = time.perf_counter() - began
            test = evaluate(model, test_loader)
            row = {
                "epoch": epoch + 1,
                "lr": lr_at(cfg, epoch + 1),
                "train_loss": loss_sum.item() / seen,
                "train_accuracy": 100.0 * correct.item() / seen,
                "test_loss": test["loss"],
                "test_accuracy": test["accuracy"],
                "seconds": train_seconds,
            }
            if regularizer is not None:
                row["regularizer"] = reg_sum.item() / seen
            log.append(row)
            save_torch(
                state_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "log": log,
                    "config_hash": config_hash,
                },
            )
            progress.update(
                task,
                status=f"epoch {epoch + 1}/{cfg.epochs} loss {row['train_loss']:.3f} test {row['test_accuracy']:.2f}%",
            )
            console.print(
                f"{description} epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, "
                f"test {row['test_accuracy']:.2f}% ({train_seconds:.1f}s)"
            )
    return log
