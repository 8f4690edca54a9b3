"""Per-round targets for iterative pruning (round k of n, 1-based)."""

from __future__ import annotations

from ..config import PruneConfig


def density_at(final_density: float, k: int, n: int, schedule: str) -> float:
    """exponential: d^(k/n), each round removes the same fraction of the survivors;
    linear: sparsity grows by equal steps."""
    if schedule == "exponential":
        return final_density ** (k / n)
    return 1 - (1 - final_density) * k / n


def round_targets(cfg: PruneConfig, k: int) -> tuple[float, dict[str, float]]:
    """(density of the layers without an override, {overridden weight: density}) in round k of
    cfg.iterations; with only layer_sparsity given, the other layers stay dense."""
    final = cfg.target_density() if cfg.target_density() is not None else 1.0
    layers = {f"{layer}.weight": 1 - s for layer, s in cfg.layer_sparsity.items()}
    n = cfg.iterations
    return density_at(final, k, n, cfg.schedule), {name: density_at(d, k, n, cfg.schedule) for name, d in layers.items()}
