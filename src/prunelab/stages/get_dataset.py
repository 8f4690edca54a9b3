"""get-dataset: the config's data set into dataset/<name>/, verified (data/fetch.py)."""

from __future__ import annotations

from ..config import Experiment
from ..data.fetch import get_dataset as fetch


def get_dataset(exp: Experiment, force: bool = False) -> None:
    """Copy (data.source, a system package) or download the data set, verify it -> dataset/<name>/."""
    fetch(exp, force=force)
