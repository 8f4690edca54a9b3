"""reproduce: every stage in order, each skipping work already done."""

from __future__ import annotations

from ..config import Experiment
from ..log import console
from .get_dataset import get_dataset
from .prune import prune
from .report import report
from .test import test
from .train import train


def reproduce(exp: Experiment, force: bool = False) -> None:
    """Every stage in order (get-dataset, train, prune, test, report), each skipping finished work."""
    steps = [("get-dataset", get_dataset), ("train", train)]
    if exp.prune is not None:
        steps.append(("prune", prune))
    steps += [("test", test), ("report", report)]
    for label, step in steps:
        console.rule(label)
        step(exp, force=force)
