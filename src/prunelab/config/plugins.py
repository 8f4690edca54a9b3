"""What each pruning family adds to the config, and which family a [prune] table selects.

A family's FamilySchema is registered together with its behaviour (prunelab.family.register);
it lives here, below the family registry, so that the config never depends on the families'
code: schema.py composes the config classes from FAMILY_SCHEMAS alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..registry import Registry
from .base import Section
from .sections import PruneConfig


@dataclass(frozen=True)
class FamilySchema:
    name: str  # the prune.family value
    selected_by: str  # how a [prune] table selects the family, for messages, e.g. 'granularity = "filter"'
    claims: Callable[[PruneConfig], bool]  # selects it when prune.family is not given
    check: Callable[[PruneConfig], None]  # refuses (ValueError, one line) a [prune] table it cannot run
    prune_fields: Optional[type[Section]] = None  # keys it adds to [prune] (a Section's fields)
    train_fields: Optional[type[Section]] = None  # keys it adds to [train]
    methods: tuple[str, ...] = ()  # prune.method values it takes
    granularities: tuple[str, ...] = ()  # prune.granularity values it adds to "element"
    sweep_kind: Optional[str] = None  # the [sweep] kind whose report it writes
    # A top-level table it adds, (key, Section), e.g. ("compress", ...): optional in every config.
    section: Optional[tuple[str, type[Section]]] = None
    # False for a family that works after any family's pruning instead (selected by its `section`):
    # it is no prune.family value and claims no [prune] table.
    prunes: bool = True


FAMILY_SCHEMAS: Registry[FamilySchema] = Registry("pruning family")


def select(prune: PruneConfig) -> FamilySchema:
    """The family a [prune] table selects: prune.family, or the one family that claims the table.
    ValueError (a config error) when none or several claim it."""
    if prune.family is not None:
        return FAMILY_SCHEMAS.get(prune.family, "prune.family")
    claimed = [schema for schema in FAMILY_SCHEMAS.values() if schema.claims(prune)]
    if len(claimed) == 1:
        return claimed[0]
    table = f'method = "{prune.method}", granularity = "{prune.granularity}", start = "{prune.start}"'
    if claimed:
        names = ", ".join(schema.name for schema in claimed)
        raise ValueError(f"{table} is claimed by several families ({names}); set prune.family")
    offers = "; ".join(f"{schema.name}: {schema.selected_by}" for schema in FAMILY_SCHEMAS.values() if schema.prunes)
    raise ValueError(f"no pruning family takes {table} ({offers})")
