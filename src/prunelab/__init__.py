"""prunelab: reference reproductions of classic neural-network pruning papers.

Importing the package registers the built-in pruning families (prunelab/families/).
"""

__version__ = "0.1.0"

from . import families  # noqa: E402,F401  (registers the built-in families before any config is read)
