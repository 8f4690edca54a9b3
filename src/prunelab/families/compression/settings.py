"""The compression family's config: the [compress] table (Han et al. 2016's trained quantization, or
MASE's fixed point) and its fine-tuning. It prunes nothing itself, so it claims no [prune] table:
it compresses the pruned.pt of whichever family pruned."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...config import OptimConfig, PruneConfig, Section
from ...config.plugins import FamilySchema

NAME = "compression"
QUANTIZERS = ("kmeans", "fixed")
INITS = ("linear", "density", "random")


class SharedWeightFinetune(OptimConfig):
    """[compress.finetune]: training after quantization. k-means: only the centroids (and the biases)
    learn, each centroid's gradient the sum over its weights; fixed point: the float weights learn
    through a straight-through estimator. Weight decay would pull every centroid to zero: off."""

    epochs: int = Field(3, ge=0)
    lr: float = Field(0.001, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class CompressConfig(Section):
    # kmeans: per-layer weight sharing (Han et al. 2016); fixed: uniform fixed point (MASE).
    quantizer: Literal[QUANTIZERS] = "kmeans"  # type: ignore[valid-type]
    # k-means: 2**bits shared values per layer. Han et al.: conv 8, fc 5 (LeNet-300-100: 6).
    conv_bits: int = Field(8, ge=1, le=8)
    fc_bits: int = Field(5, ge=1, le=8)
    # Centroid initialization: linear over [min, max] of the kept weights (Han's best), density
    # (quantiles of their distribution) or random (kept weights drawn with the seed).
    init: Literal[INITS] = "linear"  # type: ignore[valid-type]
    # fixed: signed fixed point with total_bits bits, frac_bits of them after the binary point (MASE 8 / 4).
    total_bits: int = Field(8, ge=2, le=8)
    frac_bits: int = Field(4, ge=0, le=7)
    # Relative-index width (bits per gap between kept weights; a longer gap costs filler zeros).
    # Han et al.: 8 for conv and 5 for fc layers (AlexNet); 5 for both on LeNet.
    conv_index_bits: int = Field(8, ge=1, le=16)
    fc_index_bits: int = Field(5, ge=1, le=16)
    finetune: SharedWeightFinetune = SharedWeightFinetune()

    @model_validator(mode="after")
    def _fraction_fits(self) -> "CompressConfig":
        if self.frac_bits >= self.total_bits:
            raise ValueError(f"frac_bits ({self.frac_bits}) must be below total_bits ({self.total_bits})")
        return self


def _never(prune: PruneConfig) -> bool:
    return False


def _no_prune_table(prune: PruneConfig) -> None:
    raise ValueError(f"the {NAME} family prunes nothing; it compresses any family's pruned model ([compress])")


SCHEMA = FamilySchema(
    name=NAME,
    selected_by="a [compress] table, after any pruning family",
    claims=_never,
    check=_no_prune_table,
    section=("compress", CompressConfig),
    prunes=False,
)
