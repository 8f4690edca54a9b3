"""What a run does with an N:M pattern (pattern.py has the layout): the masks of a [prune] table's
pattern from a family's scores, the `pattern` record a checkpoint keeps (the pattern and the layers
left dense) and the prune log's columns, the check of a saved checkpoint's masks and weights (on
resuming; the report too), the target in words and the report's "N:M pattern" section."""

from __future__ import annotations

import torch

from ..config import PruneConfig
from ..family import ReportInputs
from ..report.markdown import count, percent, table
from .pattern import dense_names, layer, pattern_masks, patterned, row_length, violations


def select(cfg: PruneConfig, scores: dict[str, torch.Tensor], current: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pattern_masks for the [prune] table's pattern."""
    n, m = cfg.nm()
    return pattern_masks(scores, current, n, m)


def record(cfg: PruneConfig, masks: dict[str, torch.Tensor]) -> dict:
    """What a checkpoint keeps of the pattern (loadable with weights_only: strings and lists)."""
    return {"pattern": cfg.pattern, "dense_layers": dense_names({k: v.shape for k, v in masks.items()}, cfg.nm()[1])}


def log_fields(cfg: PruneConfig, masks: dict[str, torch.Tensor]) -> dict:
    """The prune log's columns for a round under a pattern."""
    dense = record(cfg, masks)["dense_layers"]
    return {"pattern": cfg.pattern, "dense_layers": ";".join(layer(name) for name in dense)}


def check_checkpoint(cfg: PruneConfig, checkpoint: dict, where: str) -> None:
    """ValueError (one line) when a checkpoint's masks or weights break the configured pattern, or it
    records another pattern; `where` names the file."""
    n, m = cfg.nm()
    recorded = (checkpoint.get("pattern") or {}).get("pattern")
    if recorded != cfg.pattern:
        raise ValueError(f"{where}: made with pattern {recorded!r}, the config has {cfg.pattern!r}")
    for what, tensors in (("masks", checkpoint["masks"]),
                          ("weights", {k: checkpoint["model"][k] for k in checkpoint["masks"]})):
        broken = violations(tensors, n, m)
        if broken:
            named = ", ".join(f"{layer(k)} ({v:,} groups)" for k, v in broken.items())
            raise ValueError(f"{where}: its {what} keep more than {n} of {m} in {named}")


def pattern_text(cfg: PruneConfig) -> str:
    """The target in words under a pattern ("" without one), for the families' descriptions."""
    if cfg.pattern is None:
        return ""
    n, m = cfg.nm()
    return (f"pattern {n}:{m} along the input dimension ({n} of every {m} consecutive weights kept, density "
            f"{n / m:.4f} in each patterned layer)")


def section(inputs: ReportInputs) -> list[str]:
    """The report's "N:M pattern" section: the pattern, each layer patterned or left dense, and the
    pattern checked in the pruned checkpoint's masks and weights ([] without a pattern)."""
    exp, checkpoint = inputs.exp, inputs.checkpoint
    if exp.prune is None or exp.prune.pattern is None or checkpoint is None:
        return []
    n, m = exp.prune.nm()
    masks, weights = checkpoint["masks"], checkpoint["model"]
    rows, groups, dense_weights = [], 0, 0
    for name, mask in masks.items():
        length = row_length(mask.shape)
        if patterned(mask.shape, m):
            groups += mask.numel() // m
            status = f"{n}:{m}, {mask.numel() // m:,} groups"
        else:
            dense_weights += mask.numel()
            status = f"left dense: {length} inputs, not a multiple of {m}"
        rows.append([layer(name), "x".join(map(str, mask.shape)), length, status,
                     percent(int((weights[name] != 0).sum()), mask.numel())])
    dense = [layer(name) for name in dense_names({k: v.shape for k, v in masks.items()}, m)]
    broken = {**violations(masks, n, m), **violations({k: weights[k] for k in masks}, n, m)}
    total = sum(mask.numel() for mask in masks.values())
    if broken:
        verdict = ("**The pattern does not hold** in the pruned checkpoint: more than "
                   f"{n} of {m} kept in {', '.join(layer(k) for k in broken)}.")
    else:
        verdict = (f"Checked in the pruned checkpoint: every one of the {groups:,} groups keeps at most {n} "
                   f"weights, in the masks and in the fine-tuned weights (zeros stayed zero).")
    left = (f"Left dense (input dimension not a multiple of {m}): {', '.join(dense)} "
            f"({count(dense_weights)} of {count(total)} prunable weights)." if dense else "No layer was left dense.")
    return ["## N:M pattern",
            f"{n}:{m} along the input dimension: of every {m} consecutive weights of a row (a Linear weight's "
            f"in_features; a conv filter's in_channels x kh x kw, in that order) at most {n} are kept, the highest "
            f"scores by {exp.prune.method}. {left} {verdict}",
            table(rows, ["layer", "weight", "inputs per output", "pattern", "weights kept (%)"])]
