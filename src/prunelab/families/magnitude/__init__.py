"""Han et al. 2015, "Learning both Weights and Connections": iterative magnitude pruning with retraining.

Selected by method = "magnitude" on a trained model; keys: the [prune] targets, or `quality`, or a
`pattern` (N:M along the input dimension; the report's "N:M pattern" section).
"""

from ...family import Family, register
from .pruner import MagnitudePruner, describe, sections
from .settings import SCHEMA

FAMILY = register(Family(
    schema=SCHEMA,
    title="Han et al. 2015: iterative magnitude pruning with retraining",
    pruner=MagnitudePruner,
    describe=describe,
    report_sections=sections,
))
