"""The magnitude family's config: Han et al.'s quality parameter, and which [prune] tables it takes."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from ...config import PruneConfig, Section
from ...config.plugins import FamilySchema

METHOD = "magnitude"


class MagnitudePrune(Section):
    """Keys added to [prune]."""

    # Han et al. 2015: threshold = quality x std of the layer's dense weights, raised linearly to the full
    # quality over the rounds; given instead of a sparsity, density or compression target.
    quality: Optional[float] = Field(None, gt=0)


def claims(prune: PruneConfig) -> bool:
    return prune.method == METHOD and prune.granularity == "element" and prune.start == "dense"


def check(prune: PruneConfig) -> None:
    if prune.method != METHOD or prune.granularity != "element":
        raise ValueError(f'the magnitude family prunes with method = "{METHOD}", granularity = "element"')
    prune.check_one_target(alternatives=("quality",))
    if prune.quality is not None and prune.scope == "global":
        raise ValueError("quality is a per-layer rule; use scope = \"layer\"")


SCHEMA = FamilySchema(
    name="magnitude",
    selected_by=f'method = "{METHOD}" on a trained model (start = "dense")',
    claims=claims,
    check=check,
    prune_fields=MagnitudePrune,
    methods=(METHOD,),
)
