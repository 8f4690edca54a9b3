"""Published results as the reports show them (`Reference`, the data-set labels) and the records past Han
that a config puts beside its own results with `[report] references` (RECORDS; docs/references.md has
the sources). A leaf module: config/sections.py checks a config's names and architecture against
RECORDS without importing the reports; references.py adds the results that apply by way of pruning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# Data-set names as the papers write them (data/catalog.py keys -> label).
DATASET_LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                  # a user's own data (data.source names it in the report's config line)
                  "folder": "a user's image folder", "arrays": "a user's .npz arrays"}


def dataset_label(name: str) -> str:
    return DATASET_LABELS.get(name, name)


@dataclass(frozen=True)
class Reference:
    """One published pruning result: a dense and a pruned top-1 on `dataset`."""

    work: str  # who measured it, as the report names it
    dataset: str  # a data/catalog.py key: what its numbers were measured on
    accuracy_dense: Optional[float]  # top-1 %; None where the work does not give its dense model's
    accuracy_pruned: float
    compression: float  # weights / nonzero ones
    params_dense: Optional[str] = None  # as printed in the paper
    params_pruned: Optional[str] = None
    kept: dict[str, float] = field(default_factory=dict)  # % of each layer's weights kept
    total_kept: Optional[float] = None  # % of all weights kept
    flops_kept: Optional[float] = None  # % of the FLOPs kept
    size_kb: Optional[tuple[float, float]] = None  # stored size dense -> pruned, KB as published
    storage: Optional[float] = None  # stored size compression as published (x)
    source: str = ""  # what the work is, for the note under the table

    @property
    def label(self) -> str:
        """'Han et al. 2015, MNIST'."""
        return f"{self.work}, {dataset_label(self.dataset)}"


SPARSE_VD_KEY, BAYESIAN_COMPRESSION_KEY = "sparse_vd", "bayesian_compression"  # [report] references' names
# The highest published compressions on MNIST (docs/references.md), put beside a run by `[report]
# references` whatever its way of pruning. Sparse VD: its table as its repository's README reproduces it
# (error 1.64 / 1.92% dense / pruned on LeNet-300-100, 0.80 / 0.75% on LeNet-5 Caffe; kept % = 100 - its
# per-layer sparsity). Bayesian Compression: BC-GHS as its tutorial repository's README gives it (1.0%
# error, 156x after pruning, 419x stored after precision reduction; no dense accuracy given).
SPARSE_VD = "Sparse VD (Molchanov et al. 2017)"
SPARSE_VD_SOURCE = "Sparse VD (Molchanov et al. 2017, its table as bayesgroup/variational-dropout-sparsifies-dnn reproduces it)"
BAYESIAN_COMPRESSION = "Bayesian Compression (Louizos et al. 2017, BC-GHS)"
BAYESIAN_COMPRESSION_SOURCE = ("Bayesian Compression (Louizos et al. 2017, BC-GHS, as KarenUllrich/"
                               "Tutorial_BayesianCompressionForDL gives it)")
RECORDS = {
    SPARSE_VD_KEY: {
        "lenet300_100": Reference(SPARSE_VD, "mnist", 98.36, 98.08, 68, kept={"fc1": 1.1, "fc2": 2.8, "fc3": 38.0},
                                  source=SPARSE_VD_SOURCE),
        "lenet5_caffe": Reference(SPARSE_VD, "mnist", 99.20, 99.25, 280,
                                  kept={"conv1": 33, "conv2": 2, "fc1": 0.2, "fc2": 5}, source=SPARSE_VD_SOURCE),
    },
    BAYESIAN_COMPRESSION_KEY: {
        "lenet5_caffe": Reference(BAYESIAN_COMPRESSION, "mnist", None, 99.0, 156, storage=419,
                                  source=BAYESIAN_COMPRESSION_SOURCE),
    },
}
NAMES = tuple(RECORDS)


def check(names: list[str], arch: str, sweep: bool) -> None:
    """A ValueError naming the `[report] references` key where a config names a record it cannot show."""
    if names and sweep:
        raise ValueError("report.references: a [sweep] report does not show them (a single or `seeds` config does)")
    for name in names:
        if arch not in RECORDS[name]:
            raise ValueError(f"report.references: {name!r} has no published result for arch {arch!r} "
                             f"(it has: {', '.join(RECORDS[name])})")
