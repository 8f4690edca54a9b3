"""Sparsity-inducing regularizers on one weight tensor (DeepHoyer, Yang, Wen, Li 2020).

Element-wise: l1, hoyer, hoyer_square, transformed_l1 push single weights to
zero. Structural: group_lasso, group_hoyer_square push whole groups to zero;
the groups of a weight (out, in, *kernel) are its output filters (rows) and its
input channels (columns), and both terms are summed, as in DeepHoyer's code.
`build_regularizer` turns a [train.regularizer] table into the callable model -> scalar
that the training hook (penalty.py) adds to the objective. Adding a regularizer: one
function here decorated with `@_register(name, "element" | "structure")`.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn as nn

from ...pruning.masks import prunable_parameters
from ...registry import Registry

Kind = Literal["element", "structure"]
RegularizerFn = Callable[[torch.Tensor], torch.Tensor]
REGULARIZERS: Registry[RegularizerFn] = Registry("regularizer")
# Which pruning granularity each regularizer prepares for (the pruner reads it).
KINDS: dict[str, Kind] = {}

# Floor on sum(w^2) (units: weight^2) so an all-zero tensor gives 0, not NaN.
# Any layer with sum(w^2) > 1e-20 (i.e. one weight above 1e-10) is unaffected.
EPS = 1e-20


def _register(name: str, kind: Kind) -> Callable[[RegularizerFn], RegularizerFn]:
    def decorator(fn: RegularizerFn) -> RegularizerFn:
        KINDS[name] = kind
        return REGULARIZERS.register(name)(fn)

    return decorator


def regularizer_kind(name: str) -> Kind:
    """"element" or "structure": the granularity a regularizer's zeros come in."""
    REGULARIZERS.get(name)  # a helpful error for an unknown name
    return KINDS[name]


def _sum_sq(w: torch.Tensor) -> torch.Tensor:
    return (w * w).sum().clamp_min(EPS)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with value 0 and gradient 0 at 0 (plain sqrt has an infinite gradient there -> NaN)."""
    positive = x > 0
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(x))


def group_norms(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 norms of the output filters / rows (shape [out]) and input channels / columns (shape [in])."""
    if w.dim() < 2:
        raise ValueError(f"structural groups need a weight with >= 2 dims (got shape {tuple(w.shape)})")
    rows = _safe_sqrt((w * w).flatten(1).sum(1))
    cols = _safe_sqrt((w * w).transpose(0, 1).flatten(1).sum(1))
    return rows, cols


@_register("l1", "element")
def l1(w: torch.Tensor) -> torch.Tensor:
    return w.abs().sum()


@_register("hoyer", "element")
def hoyer(w: torch.Tensor) -> torch.Tensor:
    """sum|w| / ||w||_2: scale-invariant, in [1, sqrt(n)] for a nonzero w."""
    return w.abs().sum() / _sum_sq(w).sqrt()


@_register("hoyer_square", "element")
def hoyer_square(w: torch.Tensor) -> torch.Tensor:
    """(sum|w|)^2 / sum w^2: in [1, n] for a nonzero w; DeepHoyer's HS."""
    return w.abs().sum() ** 2 / _sum_sq(w)


@_register("transformed_l1", "element")
def transformed_l1(w: torch.Tensor) -> torch.Tensor:
    """sum (a+1)|w| / (a+|w|) with a = 1: like L1 near 0, saturating at 2 for large weights."""
    a = w.abs()
    return (2 * a / (1 + a)).sum()


@_register("group_lasso", "structure")
def group_lasso(w: torch.Tensor) -> torch.Tensor:
    """Sum of the L2 norms of the output filters plus those of the input channels."""
    rows, cols = group_norms(w)
    return rows.sum() + cols.sum()


@_register("group_hoyer_square", "structure")
def group_hoyer_square(w: torch.Tensor) -> torch.Tensor:
    """(sum of filter norms)^2 / sum w^2 + (sum of channel norms)^2 / sum w^2 (Group-HS)."""
    rows, cols = group_norms(w)
    total = _sum_sq(w)
    return rows.sum() ** 2 / total + cols.sum() ** 2 / total


def build_regularizer(cfg, model: nn.Module, names: list[str] | None = None) -> Callable[[nn.Module], torch.Tensor]:
    """decay x sum over the named weights of the configured regularizer, as a callable model -> scalar.

    `cfg` is a [train.regularizer] table (settings.RegularizerConfig); `names` defaults to the
    prunable weights (conv/linear, classifier excluded). Parameters are looked up on the model
    passed at call time, so the callable survives `load_state_dict` and device moves.
    """
    fn = REGULARIZERS.get(cfg.kind, "train.regularizer.kind")
    if names is None:
        names = prunable_parameters(model)
    params = dict(model.named_parameters())
    unknown = [name for name in names if name not in params]
    if unknown:
        raise KeyError(f"regularizer names parameters the model does not have: {unknown}")
    if KINDS[cfg.kind] == "structure":
        flat = [name for name in names if params[name].dim() < 2]
        if flat:
            raise ValueError(f"{cfg.kind} needs weights with >= 2 dims; got {flat}")
    names = list(names)
    decay = float(cfg.decay)

    def penalty(m: nn.Module) -> torch.Tensor:
        current = dict(m.named_parameters())
        terms = [fn(current[name]) for name in names]
        if not terms:
            return torch.zeros((), device=next(m.parameters()).device)
        return decay * torch.stack(terms).sum()

    penalty.kind = KINDS[cfg.kind]  # type: ignore[attr-defined]
    penalty.names = names  # type: ignore[attr-defined]
    return penalty
