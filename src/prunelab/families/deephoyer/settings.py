"""The DeepHoyer family's config: [train.regularizer], prune.threshold / prune.std_ratio, and which
[prune] tables it takes (method = "threshold", element-wise or by whole filters and channels)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from ...config import PruneConfig, Section
from ...config.plugins import FamilySchema
from .regularizers import REGULARIZERS, regularizer_kind

METHOD = "threshold"
STRUCTURE = "structure"  # granularity: whole output filters / input channels (rows / columns of a linear weight)
STRUCTURE_RULES = ("group_norm", "element")
COVERAGES = ("weights", "all_weights", "all_parameters")


class RegularizerConfig(Section):
    """A sparsity-inducing penalty added to the training loss; see regularizers.py."""

    # Element-wise: l1, hoyer, hoyer_square, transformed_l1; structural: group_lasso, group_hoyer_square.
    kind: Literal[tuple(REGULARIZERS.names())]  # type: ignore[valid-type]  (the registry's names)
    # Multiplies the penalty summed over the prunable weights; no default, the useful scale
    # differs by orders of magnitude between regularizers.
    decay: float = Field(ge=0)
    # Module names to regularize (e.g. ["conv1", "conv2"]); empty = every conv/linear weight
    # but the classifier. Structural FLOPs live in the convs; fc columns cost accuracy.
    layers: list[str] = []
    # Which parameters the penalty covers. "weights": conv/linear weights without the classifier
    # (prunelab's default); "all_weights": every conv/linear weight, classifier included (DeepHoyer's
    # mnist/CNN/structure.py); "all_parameters": every parameter, biases and classifier included
    # (DeepHoyer's mnist/CNN/element.py; element-wise kinds only, a bias has no groups).
    coverage: Literal[COVERAGES] = "weights"  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _groups_need_weights(self) -> "RegularizerConfig":
        if self.coverage == "all_parameters" and regularizer_kind(self.kind) == "structure":
            raise ValueError(f'coverage: "all_parameters" includes biases, which {self.kind} cannot group; '
                             'use "all_weights"')
        return self


class DeepHoyerTrain(Section):
    """Keys added to [train]."""

    regularizer: Optional[RegularizerConfig] = None


class DeepHoyerPrune(Section):
    """Keys added to [prune]: exactly one of a fixed threshold (units of |w|, or of group norms)
    or std_ratio x std of each layer's weights (of its group norms for granularity = "structure")."""

    threshold: Optional[float] = Field(None, gt=0)
    std_ratio: Optional[float] = Field(None, gt=0)
    # How granularity = "structure" zeroes weights. "element" (the default): the element-wise rule
    # (|w| against the threshold), then all-zero filters and channels are what is left, as DeepHoyer's
    # structural results do it (mnist/CNN/prun_tune_V.py prunes by std; util.print_nonzeros counts).
    # "group_norm": whole filters / input channels whose L2 norm is at most the threshold (of the
    # group norms' std with std_ratio), a rule of prunelab's own.
    structure_rule: Literal[STRUCTURE_RULES] = "element"  # type: ignore[valid-type]
    # How a threshold is computed and applied. "prunelab": the sample std (over n - 1), |w| > t kept.
    # "deephoyer": numpy's std (over n) and |w| < t dropped (|w| = t kept), as DeepHoyer's
    # pruning loops do (mnist/MLP/prun_tune_V.py and _T.py: np.where(abs(w) < t, 0, w); net/prune.py the same).
    threshold_convention: Literal["prunelab", "deephoyer"] = "prunelab"


def claims(prune: PruneConfig) -> bool:
    return prune.method == METHOD and prune.granularity in ("element", STRUCTURE)


def check(prune: PruneConfig) -> None:
    if not claims(prune):
        raise ValueError(f'the deephoyer family prunes with method = "{METHOD}", granularity = "element" or '
                         f'"{STRUCTURE}"')
    if prune.targets():
        raise ValueError(f'method = "{METHOD}" takes threshold or std_ratio, not {", ".join(prune.targets())}')
    rules = [key for key in ("threshold", "std_ratio") if getattr(prune, key) is not None]
    if len(rules) != 1:
        raise ValueError(f'method = "{METHOD}" needs exactly one of threshold, std_ratio'
                         + (f" (got {', '.join(rules)})" if rules else ""))
    if prune.std_ratio is not None and prune.scope == "global":
        raise ValueError("std_ratio is a per-layer rule; use scope = \"layer\"")


SCHEMA = FamilySchema(
    name="deephoyer",
    selected_by=f'method = "{METHOD}"',
    claims=claims,
    check=check,
    prune_fields=DeepHoyerPrune,
    train_fields=DeepHoyerTrain,
    methods=(METHOD,),
    granularities=(STRUCTURE,),
    sweep_kind="regularizer",
)
