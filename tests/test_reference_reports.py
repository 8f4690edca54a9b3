"""Every published report under results/ is what `report` writes from its run's artifacts.

For each configs/<name>.toml whose results/<name>/report.md exists, `report` runs again in a
scratch copy of the repository (the configs, and the runs it reads linked in) and its
report.md must equal the published one byte for byte. The checkpoints it reads live under
runs/ and are not checked in, so a fresh clone skips these tests; after `pixi r reproduce`
(or `sweep`) of a config they run. PRUNELAB_RUNS=<dir> reads the runs from another
directory (e.g. ones made by an older version of the code).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from prunelab import config, paths
from prunelab.cli import run
from prunelab.replicates import replicates
from prunelab.stages.test import stage_inputs
from prunelab.sweep import all_cells

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
RUNS = Path(os.environ.get("PRUNELAB_RUNS", REPO / "runs")).resolve()
NAMES = sorted(path.stem for path in (REPO / "configs").glob("*.toml") if (RESULTS / path.stem / "report.md").is_file())


def _missing_checkpoints(exp: config.Experiment) -> list[Path]:
    """The checkpoints `report` reads (relative to the repository root) that are not there."""
    if exp.sweep is not None:
        # An at-init report reads every cell's pruned.pt; the others read the cells' logs in the run dir.
        needed = ([paths.pruned(cell) for _, cell, _ in all_cells(exp)] if exp.sweep.kind == "at_init"
                  else [paths.sweep_summary(exp)])
    else:  # a replicated config reads every seed's
        needed = [path for run in replicates(exp) or [exp] for path, _ in stage_inputs(run).values()]
    return [path for path in needed if not (RUNS.parent / path).is_file()]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_report_regenerates_from_its_artifacts(name, tmp_path, monkeypatch):
    relative = f"configs/{name}.toml"  # as the report names it
    monkeypatch.chdir(REPO)
    exp = config.load(relative)
    missing = _missing_checkpoints(exp)
    if missing:
        task = "sweep" if exp.sweep is not None else "reproduce"
        pytest.skip(f"{missing[0]} is not here (checkpoints are not checked in): run `pixi r {task} {relative}`")
    # A scratch root: configs/ and the other experiments' runs linked, this one's copied (report writes there).
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "runs").mkdir()
    for other in RUNS.iterdir():
        if other.name != name:
            (tmp_path / "runs" / other.name).symlink_to(other)
    shutil.copytree(RUNS / name, tmp_path / "runs" / name, symlinks=True, ignore=shutil.ignore_patterns("cells"))
    if (RUNS / name / "cells").is_dir():
        (tmp_path / "runs" / name / "cells").symlink_to(RUNS / name / "cells")
    monkeypatch.chdir(tmp_path)
    assert run("report", [relative]) == 0
    for made_by_report in ("report.md", "replicates.json"):  # what `report` writes, as published
        if (RESULTS / name / made_by_report).is_file():
            regenerated = (tmp_path / "runs" / name / made_by_report).read_text()
            assert regenerated == (RESULTS / name / made_by_report).read_text(), made_by_report
    if (RESULTS / name / "compress.json").is_file():  # the compress stage's record, as published
        assert (RESULTS / name / "compress.json").read_text() == (RUNS / name / "compress.json").read_text()
