"""The schema configs validate against: the spine's sections joined with every family's keys.

A family (its plugins.FamilySchema) adds fields to [prune] and [train] (Section mixins
in its settings module), optionally a top-level table of its own (e.g. [compress]), and
values to three lists of names: prune.method,
prune.granularity ("element" is the spine's) and sweep.kind. `current()` composes the
classes from the registered families and keeps them until the registry changes (a
family registered at run time, as the tests do, gets a new schema).

Composed [prune] validation, after each field is checked:
1. the family: `prune.family`, or the one family whose rule accepts the table;
2. no other family's key is set (each key belongs to one family);
3. the family's own check of the table (targets, rules, combinations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import create_model, model_validator

from .plugins import FAMILY_SCHEMAS, FamilySchema, select
from .sections import Experiment, PruneConfig, SweepConfig, TrainConfig


@dataclass(frozen=True)
class Schema:
    experiment: type[Experiment]
    train: type[TrainConfig]
    prune: type[PruneConfig]
    sweep: type[SweepConfig]


_composed: dict[tuple[int, ...], Schema] = {}


def current() -> Schema:
    """The schema of the families registered now."""
    families = FAMILY_SCHEMAS.values()
    key = tuple(id(family) for family in families)
    if key not in _composed:
        _composed[key] = _compose(families)
    return _composed[key]


def _names(values) -> object:
    """Literal of the values in order, each once (a Literal is the readable error: 'should be a, b or c')."""
    return Literal[tuple(dict.fromkeys(values))]


def _check_prune(prune: PruneConfig) -> PruneConfig:
    chosen = select(prune)
    for other in FAMILY_SCHEMAS.values():
        if other is chosen or other.prune_fields is None:
            continue
        for key, info in other.prune_fields.model_fields.items():
            if getattr(prune, key) != info.get_default(call_default_factory=True):
                raise ValueError(f"{key} needs {other.selected_by} (the {other.name} family); "
                                 f"this table selects the {chosen.name} family")
    chosen.check(prune)
    return prune


def _compose(families: list[FamilySchema]) -> Schema:
    train = create_model("TrainConfig", __base__=(TrainConfig, *[f.train_fields for f in families if f.train_fields]))
    prune = create_model(
        "PruneConfig",
        __base__=(PruneConfig, *[f.prune_fields for f in families if f.prune_fields]),
        __validators__={"_family": model_validator(mode="after")(_check_prune)},
        family=(Optional[_names(f.name for f in families if f.prunes)], None),
        method=(_names(m for f in families for m in f.methods), PruneConfig.model_fields["method"].default),
        granularity=(_names(["element"] + [g for f in families for g in f.granularities]), "element"),
    )
    kinds = [f.sweep_kind for f in families if f.sweep_kind]
    sweep = create_model("SweepConfig", __base__=SweepConfig, kind=(_names(kinds) if kinds else str, ...))
    sections = {key: (Optional[table], None) for key, table in (f.section for f in families if f.section)}
    experiment = create_model(
        "Experiment", __base__=Experiment,
        train=(train, train()), prune=(Optional[prune], None), sweep=(Optional[sweep], None), **sections,
    )
    return Schema(experiment=experiment, train=train, prune=prune, sweep=sweep)
