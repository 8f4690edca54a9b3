"""sweep: run every cell of a [sweep] grid as its own experiment, resumably; collect the results.

A cell is the base experiment with one combination of the grid's values (and
one variant) applied as overrides. Its artifacts live in
results/<name>/cells/<cell>/, so finished stages of finished cells are skipped
when the sweep is re-run after an interruption.
"""

from __future__ import annotations

import importlib
import itertools
import json
from typing import Any

from pydantic import ValidationError

from . import paths
from .atomic import load_json, write_json
from .config import Experiment, _apply_override, format_validation_error
from .errors import UserError
from .log import console, progress_bar

# kind -> module with `write_report(exp, summary: dict) -> None` (the family's sweep tables and plots)
SWEEP_REPORTS = {"at_init": "prunelab.at_init_sweep", "regularizer": "prunelab.regularizer_sweep"}


def _value_label(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)


def cell_overrides(exp: Experiment) -> list[tuple[str, dict[str, Any]]]:
    """(cell id, {dotted key: value}) for every cell, in grid order."""
    sweep = exp.sweep
    keys = list(sweep.grid)
    cells = []
    for values in itertools.product(*(sweep.grid[key] for key in keys)):
        for variant in sweep.variants:
            overrides = dict(zip(keys, values))
            overrides.update(variant)
            label = "__".join(f"{key.split('.')[-1]}-{_value_label(value)}" for key, value in overrides.items())
            cells.append((label, overrides))
    return cells


def cell_experiment(exp: Experiment, cell_id: str, overrides: dict[str, Any]) -> Experiment:
    raw = exp.model_dump(mode="json", exclude={"sweep"}, exclude_defaults=True)
    raw["name"] = cell_id
    raw["results_root"] = str(paths.sweep_cells(exp))
    for key, value in overrides.items():
        _apply_override(raw, key.split("."), value, exp.path)
    where = f"{exp.path} (sweep cell {cell_id})"
    try:
        cell = Experiment.model_validate(raw)
    except ValidationError as error:
        raise UserError(format_validation_error(where, error)) from None
    cell._path = exp.path
    return cell


def sweep(exp: Experiment, force: bool = False) -> None:
    if exp.sweep is None:
        raise UserError(f"{exp.path}: sweep: section missing; add a [sweep] table")
    from .stages import STAGES

    cells = [(cell_id, cell_experiment(exp, cell_id, overrides), overrides)
             for cell_id, overrides in cell_overrides(exp)]  # validate every cell before running any
    STAGES["get_dataset"](exp)
    with progress_bar(transient=False) as progress:
        task = progress.add_task("sweep", total=len(cells), status="")
        for cell_id, cell, _ in cells:
            progress.update(task, status=cell_id)
            for stage in exp.sweep.stages:
                STAGES[stage](cell, force=force)
            progress.advance(task)
    collect(exp, cells)


def collect(exp: Experiment, cells) -> dict:
    rows = []
    for cell_id, cell, overrides in cells:
        metrics_path = paths.metrics(cell)
        rows.append({
            "cell": cell_id,
            "overrides": overrides,
            "metrics": load_json(metrics_path) if metrics_path.is_file() else None,
            "results": str(paths.run_dir(cell)),
        })
    summary = {"name": exp.name, "kind": exp.sweep.kind, "cells": rows}
    write_json(paths.sweep_summary(exp), summary)
    done = sum(row["metrics"] is not None for row in rows)
    console.print(f"[green]{paths.sweep_summary(exp)}[/]: {done}/{len(rows)} cells measured")
    return summary


def report_sweep(exp: Experiment) -> None:
    summary_path = paths.sweep_summary(exp)
    if not summary_path.is_file():
        raise UserError(f"{summary_path}: not found; run `pixi r sweep {exp.path}` first")
    module = importlib.import_module(SWEEP_REPORTS[exp.sweep.kind])
    module.write_report(exp, load_json(summary_path))
