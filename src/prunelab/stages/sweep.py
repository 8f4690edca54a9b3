"""sweep: every cell of a [sweep] grid run as its own experiment (resumable) -> sweep.json; and the
sweep's report, written by the family whose sweep kind the config names."""

from __future__ import annotations

from .. import checkpoints, paths, provenance
from ..atomic import load_json
from ..config import Experiment
from ..device import resolve
from ..errors import UserError
from ..family import FAMILIES
from ..log import progress_bar
from ..sweep import all_cells, cell_experiment, collect
from .get_dataset import get_dataset
from .prune import prune
from .test import test
from .train import train

CELL_STAGES = {"train": train, "prune": prune, "test": test}


def sweep(exp: Experiment, force: bool = False) -> None:
    """Run every cell of the [sweep] grid (train, prune, test; resumable) -> sweep.json."""
    if exp.sweep is None:
        raise UserError(f"{exp.path}: sweep: section missing; add a [sweep] table")
    cells = all_cells(exp)  # every cell validated before any runs
    get_dataset(exp)
    with progress_bar(transient=False) as progress:
        task = progress.add_task("sweep", total=len(cells), status="")
        for cell_id, cell, _ in cells:
            progress.update(task, status=cell_id)
            for stage in exp.sweep.stages:
                CELL_STAGES[stage](cell, force=force)
            progress.advance(task)
    collect(exp, cells, made_by={"sweep": provenance.made_by(exp, resolve(exp))})


def report_sweep(exp: Experiment) -> None:
    writer = next(f for f in FAMILIES.values() if f.schema.sweep_kind == exp.sweep.kind)  # the kind is validated
    summary = checkpoints.read_input(exp, paths.sweep_summary(exp), load_json)
    cells = {row["cell"]: cell_experiment(exp, row["cell"], row["overrides"]) for row in summary["cells"]}
    writer.sweep_report(exp, summary, cells)
