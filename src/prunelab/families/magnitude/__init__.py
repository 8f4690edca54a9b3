"""Han et al. 2015, "Learning both Weights and Connections": iterative magnitude pruning with retraining.

Selected by method = "magnitude" on a trained model; keys: the [prune] targets, or `quality`.
"""

from ...family import Family, register
from .pruner import MagnitudePruner, describe
from .settings import SCHEMA

FAMILY = register(Family(
    schema=SCHEMA,
    title="Han et al. 2015: iterative magnitude pruning with retraining",
    pruner=MagnitudePruner,
    describe=describe,
))
