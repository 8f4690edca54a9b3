"""The mase family's config: activation-pruning keys in [prune], and which [prune] tables it takes
(method = "l1-norm" | "l2-norm", or granularity = "kernel" | "channel"; "random" too, see claims)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...config import PruneConfig, Section
from ...config.plugins import FamilySchema

NAME = "mase"
# Weight ranking: the norm of each group's weights, or a seeded random draw (weights.py).
METHODS = ("l1-norm", "l2-norm", "random")
NORMS = ("l1-norm", "l2-norm")
# element: single weights (the spine's); kernel: each (out, in) kh x kw kernel of a conv, a single
# weight of a linear; channel: each output channel (conv filter, linear row).
GRANULARITIES = ("kernel", "channel")
# Input channels / neurons ranked over the calibration batches (activation_ranking.py).
ACTIVATION_METHODS = ("l1-norm", "l2-norm", "apoz", "random", "similarity")


class MasePrune(Section):
    """Keys added to [prune]: activation pruning, after the weights in the last round."""

    # Fraction of each layer's input channels (conv feature maps, linear neurons) zeroed at run time,
    # for every conv/linear layer but the first (its input is the image); 0 = off.
    activation_sparsity: float = Field(0.0, ge=0, lt=1)
    # l1-norm: mean |a| per channel; l2-norm: root mean square; apoz: the channels most often exactly
    # zero go (Hu et al. 2016); random: seeded; similarity: near-duplicate channels (cosine) go.
    activation_method: Literal[ACTIVATION_METHODS] = "l1-norm"  # type: ignore[valid-type]
    # Training batches (data.batch_size images, a seeded shuffle without augmentation) the ranking sees.
    calibration_batches: int = Field(10, ge=1)


def claims(prune: PruneConfig) -> bool:
    """A norm method or a mase granularity. method = "random" at granularity "element" is the at_init
    family's (random pruning of a trained model); the mase one needs prune.family = "mase"."""
    return prune.method in NORMS or prune.granularity in GRANULARITIES


def check(prune: PruneConfig) -> None:
    if prune.method not in METHODS:
        raise ValueError(f"the {NAME} family ranks weights by method = {' | '.join(METHODS)} (got {prune.method!r})")
    if prune.granularity not in ("element", *GRANULARITIES):
        raise ValueError(f"the {NAME} family prunes at granularity = element | {' | '.join(GRANULARITIES)}")
    if prune.start != "dense":
        raise ValueError(f'start: the {NAME} family prunes a trained model; use "dense"')
    if prune.prune_bias:
        raise ValueError(f"prune_bias: the {NAME} family masks weights only (as MASE's pass does)")
    prune.check_one_target()


SCHEMA = FamilySchema(
    name=NAME,
    selected_by=(f'method = {" | ".join(NORMS)}, or granularity = {" | ".join(GRANULARITIES)} '
                 f'(method = "random" element-wise: family = "{NAME}")'),
    claims=claims,
    check=check,
    prune_fields=MasePrune,
    methods=METHODS,
    granularities=GRANULARITIES,
)
