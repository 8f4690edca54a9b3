"""reproduce: every stage in order, each skipping work already done; a `seeds` config's seeds in
parallel worker processes when cores allow (the sweep's worker pool, sweep_jobs.py)."""

from __future__ import annotations

from .. import provenance
from ..config import Experiment
from ..log import console
from ..replicates import replicates, seed_cell
from .compress import compress
from .get_dataset import get_dataset
from .prune import prune
from .report import report
from .sweep_jobs import run_jobs, usable_cpus
from .test import test
from .train import train

STEPS = {"train": train, "prune": prune, "compress": compress, "test": test}


def steps_of(run: Experiment) -> tuple[str, ...]:
    """train, prune (with a [prune] table), compress (with a [compress] table), test."""
    return (("train",) + (("prune",) if run.prune is not None else ())
            + (("compress",) if getattr(run, "compress", None) is not None else ()) + ("test",))


def run_steps(run: Experiment, steps: tuple[str, ...], force: bool) -> None:
    """One run's stages in order (a worker of `--jobs` runs this too)."""
    for label in steps:
        console.rule(f"{label}, seed {run.seed}" if run.name == f"seed-{run.seed}" else label)  # a replicate
        STEPS[label](run, force=force)


def default_jobs(exp: Experiment) -> int:
    """As many seeds at once as the usable CPUs hold at the config's threads each (at least 1); all
    of them when that would leave a last round with idle cores and there are at most twice as many
    seeds as slots (3 seeds on 2 cores: 3 jobs share the cores, the same CPU time without a tail in
    which one seed runs alone)."""
    slots = max(1, usable_cpus() // max(1, exp.threads))
    seeds = len(exp.seeds)
    if seeds <= slots or (seeds % slots and seeds <= 2 * slots):
        return max(1, seeds)
    return slots


def reproduce(exp: Experiment, force: bool = False, jobs: int | None = None) -> None:
    """Every stage in order (get-dataset, train, prune, compress when the config has a [compress]
    table, test, report), each skipping finished work. With `seeds`, each seed's train, prune
    (compress) and test run in `jobs` worker processes (default: default_jobs; 1 = one seed after
    the other; always one after the other without a command line to remake them from); every seed
    keeps the config's threads, so its numbers are the serial run's. Then one report."""
    console.rule("get-dataset")
    get_dataset(exp, force=force)
    runs = replicates(exp)
    jobs = default_jobs(exp) if jobs is None else jobs
    # Workers remake each seed from the command line (config file, --set, --threads); an experiment
    # made in code (no command line) runs its seeds here, one after the other.
    if runs and jobs > 1 and provenance.current() is not None:
        console.rule(f"seeds {', '.join(str(run.seed) for run in runs)}: {jobs} at a time")
        run_jobs(exp, [(f"seed-{run.seed}", run, {"seed": run.seed}) for run in runs], len(runs), jobs, "seeds",
                 force, run_steps, steps_of(runs[0]), task="reproduce", remake=seed_cell)
    else:
        for run in runs or [exp]:
            run_steps(run, steps_of(run), force)
    console.rule("report")
    report(exp, force=force)
