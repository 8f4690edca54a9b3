"""Structured filter pruning that physically removes channels (Torch-Pruning's DepGraph)."""
