"""The steps of filter pruning: rank filters, remove them through the DepGraph (remove.py), and let
the prune stage retrain with [prune.finetune] (warm-up, mixup and distillation as configured).

Step k removes channels towards 1 - ratio x k/steps of the dense channels. Each step's
checkpoint holds a plain state dict plus an "architecture" description (rebuild.py), so an
interrupted run resumes after the last finished step without pickle or re-pruning.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import torch
import torch.nn as nn

from ... import checkpoints
from ...data.spec import spec_for
from ...device import round_data_seed
from ...family import PruneContext
from ...metrics import flops_by_module
from .criteria import make_importance
from .rebuild import architecture_of, out_channels, rebuild_model
from .remove import remove_filters, resolve_targets


def counts(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, fvcore MACs for one image) of a model."""
    return sum(p.numel() for p in model.parameters()), flops_by_module(model, input_shape)[1]


class FiltersPruner:
    unit = "step"

    def __init__(self, ctx: PruneContext):
        self.ctx, self.exp, self.model = ctx, ctx.exp, ctx.model
        self.filters = ctx.exp.prune.filters
        self.rounds = self.filters.steps
        self.epoch_log: list[dict] = []
        self.shape = spec_for(ctx.exp).image_shape
        self.example = torch.zeros(1, *self.shape, device=ctx.device)  # traced by the DepGraph
        self.targets = resolve_targets(ctx.exp, self.model, self.example)
        self.dense_channels = out_channels(architecture_of(self.model, ctx.exp.model.arch))
        self.dense_params, self.dense_macs = counts(self.model, self.shape)
        # (params, MACs) of the model as it is: they change only when filters are removed or
        # a checkpoint is restored, so fvcore traces the model once per step, not per question.
        self.now = (self.dense_params, self.dense_macs)

    def prune_round(self, k: int) -> dict:
        importance = make_importance(self.filters.criterion, self.exp.seed + k)
        loader = self.ctx.train_loader
        loader.seed = round_data_seed(self.exp, k)  # the step's data order, also for Taylor's batches
        loader.set_epoch(0)
        importance.prepare(self.model, islice(loader, self.filters.taylor_batches), total=self.filters.taylor_batches)
        remove_filters(self.model, self.example, importance, self.targets, self.dense_channels,
                       progress=k / self.rounds)
        self.now = counts(self.model, self.shape)
        return {}

    def sizes(self) -> dict:
        params, macs = self.now
        return {
            "density": params / self.dense_params,  # parameters kept, all of them (BatchNorm included)
            "compression": self.dense_params / params,
            "params": params,
            "macs": macs,
            "macs_kept": macs / self.dense_macs,
            "theoretical_speedup": self.dense_macs / macs,
        }

    def state(self) -> dict:
        return {"architecture": architecture_of(self.model, self.exp.model.arch)}

    def restore(self, checkpoint: dict, path: Path) -> None:
        model = rebuild_model(self.exp, checkpoint["architecture"])
        checkpoints.load_into(model, checkpoint, path)
        self.model = model.to(self.ctx.device)
        self.now = counts(self.model, self.shape)

    def hooks(self) -> list:
        return []

    def summary(self) -> str:
        params, macs = self.now
        return (f"{params:,} params ({self.dense_params / params:.2f}x fewer), "
                f"{macs:,} MACs ({self.dense_macs / macs:.2f}x fewer)")
