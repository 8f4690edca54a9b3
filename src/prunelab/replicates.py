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


def replicate(exp: Experiment, seed: int) -> Experiment:
    """The experiment of one seed of a replicated config."""
    overrides: dict[str, object] = {"seed": seed}
    pretrained = exp.train.pretrained
    if pretrained is not None and SEED_PLACEHOLDER in pretrained:
        overrides["train.pretrained"] = pretrained.replace(SEED_PLACEHOLDER, str(seed))
    return derive(exp, f"seed-{seed}", str(paths.replicates_dir(exp)), overrides, f"{exp.path} (seed {seed})",
                  drop=("seeds",))


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
