"""get-dataset: the config's data set into dataset/<name>/, verified (data/fetch.py)."""

from __future__ import annotations

from .. import paths
from ..atomic import write_faults
from ..config import Experiment
from ..data.fetch import get_dataset as fetch


def get_dataset(exp: Experiment, force: bool = False) -> None:
    """Copy (data.source, a system package) or download the data set, verify it -> dataset/<name>/.
    A full, read-only or unwritable data.root is one line (atomic.write_faults), as for any artifact."""
    with write_faults(paths.dataset_dir(exp)):
        fetch(exp, force=force)
