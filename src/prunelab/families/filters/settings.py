"""The filters family's config: [prune.filters] (Li et al. 2017, Pruning Engine), and which [prune]
tables it takes (granularity = "filter")."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from ...config import PruneConfig, Section
from ...config.plugins import FamilySchema
from .criteria import CRITERIA

GRANULARITY = "filter"


class FilterConfig(Section):
    # How filters are ranked: l1 / l2 norm of the filter, taylor (mean |activation x gradient|),
    # kmeans (cluster filters, keep representatives), random (baseline).
    criterion: Literal[tuple(CRITERIA.names())] = "l1"  # type: ignore[valid-type]  (the registry's names)
    # Fraction of output channels removed: one uniform ratio, or per conv layer by module name.
    ratio: Optional[float] = Field(None, ge=0, lt=1)
    layer_ratios: dict[str, float] = {}
    # Rank filters across all layers at once (needs `ratio`) instead of per layer.
    global_ranking: bool = False
    # Layers whose output channels are never removed (the classifier always is).
    ignored_layers: list[str] = []
    # Removal in this many steps, with [prune.finetune] epochs of retraining after each.
    steps: int = Field(1, ge=1)
    # criterion = "taylor": training batches (of data.batch_size images) averaged before each step.
    taylor_batches: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _one_target(self) -> "FilterConfig":
        if self.ratio is None and not self.layer_ratios:
            raise ValueError("give ratio or layer_ratios")
        for layer, value in self.layer_ratios.items():
            if not 0 <= value < 1:
                raise ValueError(f"layer_ratios.{layer} must be in [0, 1) (got {value})")
        if self.global_ranking and self.ratio is None:
            raise ValueError("global_ranking needs ratio")
        return self


class FiltersPrune(Section):
    """Keys added to [prune]."""

    filters: Optional[FilterConfig] = None


def claims(prune: PruneConfig) -> bool:
    return prune.granularity == GRANULARITY


def check(prune: PruneConfig) -> None:
    if prune.granularity != GRANULARITY:
        raise ValueError(f'the filters family prunes with granularity = "{GRANULARITY}"')
    if prune.filters is None:
        raise ValueError(f'granularity = "{GRANULARITY}" needs a [prune.filters] table')
    if prune.start != "dense":
        raise ValueError('start: filter pruning removes filters of the trained model; use "dense"')


SCHEMA = FamilySchema(
    name="filters",
    selected_by=f'granularity = "{GRANULARITY}"',
    claims=claims,
    check=check,
    prune_fields=FiltersPrune,
    granularities=(GRANULARITY,),
)
