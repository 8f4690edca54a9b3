"""spec_for(exp): what an experiment's data set is (shape, classes, statistics), the one way every
stage asks: the catalog's entry for a catalog name, or for a user's own set ("folder" / "arrays")
the spec get-dataset stored (data/user.py), refused with the command to run when it is not there."""

from __future__ import annotations

from ..config.sections import Experiment
from .catalog import DATASETS, USER_KINDS, DatasetSpec
from .user import stored_spec


def spec_for(exp: Experiment) -> DatasetSpec:
    if exp.data.dataset in USER_KINDS:
        return stored_spec(exp)
    return DATASETS[exp.data.dataset]
