"""get-dataset, and reproduce: every stage in order, each skipping work already done."""

from __future__ import annotations

from ..config import Experiment
from ..data.fetch import get_dataset as fetch
from ..log import console


def get_dataset(exp: Experiment, force: bool = False) -> None:
    fetch(exp, force=force)


def reproduce(exp: Experiment, force: bool = False) -> None:
    from .prune import prune
    from .report import report
    from .test import test
    from .train import train

    steps = [("get-dataset", get_dataset), ("train", train)]
    if exp.prune is not None:
        steps.append(("prune", prune))
    steps += [("test", test), ("report", report)]
    for label, step in steps:
        console.rule(label)
        step(exp, force=force)
