"""Published numbers the common report tables put beside ours (docs/references.md has the sources),
and when they apply: a reference is shown only beside a run of the same architecture pruned the
same way, and always with the data set its numbers were measured on."""

from __future__ import annotations

from typing import Optional

from ..config import Experiment, PruneConfig
from .records import RECORDS, Reference, dataset_label

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
