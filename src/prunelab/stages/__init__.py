"""The pipeline's stages, one function each, called by the thin files in tasks/."""

from .prune import prune
from .report import report
from .reproduce import get_dataset, reproduce
from .test import test
from .train import train

STAGES = {
    "get_dataset": get_dataset,
    "train": train,
    "prune": prune,
    "test": test,
    "report": report,
    "reproduce": reproduce,
    "sweep": lambda exp, force=False: _sweep(exp, force=force),
}


def _sweep(exp, force=False):
    from ..sweep import sweep

    sweep(exp, force=force)

__all__ = ["STAGES", "get_dataset", "train", "prune", "test", "report", "reproduce"]
