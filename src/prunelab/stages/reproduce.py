"""reproduce: every stage in order, each skipping work already done."""

from __future__ import annotations

from ..config import Experiment
from ..log import console
from ..replicates import replicates
from .compress import compress
from .get_dataset import get_dataset
from .prune import prune
from .report import report
from .test import test
from .train import train


def reproduce(exp: Experiment, force: bool = False) -> None:
    """Every stage in order (get-dataset, train, prune, compress when the config has a [compress]
    table, test, report), each skipping finished work;
    with `seeds`, train, prune and test run for one seed after the other, then one report."""
    console.rule("get-dataset")
    get_dataset(exp, force=force)
    for run in replicates(exp) or [exp]:
        steps = [("train", train)] + ([("prune", prune)] if run.prune is not None else [])
        steps += [("compress", compress)] if getattr(run, "compress", None) is not None else []
        steps.append(("test", test))
        for label, step in steps:
            console.rule(label if not exp.seeds else f"{label}, seed {run.seed}")
            step(run, force=force)
    console.rule("report")
    report(exp, force=force)
