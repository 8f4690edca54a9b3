"""A [sweep] grid: its cells as experiments, and the summary of their results (sweep.json).

A cell is the base experiment with one combination of the grid's values (and
one variant) applied as overrides. Its artifacts live in
<results_root>/<name>/cells/<cell>/, so finished stages of finished cells are skipped
when the sweep is re-run after an interruption (stages/sweep.py runs them).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from . import paths
from .atomic import load_json, write_json
from .config import Experiment, derive
from .log import console


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
    return derive(exp, cell_id, str(paths.sweep_cells(exp)), overrides, f"{exp.path} (sweep cell {cell_id})",
                  drop=("sweep",))


def all_cells(exp: Experiment) -> list[tuple[str, Experiment, dict[str, Any]]]:
    """(cell id, cell experiment, overrides) of every cell, all validated."""
    return [(cell_id, cell_experiment(exp, cell_id, overrides), overrides) for cell_id, overrides in cell_overrides(exp)]


def collect(exp: Experiment, grid_cells: list[tuple[str, Experiment, dict[str, Any]]],
            made_by: dict | None = None) -> dict:
    """sweep.json: every cell's overrides and metrics.json (None until measured), and how the
    sweep was run (`made_by`: {"sweep": provenance record})."""
    rows = []
    for cell_id, cell, overrides in grid_cells:
        metrics_path = paths.metrics(cell)
        rows.append({
            "cell": cell_id,
            "overrides": overrides,
            "metrics": load_json(metrics_path) if metrics_path.is_file() else None,
            "results": str(paths.run_dir(cell)),
        })
    summary = {"name": exp.name, "kind": exp.sweep.kind, "cells": rows, "made_by": made_by or {}}
    write_json(paths.sweep_summary(exp), summary)
    done = sum(row["metrics"] is not None for row in rows)
    console.print(f"[green]{paths.sweep_summary(exp)}[/]: {done}/{len(rows)} cells measured")
    return summary
