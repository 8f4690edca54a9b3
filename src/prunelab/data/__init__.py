"""Data sets: fetchers (download + checksum, or a local copy) and in-memory loaders."""

from .catalog import DATASETS, DatasetSpec
from .loader import Splits, TensorLoader, load_splits, make_loaders

__all__ = ["DATASETS", "DatasetSpec", "Splits", "TensorLoader", "load_splits", "make_loaders"]
