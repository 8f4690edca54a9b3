"""Seed replicates: a config with `seeds = [0, 1, 2]` runs its whole pipeline once per seed.

Each replicate is the config with `seed = k`, named seed-<k>, with its artifacts under
<results_root>/<name>/seeds/seed-<k>/: an ordinary experiment, so its stages skip and resume
as any run's do. `train.pretrained` may contain "{seed}" to start each replicate from the
dense model of the same seed (e.g. "runs/lenet5/seeds/seed-{seed}/dense.pt"). The report
(stages/report.py) gives the mean ± std over the seeds beside each seed's row.
"""

from __future__ import annotations

import functools
from typing import Callable

from . import paths
from .config import Experiment, derive
from .log import console

SEED_PLACEHOLDER = "{seed}"


def seeded_pretrained(exp: Experiment, seed: int) -> dict[str, str]:
    """{"train.pretrained": the path with "{seed}" filled in}, or {} when it has none: a replicate's or a
    sweep cell's dense model of its own seed."""
    pretrained = exp.train.pretrained
    if pretrained is None or SEED_PLACEHOLDER not in pretrained:
        return {}
    return {"train.pretrained": pretrained.replace(SEED_PLACEHOLDER, str(seed))}


def replicate(exp: Experiment, seed: int) -> Experiment:
    """The experiment of one seed of a replicated config."""
    overrides: dict[str, object] = {"seed": seed, **seeded_pretrained(exp, seed)}
    return derive(exp, f"seed-{seed}", str(paths.replicates_dir(exp)), overrides, f"{exp.path} (seed {seed})",
                  drop=("seeds",))


def seed_cell(exp: Experiment, cell_id: str, overrides: dict) -> Experiment:
    """The replicate of `overrides["seed"]`: how a `reproduce --jobs` worker remakes its seed."""
    return replicate(exp, overrides["seed"])


def replicates(exp: Experiment) -> list[Experiment]:
    """Every seed's experiment, all validated before any runs; [] for a config without `seeds`."""
    return [replicate(exp, seed) for seed in exp.seeds]


def over_seeds(stage: Callable[..., None]) -> Callable[..., None]:
    """A stage that runs once per seed on a replicated config, and once otherwise."""

    @functools.wraps(stage)
    def run(exp: Experiment, force: bool = False, **options) -> None:
        if not exp.seeds:
            return stage(exp, force=force, **options)
        for seed_experiment in replicates(exp):
            console.rule(f"seed {seed_experiment.seed}")
            stage(seed_experiment, force=force, **options)

    return run


def measured(exp: Experiment) -> tuple[list[Experiment], list[int]]:
    """(the replicates whose test has run, the seeds whose has not): `check` and `report` work on the
    seeds that exist, so one seed run alone (`reproduce --set 'seeds=[0]'`) can be checked and reported
    without --set. A seed counts once its metrics.json is there (its other artifacts are checked when
    read). When none is, every replicate: the first one's read names what to run."""
    runs = replicates(exp)
    present = [run for run in runs if paths.metrics(run).is_file()]
    if not present:
        return runs, []
    return present, [run.seed for run in runs if not paths.metrics(run).is_file()]
