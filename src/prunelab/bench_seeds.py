"""bench's `reproduce` seeds section: a `seeds` config reproduced one seed after the other and with
its seeds in parallel worker processes (`reproduce --jobs`), same seeds, into two temporary results
roots; the wall times, their ratio, and whether every seed's figures are the same.

The run is shortened by --set overrides (SHORT) so that the section takes minutes, not the half
hour the full default config takes serially on one core per seed; the workers' start-up (a spawned
process importing torch, about 2-3 s) is part of what it measures.
"""

from __future__ import annotations

import tempfile
import time

from . import config, paths, provenance
from .atomic import load_json
from .family import BenchSection
from .provenance import cpu_name
from .replicates import replicates
from .stages.reproduce import default_jobs, reproduce
from .stages.sweep_jobs import usable_cpus

SEEDS_CONFIG = "configs/lenet5.toml"
# Two training epochs and two pruning rounds of one epoch each on the full 60k images.
SHORT = ("train.epochs=2", "prune.iterations=2", "prune.last_round_epochs=1", "prune.finetune.epochs=1")
# The figures compared between the two runs, per seed (metrics.json).
FIGURES = (("dense", "accuracy"), ("pruned", "accuracy"), ("pruned", "nonzero_params"), ("pruned", "loss"))


def _figures(exp) -> dict:
    out = {}
    for run in replicates(exp):
        metrics = load_json(paths.metrics(run))
        out[run.seed] = tuple(metrics[model][key] for model, key in FIGURES)
    return out


def _timed_reproduce(config_path: str, root: str, jobs: int, threads: int) -> tuple[float, dict, int]:
    """`reproduce CONFIG --set ... --threads T --jobs N` as the command line runs it (the workers
    remake each seed from that invocation); jobs 0: reproduce's default."""
    overrides = [*SHORT, f'results_root="{root}"']
    exp = config.load(config_path, overrides)
    exp.threads = threads
    jobs = default_jobs(exp) if jobs == 0 else jobs
    with provenance.invoked("reproduce", config_path, overrides, threads):
        start = time.perf_counter()
        reproduce(exp, jobs=jobs)
        seconds = time.perf_counter() - start
    return seconds, _figures(exp), jobs


def seeds_benchmark(threads: int, config_path: str = SEEDS_CONFIG) -> list[BenchSection]:
    """Serial against parallel reproduce of the same seeds (the parallel run's jobs: reproduce's default)."""
    with tempfile.TemporaryDirectory() as serial_root, tempfile.TemporaryDirectory() as parallel_root:
        serial_s, serial, _ = _timed_reproduce(config_path, serial_root, 1, threads)
        parallel_s, parallel, jobs = _timed_reproduce(config_path, parallel_root, 0, threads)
    seeds = ", ".join(str(seed) for seed in serial)
    title = (f"`reproduce` of {config_path}'s seeds ({seeds}), serial vs parallel (shortened: "
             f"{' '.join('--set ' + item for item in SHORT)}; {threads} torch thread(s) per seed; {usable_cpus()} "
             f"CPUs, {cpu_name()})")
    same = "yes" if serial == parallel else f"NO: serial {serial}, parallel {parallel}"
    return [(title, [{"run": "one seed after the other (--jobs 1)", "seconds": f"{serial_s:.1f}", "speedup": "1.00x",
                      "same figures": "-"},
                     {"run": f"--jobs {jobs} (the default here)", "seconds": f"{parallel_s:.1f}",
                      "speedup": f"{serial_s / parallel_s:.2f}x", "same figures": same}])]
