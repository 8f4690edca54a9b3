"""The rounds of pruning at initialization: optional dense pre-training, score, select exactly,
apply the controls, log target vs achieved density and collapsed layers."""

from __future__ import annotations

import torch

from ... import paths
from ...config import Experiment
from ...family import PruneContext
from ...pruning.mask_pruner import MaskPruner
from ...pruning.pattern_record import pattern_text
from ...report.experiment import rounds_description, target_text
from ...train import fit
from .controls import apply_controls, round_checks
from ...errors import UserError
from .scores import scored_masks
from .ties import ZeroScoreTies, zero_score_kept


def pretrain(ctx: PruneContext) -> list[dict]:
    """`pre_epochs` of dense training with [train]'s recipe before scoring (magnitude after some
    training); kept in <results_root>/_pretrained/ and shared by runs with the same seed, data,
    model and [train]. Returns the prune_train_log rows."""
    exp = ctx.exp
    pre = exp.train.model_copy(update={"epochs": exp.prune.at_init.pre_epochs})
    key = exp.model_copy(update={"train": pre}).stage_hash("train")  # a dense run of pre_epochs epochs
    rows = fit(ctx.model, ctx.train_loader, ctx.test_loader, pre, paths.pretrain_state(exp, key), key,
               description="pre-train", settings="train")  # [train]'s recipe
    return [{"phase": "pre-train", "round": 0, **row} for row in rows]


class AtInitPruner(MaskPruner):
    patterns = True

    def __init__(self, ctx: PruneContext):
        epoch_log = pretrain(ctx) if ctx.exp.prune.at_init.pre_epochs > 0 else []
        super().__init__(ctx)
        self.epoch_log = epoch_log
        # The weights before masking, which the shuffle control re-exposes.
        self.before = ({name: value.detach().clone() for name, value in self.model.state_dict().items()}
                       if ctx.exp.prune.at_init.shuffle else None)

    def round_masks(self, k: int, current: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        try:
            masks, scores = scored_masks(self.exp.prune, k, self.model, current, self.ctx.train_loader)
        except ZeroScoreTies as error:
            raise UserError(f"{self.exp.path}: prune.at_init.{error}") from None
        self.zero_kept = zero_score_kept(scores, masks)
        return masks

    def after_update(self, k: int) -> dict:
        controls = apply_controls(self.exp, self.model, self.masks, self.before)
        return round_checks(self.exp, k, self.model, self.masks, controls, self.zero_kept)


def describe(exp: Experiment) -> str:
    return rounds_description(exp.prune, pattern_text(exp.prune) or target_text(exp.prune))
