"""prunelab: reference reproductions of classic neural-network pruning papers."""

__version__ = "0.1.0"
