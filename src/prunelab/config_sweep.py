"""[sweep]: a grid of --set overrides over a base experiment; each cell is a full experiment."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from .config_base import Section


class SweepConfig(Section):
    # Which sweep report to write: at_init (methods x compressions) or regularizer (frontier).
    kind: Literal["at_init", "regularizer"]
    # Dotted config key -> the values it takes; the cells are the product of the axes.
    grid: dict[str, list[Any]] = Field(min_length=1)
    # Extra override sets, each crossed with the grid ({} = the plain cell).
    variants: list[dict[str, Any]] = [{}]
    # Stages each cell runs, in order; finished cells are skipped.
    stages: list[Literal["train", "prune", "test"]] = ["train", "prune", "test"]
    # at_init: the compression (total / nonzero prunable weights) whose per-layer sparsity, FLOPs
    # and weight histograms the report shows; None = the highest compression of the sweep.
    report_compression: Optional[float] = Field(None, ge=1)
    # Markdown appended to the sweep report as its discussion (written after looking at the results).
    discussion: str = ""

    @model_validator(mode="after")
    def _axes_not_empty(self) -> "SweepConfig":
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{key} has no values")
        return self
