"""`reproduce --jobs N`: a `seeds` config's seeds run in N spawned worker processes with the
serial run's numbers (same weights, same metrics), one report over the seeds, and resumable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conftest import tiny_raw, to_toml
from prunelab import config, paths
from prunelab.atomic import load_json, load_torch
from prunelab.cli import run
from prunelab.replicates import replicates
import importlib
from prunelab.stages.reproduce import default_jobs, reproduce

# The module (prunelab.stages exports the function under the same name).
reproduce_module = importlib.import_module("prunelab.stages.reproduce")


@pytest.fixture
def seeds_config(tmp_path, synthetic_source):
    """A two-seed tiny config under results root `root` (one file per root)."""

    def make(root: str) -> Path:
        raw = tiny_raw(tmp_path, synthetic_source, seeds=[0, 1], results_root=str(tmp_path / root),
                       data={"train_subset": 300, "test_subset": 100}, train={"epochs": 1, "lr": 0.05},
                       prune={"sparsity": 0.5, "iterations": 1, "finetune": {"epochs": 1, "lr": 0.01}},
                       test={"latency_batch_sizes": [1], "latency_repeats": 1, "latency_warmup": 0})
        del raw["seed"]
        path = tmp_path / f"{root}.toml"
        path.write_text(to_toml(raw))
        return path

    return make


def _weights_digest(path) -> str:
    model = load_torch(path)["model"]
    digest = hashlib.sha256()
    for name in sorted(model):
        digest.update(name.encode() + model[name].cpu().numpy().tobytes())
    return digest.hexdigest()


def _figures(exp) -> list[tuple]:
    out = []
    for run_exp in replicates(exp):
        metrics = load_json(paths.metrics(run_exp))
        out.append((run_exp.seed, _weights_digest(paths.dense(run_exp)), _weights_digest(paths.pruned(run_exp)),
                    metrics["dense"]["accuracy"], metrics["pruned"]["accuracy"]))
    return out


def test_parallel_seeds_give_the_serial_numbers(seeds_config, capfd):
    serial = seeds_config("serial")
    serial_exp = config.load(serial)
    reproduce(serial_exp, jobs=1)
    expected = _figures(serial_exp)
    parallel = seeds_config("parallel")
    assert run("reproduce", [str(parallel), "--jobs", "2"]) == 0
    out, _ = capfd.readouterr()
    assert "running 2 seeds in 2 jobs" in out
    parallel_exp = config.load(parallel)
    assert _figures(parallel_exp) == expected
    for run_exp in replicates(parallel_exp):
        assert paths.job_log(run_exp).is_file()  # each worker's console output
    assert paths.report(parallel_exp).is_file()  # one report over both seeds
    # A re-run finds every stage done: nothing is rewritten.
    stamps = {p: p.stat().st_mtime_ns for r in replicates(parallel_exp) for p in (paths.dense(r), paths.pruned(r))}
    assert run("reproduce", [str(parallel), "--jobs", "2"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_default_jobs_fit_the_cores(seeds_config, monkeypatch):
    exp = config.load(seeds_config("r"))
    monkeypatch.setattr(reproduce_module, "usable_cpus", lambda: 16)
    assert default_jobs(exp) == 2  # never more than the seeds
    monkeypatch.setattr(reproduce_module, "usable_cpus", lambda: 1)
    assert default_jobs(exp) == 1  # 2 seeds on 1 core: one after the other (no tail to save)
    exp.seeds = [0, 1, 2]
    monkeypatch.setattr(reproduce_module, "usable_cpus", lambda: 2)
    assert default_jobs(exp) == 3  # 3 seeds on 2 cores: all at once, no round with one seed alone
    exp.seeds = [0, 1, 2, 3, 4]
    assert default_jobs(exp) == 2  # more than twice the slots: 2 at a time
    exp.seeds = [0, 1]
    exp.threads = 4
    monkeypatch.setattr(reproduce_module, "usable_cpus", lambda: 8)
    assert default_jobs(exp) == 2  # 8 CPUs / 4 threads each


def test_a_failing_seed_is_named(seeds_config, tmp_path, capfd):
    path = seeds_config("f")
    missing = tmp_path / "pretrained" / "seed-{seed}.pt"  # no such checkpoint for either seed
    path.write_text(path.read_text().replace("[train]\n", f'[train]\npretrained = "{missing}"\n'))
    assert run("reproduce", [str(path), "--jobs", "2"]) == 2
    _, err = capfd.readouterr()
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: reproduce cell seed-") and "train.pretrained" in line
    assert "1 other cell failed too" in line


def test_bench_only_replaces_its_own_section():
    """`bench --only seeds` puts its section in place of its earlier figures; the others stay."""
    from prunelab.bench import merge_sections

    text = "# Benchmarks\n\nheader\n\n## A (old)\n\n| a |\n\n## `reproduce` of x's seeds (old)\n\n| b |\n"
    merged = merge_sections(text, [("`reproduce` of x's seeds (new)", [{"run": "serial", "seconds": "1.0"}])])
    assert "## A (old)\n\n| a |" in merged and "(old)\n\n| b |" not in merged
    assert merged.count("`reproduce` of x's seeds (new)") == 1 and "| serial" in merged
    assert merge_sections("# Benchmarks\n", [("C", [{"k": 1}])]).startswith("# Benchmarks\n\n## C\n")
