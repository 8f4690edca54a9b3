"""[prune.filters]: structured filter pruning options (Li et al. 2017, Pruning Engine)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from .config_base import Section


class FilterConfig(Section):
    # How filters are ranked: l1 / l2 norm of the filter, taylor (mean |activation x gradient|),
    # kmeans (cluster filters, keep representatives), random (baseline).
    criterion: Literal["l1", "l2", "taylor", "kmeans", "random"] = "l1"
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
