"""DeepHoyer (Yang, Wen, Li, ICLR 2020): sparsity-inducing regularizers during training, then a threshold.

[train.regularizer] adds a penalty to dense training (any family's); [prune] method = "threshold"
(granularity "element" or "structure") zeroes what falls under a fixed or std-relative threshold
and fine-tunes with the zeros held. The report adds the structure section (all-zero filters and
channels); `[sweep] kind = "regularizer"` writes the frontier of each regularizer against Han's
magnitude pruning.
"""

from ...family import Family, register
from .bench import benchmark
from .frontier_report import write_report
from .penalty import train_hooks
from .report import sections
from .settings import SCHEMA
from .threshold import ThresholdPruner, describe

FAMILY = register(Family(
    schema=SCHEMA,
    title="DeepHoyer (Yang, Wen, Li 2020): sparsity-inducing regularizers, then a threshold",
    pruner=ThresholdPruner,
    describe=describe,
    train_hooks=train_hooks,
    report_sections=sections,
    sweep_report=write_report,
    benchmark=benchmark,
))
