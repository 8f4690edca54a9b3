"""Published numbers the common report tables put beside ours (docs/references.md has the sources),
and when they apply: a reference is shown only beside a run of the same architecture pruned the
same way, and always with the data set its numbers were measured on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..config import Experiment, PruneConfig
from . import records

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


HAN = "Han et al. 2015"
HAN_SOURCE = "Han et al. 2015 (the paper, Caffe)"
# Han et al. 2015, "Learning both Weights and Connections", MNIST (Caffe); top-1 = 100 - error.
HAN_2015 = {
    "lenet300_100": Reference(HAN, "mnist", 98.36, 98.41, 12, "267K", "22K",
                              kept={"fc1": 8, "fc2": 9, "fc3": 26}, total_kept=8, flops_kept=8, source=HAN_SOURCE),
    "lenet5_caffe": Reference(HAN, "mnist", 99.20, 99.23, 12, "431K", "36K",
                              kept={"conv1": 66, "conv2": 12, "fc1": 8, "fc2": 19}, total_kept=8, flops_kept=16,
                              source=HAN_SOURCE),
}

# The neural-pruning reproduction (github.com/VioletsOleander/neural-pruning): Han et al.'s iterative
# magnitude pruning re-run on MNIST (classic LeNet-5 6-16-120-84 and LeNet-300-100; 3 rounds, a
# per-layer quantile of the surviving weights).
NEURAL_PRUNING = "neural-pruning reproduction (VioletsOleander)"
NEURAL_PRUNING_SOURCE = ("the neural-pruning reproduction (github.com/VioletsOleander/neural-pruning, Han et al.'s "
                         "iterative magnitude pruning re-run with a per-layer quantile rule)")
# Its README's four tables per net (README.md at fbd2843a2df2, 2025-10-26): kept % = 100 - its
# "Reduction %" of each layer's weight; total and FLOPs as its TOTAL rows (biases, ReLU and pooling
# counted too); size = fp32 bytes of every parameter it keeps.
NEURAL_PRUNING_SEED = {
    "lenet5": Reference(NEURAL_PRUNING, "mnist", 97.00, 96.40, 7.50, "61.71K", "8.23K",
                        kept={"conv1": 51.3, "conv2": 27.5, "fc1": 12.5, "fc2": 6.4, "fc3": 72.9}, total_kept=13.3,
                        flops_kept=33.1, size_kb=(246.82, 32.92), source=NEURAL_PRUNING_SOURCE),
    "lenet300_100": Reference(NEURAL_PRUNING, "mnist", 95.62, 94.76, 8.21, "266.61K", "32.46K",
                              kept={"fc1": 12.5, "fc2": 6.4, "fc3": 72.9}, total_kept=12.2, flops_kept=12.1,
                              size_kb=(1066.44, 129.84), source=NEURAL_PRUNING_SOURCE),
}

# Both prune single weights by magnitude, from a trained model, in rounds with retraining.
ITERATIVE_MAGNITUDE = (HAN_2015, NEURAL_PRUNING_SEED)


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
    records.SPARSE_VD: {
        "lenet300_100": Reference(SPARSE_VD, "mnist", 98.36, 98.08, 68, kept={"fc1": 1.1, "fc2": 2.8, "fc3": 38.0},
                                  source=SPARSE_VD_SOURCE),
        "lenet5_caffe": Reference(SPARSE_VD, "mnist", 99.20, 99.25, 280,
                                  kept={"conv1": 33, "conv2": 2, "fc1": 0.2, "fc2": 5}, source=SPARSE_VD_SOURCE),
    },
    records.BAYESIAN_COMPRESSION: {
        "lenet5_caffe": Reference(BAYESIAN_COMPRESSION, "mnist", None, 99.0, 156, storage=419,
                                  source=BAYESIAN_COMPRESSION_SOURCE),
    },
}


def iterative_magnitude(prune: Optional[PruneConfig]) -> bool:
    """Is this [prune] table Han et al.'s way of pruning (|w| of single weights of a trained model, with no
    N:M pattern: a patterned model is compared with its unstructured twin, not with Han's 12x)?"""
    return prune is not None and prune.method == "magnitude" and prune.start == "dense" \
        and prune.granularity == "element" and prune.pattern is None


def applicable(exp: Experiment) -> list[Reference]:
    """The published results for this run's architecture and way of pruning, then the records its
    `[report] references` names (config validation checks that each has this architecture)."""
    found = [published[exp.model.arch] for published in ITERATIVE_MAGNITUDE if exp.model.arch in published] \
        if iterative_magnitude(exp.prune) else []
    return found + [RECORDS[name][exp.model.arch] for name in exp.report.references]


def per_layer(references: list[Reference]) -> list[Reference]:
    """The references with per-layer densities, in table order."""
    return [ref for ref in references if ref.kept]


def dataset_note(references: list[Reference], dataset: str) -> str:
    """One sentence naming where the reference numbers come from and whether the data set is this run's."""
    if not references:
        return ""
    sets = {ref.dataset for ref in references}
    named = " and ".join(dict.fromkeys(ref.source or ref.work for ref in references))
    on = " and ".join(dataset_label(name) for name in sorted(sets))
    if sets == {dataset}:
        return f"Reference rows are published results on {on}, this run's data set: {named}."
    return (f"Reference rows are published results on {on}, not on this run's {dataset_label(dataset)} "
            f"(compare compression and per-layer densities, not accuracy): {named}.")
