"""The pruning families, one package each, plugged into the spine through prunelab.family.

  magnitude  Han et al. 2015: iterative magnitude pruning with retraining
  deephoyer  DeepHoyer (Yang, Wen, Li 2020): sparsity-inducing regularizers, then a threshold
  at_init    pruning at initialization: random, magnitude, SNIP, GraSP, SynFlow
  filters    structured filter pruning, filters physically removed (Li et al. 2017; Torch-Pruning)
  compression  Deep Compression (Han et al. 2016): weight sharing, Huffman coding, a real file; after
             any family's pruning, in a stage of its own ([compress])
  mase       MASE group 3: weights by norm (element, kernel, channel) and input channels (activations)

No family imports another. Adding one: a package here whose __init__.py registers a
family.Family, and its name in the import line below (whose order is the order of the
families' report sections and benchmark rows). docs/architecture.md has the walk-through.
"""

from . import magnitude, deephoyer, at_init, filters  # noqa: F401,I001  (each registers its Family)
from . import mase  # noqa: F401,E402  (registers its Family)
from . import compression  # noqa: F401,E402  (registers its Family: last, it follows any pruning)
