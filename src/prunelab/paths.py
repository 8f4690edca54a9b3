"""Every artifact filename in one place."""

from __future__ import annotations

from pathlib import Path

from .config import Experiment


# The checked-in reference reports: written only by `publish` (runs write under results_root, "runs").
PUBLISHED_ROOT = Path("results")


def run_dir(exp: Experiment) -> Path:
    return Path(exp.results_root) / exp.name


def published_dir(exp: Experiment) -> Path:
    return PUBLISHED_ROOT / exp.name


def benchmarks(published: bool) -> Path:
    """`bench` writes runs/benchmarks.md; with --publish, the checked-in results/benchmarks.md."""
    return PUBLISHED_ROOT / "benchmarks.md" if published else Path("runs") / "benchmarks.md"


def dataset_dir(exp: Experiment) -> Path:
    """data.root/<catalog name>, or a user's set's stored_name (config/data.py)."""
    return Path(exp.data.root) / exp.data.stored_name


def dataset_manifest(exp: Experiment) -> Path:
    return dataset_dir(exp) / "manifest.json"


def dense(exp: Experiment) -> Path:
    """The trained dense model (state_dict + metadata)."""
    return run_dir(exp) / "dense.pt"


def train_state(exp: Experiment) -> Path:
    """Per-epoch training state (model, optimizer, schedule, log) used to resume."""
    return run_dir(exp) / "train_state.pt"


def train_log(exp: Experiment) -> Path:
    return run_dir(exp) / "train_log.csv"


def pretrain_state(exp: Experiment, key: str) -> Path:
    """Dense training before scoring, for scores applied after `pre_epochs` (resumable).

    Shared by every experiment under the same results root whose seed, data, model and
    pre-training give the same `key` (a stage hash): a sweep's cells at different
    compressions or methods pre-train once per seed.
    """
    arch = exp.model.arch.replace(":", "-")  # an import path's colon is not a file-name character on Windows
    return Path(exp.results_root) / "_pretrained" / f"{arch}_seed{exp.seed}_{key}.pt"


def prune_round(exp: Experiment, round_index: int) -> Path:
    """The model and masks after pruning round k (1-based) and its fine-tuning."""
    return run_dir(exp) / f"prune_round_{round_index}.pt"


def finetune_state(exp: Experiment, round_index: int) -> Path:
    return run_dir(exp) / f"finetune_state_{round_index}.pt"


def pruned(exp: Experiment) -> Path:
    return run_dir(exp) / "pruned.pt"


def prune_log(exp: Experiment) -> Path:
    return run_dir(exp) / "prune_log.csv"


def prune_train_log(exp: Experiment) -> Path:
    """Per-epoch training and test loss and accuracy of the prune stage's training (pre-training, fine-tuning)."""
    return run_dir(exp) / "prune_train_log.csv"


def compressed(exp: Experiment) -> Path:
    """The compressed model file the compress stage writes and test decodes (docs/compressed-format.md)."""
    return run_dir(exp) / "compressed.bin"


def compress_log(exp: Experiment) -> Path:
    """What compress measured: bytes by part and layer, accuracy before and after fine-tuning."""
    return run_dir(exp) / "compress.json"


def compress_state(exp: Experiment) -> Path:
    """Per-epoch fine-tuning state of the compress stage (shared weights), to resume."""
    return run_dir(exp) / "compress_state.pt"


def exported_model(exp: Experiment) -> Path:
    """The pruned model as a torch.export program (torch.export.load(path).module() runs it without prunelab)."""
    return run_dir(exp) / "model.pt2"


def export_record(exp: Experiment) -> Path:
    """What export traced, from which checkpoint, the program's check against it and its CPU latency."""
    return run_dir(exp) / "export.json"


def metrics(exp: Experiment) -> Path:
    return run_dir(exp) / "metrics.json"


def report(exp: Experiment) -> Path:
    return run_dir(exp) / "report.md"


def density_plot(exp: Experiment) -> Path:
    return run_dir(exp) / "layer_density.png"


def sweep_cells(exp: Experiment) -> Path:
    """Each sweep cell is a full experiment with its artifacts under here."""
    return run_dir(exp) / "cells"


def job_log(exp: Experiment) -> Path:
    """The console output of a sweep cell run by `sweep --jobs N` (N > 1) in a worker process,
    appended run after run (a worker does not draw on the terminal the parent's progress bar uses)."""
    return run_dir(exp) / "job.log"


def sweep_summary(exp: Experiment) -> Path:
    return run_dir(exp) / "sweep.json"


def replicates_dir(exp: Experiment) -> Path:
    """A config with `seeds` runs each seed as its own experiment, seed-<k>, under here."""
    return run_dir(exp) / "seeds"


def replicates_summary(exp: Experiment) -> Path:
    """Every seed's figures, their mean and std, and every seed's metrics.json (written by report)."""
    return run_dir(exp) / "replicates.json"
