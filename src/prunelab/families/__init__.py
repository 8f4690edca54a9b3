"""The pruning families, one package each, plugged into the spine through prunelab.family.

  magnitude  Han et al. 2015: iterative magnitude pruning with retraining
  deephoyer  DeepHoyer (Yang, Wen, Li 2020): sparsity-inducing regularizers, then a threshold
  at_init    pruning at initialization: random, magnitude, SNIP, GraSP, SynFlow
  filters    structured filter pruning, filters physically removed (Li et al. 2017; Torch-Pruning)

No family imports another. Adding one: a package here whose __init__.py registers a
family.Family, and its name in the import line below (whose order is the order of the
families' report sections and benchmark rows). docs/architecture.md has the walk-through.
"""

from . import magnitude, deephoyer, at_init, filters  # noqa: F401,I001  (each registers its Family)
