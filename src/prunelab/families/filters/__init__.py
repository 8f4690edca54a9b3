"""Structured filter pruning, filters physically removed through Torch-Pruning's DepGraph: Li et al.
2017 (l1), l2, Taylor (Molchanov et al. 2017), k-means (Pruning Engine) and random criteria.

Selected by granularity = "filter"; keys: [prune.filters]. A pruned model is saved as a state
dict plus an architecture description and rebuilt from it (rebuild.py).
"""

from ...family import Family, register
from .bench import benchmark
from .pruner import FiltersPruner
from .rebuild import rebuild
from .report import describe, sections
from .settings import SCHEMA

FAMILY = register(Family(
    schema=SCHEMA,
    title="structured filter pruning, filters physically removed (Li et al. 2017; Torch-Pruning)",
    pruner=FiltersPruner,
    describe=describe,
    report_sections=sections,
    rebuild=rebuild,
    benchmark=benchmark,
))
