"""Every report under results/ is what `report` writes from the artifacts beside it.

For each configs/<name>.toml whose results/<name>/report.md exists, `report` runs again in a
scratch copy of the repository (the configs, and the results it reads linked in) and its
report.md must equal the one in results/ byte for byte. The checkpoints it reads are not
checked in (they are git-ignored), so a fresh clone skips these tests; after
`pixi r reproduce` (or `sweep`) of a config they run. PRUNELAB_RESULTS=<dir> checks
another results directory (e.g. one made by an older version of the code).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from prunelab import config, paths
from prunelab.cli import run
from prunelab.stages.test import stage_inputs
from prunelab.sweep import all_cells

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("PRUNELAB_RESULTS", REPO / "results")).resolve()
NAMES = sorted(path.stem for path in (REPO / "configs").glob("*.toml") if (RESULTS / path.stem / "report.md").is_file())


def _missing_checkpoints(exp: config.Experiment) -> list[Path]:
    """The checkpoints `report` reads (relative to the repository root) that are not there."""
    if exp.sweep is not None:
        needed = [paths.pruned(cell) for _, cell, _ in all_cells(exp)] if exp.sweep.kind == "at_init" else []
    else:
        needed = [path for path, _ in stage_inputs(exp).values()]
    return [path for path in needed if not (RESULTS.parent / path).is_file()]


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
    # A scratch root: configs/ and the other experiments' results linked, this one's copied (report writes there).
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "results").mkdir()
    for other in RESULTS.iterdir():
        if other.name != name:
            (tmp_path / "results" / other.name).symlink_to(other)
    shutil.copytree(RESULTS / name, tmp_path / "results" / name, symlinks=True,
                    ignore=shutil.ignore_patterns("cells"))
    if (RESULTS / name / "cells").is_dir():
        (tmp_path / "results" / name / "cells").symlink_to(RESULTS / name / "cells")
    monkeypatch.chdir(tmp_path)
    assert run("report", [relative]) == 0
    assert (tmp_path / "results" / name / "report.md").read_text() == (RESULTS / name / "report.md").read_text()
