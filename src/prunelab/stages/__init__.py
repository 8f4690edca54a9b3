"""The pipeline's stages, one function each, called by the thin files in tasks/."""

from .check import check
from .compress import compress
from .export import export
from .get_dataset import get_dataset
from .prune import prune
from .publish import publish
from .report import report
from .reproduce import reproduce
from .sweep import sweep
from .test import test
from .train import train

STAGES = {
    "get_dataset": get_dataset,
    "train": train,
    "prune": prune,
    "compress": compress,
    "test": test,
    "export": export,
    "report": report,
    "reproduce": reproduce,
    "sweep": sweep,
    "publish": publish,
    "check": check,
}

__all__ = ["STAGES", "get_dataset", "train", "prune", "compress", "test", "export", "report", "reproduce", "sweep",
           "publish", "check"]
