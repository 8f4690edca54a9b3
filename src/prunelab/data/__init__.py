"""Data sets: the catalog (catalog.py), fetchers (fetch.py, cifar.py: download + checksum, or a
local copy; user.py: a user's own folder or arrays), spec.py's spec_for (what an experiment's data
set is) and the in-memory loaders (loader.py)."""

from .catalog import DATASETS, DatasetSpec

__all__ = ["DATASETS", "DatasetSpec"]
