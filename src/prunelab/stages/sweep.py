"""sweep: every cell of a [sweep] grid run as its own experiment (resumable) -> sweep.json; and the
sweep's report, written by the family whose sweep kind the config names.

With `--shard K/N` a run does only its shard's cells (sweep.Shard), then looks at every other
cell: when the whole grid is finished it writes sweep.json (the shard that finishes last
merges), otherwise it says which cells and shards remain. `report` merges a finished grid
whose sweep.json is missing (two shards finishing at the same moment may each see the
other's cells unfinished) and refuses an unfinished one with the cells it lacks.

With `--jobs N` (N > 1) the cells that are not finished run in N worker processes
(sweep_jobs.py), each cell through run_cell as in a serial run; the merging is the same.
"""

from __future__ import annotations

from .. import checkpoints, family, paths, provenance
from ..atomic import load_json, load_torch
from ..config import Experiment
from ..device import resolve
from ..errors import UserError
from ..family import FAMILIES
from ..log import console, progress_bar
from ..report.markdown import plural
from ..sweep import Shard, all_cells, cell_experiment, collect, shard_of
from .get_dataset import get_dataset
from .prune import prune
from .sweep_jobs import run_jobs
from .test import freshness, is_current, load_inputs, test
from .train import train

CELL_STAGES = {"train": train, "prune": prune, "test": test}
LISTED = 5  # cell ids named in a message about unfinished cells; the rest are counted

Cells = list[tuple[str, Experiment, dict]]


def cell_finished(cell: Experiment, stages: list[str]) -> bool:
    """Whether a cell's last stage is done and current for its config: its metrics.json measured
    its current checkpoints with its [test] settings (test's own check), or, for a sweep that
    stops before test, its last checkpoint was made from its config."""
    try:
        if "test" in stages:
            if not paths.metrics(cell).is_file():  # the common case for an unfinished cell: no loading
                return False
            loaded = load_inputs(cell)
            extra = family.extra_models(cell)
            loaded.update({key: model.artifact for key, model in extra.items()})
            return is_current(cell, paths.metrics(cell), freshness(cell, loaded, extra))
        path, stage = (paths.pruned(cell), "prune") if "prune" in stages else (paths.dense(cell), "train")
        return path.is_file() and load_torch(path).get("config_hash") == cell.stage_hash(stage)
    except UserError:  # a missing, damaged or stale input: the cell has to run (again)
        return False


def unfinished(exp: Experiment, cells: Cells, skip: Shard | None = None) -> list[int]:
    """Positions of the cells that are not finished, leaving out `skip`'s (cells that just ran)."""
    return [position for position, (_, cell, _) in enumerate(cells)
            if not (skip is not None and skip.holds(position)) and not cell_finished(cell, exp.sweep.stages)]


def unfinished_text(cells: Cells, positions: list[int], count: int | None = None) -> str:
    """e.g. "3 of 12 cells are not finished, in shards 1/4, 3/4 (a, b, c)"; `count`: the N of
    the shards to name (None: name none)."""
    ids = [cells[position][0] for position in positions]
    named = ", ".join(ids[:LISTED]) + (f" and {len(ids) - LISTED} more" if len(ids) > LISTED else "")
    where = ""
    if count is not None:
        shards = sorted({shard_of(position, count).index for position in positions})
        where = f", in shard{'s' if len(shards) > 1 else ''} " + ", ".join(f"{k}/{count}" for k in shards)
    return f"{len(ids)} of {len(cells)} cells {'is' if len(ids) == 1 else 'are'} not finished{where} ({named})"


def run_cell(cell: Experiment, stages: tuple[str, ...] | list[str], force: bool) -> None:
    """One cell: its stages in order, each skipping what is up to date (a worker of `--jobs` runs this too)."""
    for stage in stages:
        CELL_STAGES[stage](cell, force=force)


def _run_cells(exp: Experiment, cells: Cells, label: str, force: bool, jobs: int = 1) -> None:
    if jobs > 1:
        # Finished cells are left out before any worker starts (a worker costs a process and a
        # torch import); --force redoes every cell, as serially.
        todo = cells if force else [cells[position] for position in unfinished(exp, cells)]
        run_jobs(exp, todo, len(cells), jobs, label, force, run_cell)
        return
    with progress_bar(transient=False) as progress:
        task = progress.add_task(label, total=len(cells), status="")
        for cell_id, cell, _ in cells:
            progress.update(task, status=cell_id)
            run_cell(cell, exp.sweep.stages, force)
            progress.advance(task)


def sweep(exp: Experiment, force: bool = False, shard: Shard | None = None, jobs: int = 1) -> None:
    """Run every cell of the [sweep] grid (train, prune, test; resumable; --jobs N runs N at once) -> sweep.json."""
    if exp.sweep is None:
        raise UserError(f"{exp.path}: sweep: section missing; add a [sweep] table")
    cells = all_cells(exp)  # every cell validated before any runs
    get_dataset(exp)
    if shard is None:
        _run_cells(exp, cells, "sweep", force, jobs)
    else:
        mine = [cell for position, cell in enumerate(cells) if shard.holds(position)]
        if not mine:
            console.print(f"shard {shard} holds no cells: the grid has {len(cells)}")
        _run_cells(exp, mine, f"shard {shard}", force, jobs)
        rest = unfinished(exp, cells, skip=shard)  # this shard's cells just ran
        if rest:
            console.print(f"shard {shard} done ({plural(len(mine), 'cell')}); "
                          f"{unfinished_text(cells, rest, shard.count)}; the shard that finishes last writes "
                          "sweep.json", markup=False, highlight=False)
            return
    collect(exp, cells, made_by={"sweep": provenance.made_by(exp, resolve(exp))})


def _merge_finished(exp: Experiment) -> None:
    """sweep.json from a grid whose every cell is finished; refused, naming the cells that are not."""
    cells = all_cells(exp)
    rest = unfinished(exp, cells)
    if rest:
        raise UserError(f"{paths.sweep_summary(exp)}: not found; {unfinished_text(cells, rest)}; "
                        f"{provenance.run_hint(exp, 'sweep')} (finished cells are skipped) or the shards that "
                        "hold them (`--shard K/N`)")
    collect(exp, cells, made_by={"sweep": provenance.made_by(exp, resolve(exp))})


def report_sweep(exp: Experiment) -> None:
    writer = next(f for f in FAMILIES.values() if f.schema.sweep_kind == exp.sweep.kind)  # the kind is validated
    if not paths.sweep_summary(exp).is_file():
        _merge_finished(exp)
    summary = checkpoints.read_input(exp, paths.sweep_summary(exp), load_json)
    cells = {row["cell"]: cell_experiment(exp, row["cell"], row["overrides"]) for row in summary["cells"]}
    writer.sweep_report(exp, summary, cells)
