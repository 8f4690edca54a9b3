"""`[prune] pattern = "N:M"`: the string's form and what a pattern rules out in a [prune] table.

How the masks are chosen is pruning/pattern.py; here only what the config accepts. Errors are
ValueErrors whose message starts with the key they blame ("pattern: ...", "compression: ..."), which
config/load.py turns into one line naming prune.<key>.
"""

from __future__ import annotations

import math
from typing import Optional


def parse(value: Optional[str]) -> Optional[str]:
    """The pattern normalized ("02:4" -> "2:4"); None for None or "none" (no pattern)."""
    if value is None or value.strip().lower() == "none":
        return None
    n, colon, m = value.strip().partition(":")
    if not (colon and n.strip().isdigit() and m.strip().isdigit() and 0 < int(n) < int(m)):
        raise ValueError('expected "N:M" with whole numbers 0 < N < M, e.g. "2:4", or "none"')
    return f"{int(n)}:{int(m)}"


def split(pattern: str) -> tuple[int, int]:
    n, m = pattern.split(":")
    return int(n), int(m)


def density(pattern: str) -> float:
    """N/M: the density of every patterned layer."""
    n, m = split(pattern)
    return n / m


def check_target(pattern: str, given: list[str], alternatives: tuple[str, ...]) -> None:
    """Of the target keys `given` beside a pattern, at most one of sparsity, density, compression
    (its value is checked in `check`) and none of a family's `alternatives` (e.g. quality)."""
    other = [key for key in given if key in alternatives]
    if other:
        raise ValueError(f'pattern: "{pattern}" sets the target; give pattern or {other[0]}, not both')
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(given)} (or none: the pattern sets the target)")


def checked(prune):
    """PruneConfig's validator: `check` when a pattern is given; returns the table."""
    if prune.pattern is not None:
        check(prune)
    return prune


def check(prune) -> None:
    """A pattern needs single weights (granularity "element"), one round, scope "layer", no biases,
    no layer_sparsity, and any sparsity / density / compression equal to N/M's (prune: a PruneConfig)."""
    n, m = split(prune.pattern)
    spec, named = f'"{prune.pattern}"', f'pattern = "{prune.pattern}"'  # after "pattern: "; elsewhere
    if prune.granularity != "element":
        raise ValueError(f'pattern: {spec} keeps single weights; it needs granularity = "element" '
                         f'(got "{prune.granularity}")')
    if prune.iterations != 1:
        raise ValueError(f"pattern: {spec} is reached in one round; set iterations = 1 (got {prune.iterations})")
    if prune.scope != "layer":
        raise ValueError(f'pattern: {spec} ranks weights within each group of {m}; scope = "{prune.scope}" '
                         "does not apply (leave scope out)")
    if prune.prune_bias:
        raise ValueError(f"pattern: {spec} runs along a weight's input dimension; biases have none "
                         "(leave prune_bias out)")
    if prune.layer_sparsity:
        raise ValueError(f"pattern: {spec} sets every patterned layer's density to {n}/{m}; leave layer_sparsity out")
    given = {"sparsity": None if prune.sparsity is None else 1 - prune.sparsity, "density": prune.density,
             "compression": None if prune.compression is None else 1 / prune.compression}
    for key, density in given.items():
        if density is not None and not math.isclose(density, n / m, rel_tol=1e-9):
            raise ValueError(f"{key}: {getattr(prune, key):g} conflicts with {named}, which keeps {n} of every {m} "
                             f"weights (compression {m / n:g}); leave {key} out")
