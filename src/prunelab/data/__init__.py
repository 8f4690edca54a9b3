"""Data sets: the catalog (catalog.py), fetchers (fetch.py, cifar.py: download + checksum, or a
local copy) and the in-memory loaders (loader.py)."""

from .catalog import DATASETS, DatasetSpec

__all__ = ["DATASETS", "DatasetSpec"]
