"""A [sweep] grid: its cells as experiments, and the summary of their results (sweep.json).

A cell is the base experiment with one combination of the grid's values (and
one variant) applied as overrides. Its artifacts live in
<results_root>/<name>/cells/<cell>/, so finished stages of finished cells are skipped
when the sweep is re-run after an interruption (stages/sweep.py runs them).

A shard K/N (`sweep --shard K/N`, 1 <= K <= N) holds the cells at positions K-1, K-1+N,
K-1+2N, ... of the grid order: the N shards are disjoint and together hold every cell once,
and dealing round-robin spreads a grid's slow and fast values evenly over the shards
(docs/scale-out.md).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from . import paths
from .atomic import load_json, write_json
from .config import Experiment, derive
from .log import console
from .replicates import seeded_pretrained


@dataclass(frozen=True)
class Shard:
    """The K-th of N slices of a grid (K counts from 1, as in "shard 3 of 4")."""

    index: int  # K, 1..count
    count: int  # N >= 1

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """The shard "K/N" names; ValueError with a one-line reason for anything else."""
        index, slash, count = text.partition("/")
        if not (slash and index.isdigit() and count.isdigit()):
            raise ValueError(f"expected K/N, e.g. 2/4 (got {text!r})")
        shard = cls(int(index), int(count))
        if not 1 <= shard.index <= shard.count:
            raise ValueError(f"expected 1 <= K <= N in K/N; shards count from 1 (got {text!r})")
        return shard

    def holds(self, position: int) -> bool:
        """Whether the cell at `position` (0-based, grid order) is this shard's."""
        return position % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(position: int, count: int) -> Shard:
    """The shard of N that holds the cell at `position`."""
    return Shard(position % count + 1, count)


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
    """One cell's experiment; a "{seed}" in train.pretrained becomes the cell's seed, so a grid over
    seeds starts each cell from the dense model of its own seed (as `reproduce` does)."""
    overrides = {**seeded_pretrained(exp, overrides.get("seed", exp.seed)), **overrides}
    return derive(exp, cell_id, str(paths.sweep_cells(exp)), overrides, f"{exp.path} (sweep cell {cell_id})",
                  drop=("sweep",))


def all_cells(exp: Experiment) -> list[tuple[str, Experiment, dict[str, Any]]]:
    """(cell id, cell experiment, overrides) of every cell, all validated."""
    return [(cell_id, cell_experiment(exp, cell_id, overrides), overrides) for cell_id, overrides in cell_overrides(exp)]


def collect(exp: Experiment, grid_cells: list[tuple[str, Experiment, dict[str, Any]]],
            made_by: dict | None = None) -> dict:
    """sweep.json: every cell's overrides and metrics.json (None for a sweep whose stages leave out
    test), and how the sweep was run (`made_by`: {"sweep": provenance record}). The caller runs or
    checks every cell first (stages/sweep.py): a cell's metrics.json is read only once it is
    finished, and a shard still running elsewhere is never half-read (writes are atomic)."""
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
