"""Kept weights whose score is exactly 0: counted for every at-init prune, refused under the
Synaptic-Flow code's conventions.

A score of exactly 0 carries no ranking information: SNIP and GraSP give it to every weight
whose input never varies over the scoring images (e.g. a 3x3 tap that only ever sees padding on
a 1x1 map), SynFlow to weights with no path left. When the budget needs more weights than have
a positive score (and, where some are negative as GraSP's can be, fewer than have a score >= 0),
prunelab's default (`count = "nearest"`) fills it with zero-score weights in the order torch.topk
returns tied values (repeatable on one torch build and device, not a documented order), and logs
and reports how many. The Synaptic-Flow code drops every score at or below its threshold
(`score <= threshold`), so when 0 is that threshold it keeps only the positive scores, fewer
weights than asked, and its prune_loop stops when that is 5 or more short of d N ("ERROR: ...
prunable parameters remaining, expected ..."; 1 to 4 short, it goes on with them); with
`count = "synaptic_flow"` prunelab stops however short, naming the lowest compression the
positive scores reach (and, with negative scores, the highest that keeps every zero).
tests/test_conformance_synaptic_flow.py pins both against the original code.
"""

from __future__ import annotations

import math

import torch

from ...pruning.selection import kept_count

Named = dict[str, torch.Tensor]


class ZeroScoreTies(ValueError):
    """The budget can only be met with zero-score weights, under the original code's conventions."""


def zero_score_kept(scores: Named, masks: Named) -> dict[str, int]:
    """Kept weights whose score is exactly 0, per layer."""
    return {name: int(((scores[name] == 0) & masks[name].bool()).count_nonzero()) for name in masks}


def compression_keeping(total: int, keep: int, at_most: bool) -> float:
    """The compression nearest total / keep, to 4 significant digits, at which count = "synaptic_flow"
    keeps at most (`at_most`) or at least `keep` of `total` weights: total / keep itself may keep one
    more (at 1.25x of 10,000 weights: 10,000 - int(0.19999999999999996 x 10,000) = 8,001)."""
    compression = float(f"{total / keep:.4g}")
    while True:
        count = kept_count(1 / compression, total, "synaptic_flow")
        if (count <= keep) if at_most else (count >= keep):
            return compression
        step = 10.0 ** (math.floor(math.log10(compression)) - 3)  # one unit of the 4th digit
        compression = float(f"{compression + step if at_most else compression - step:.4g}")


def check_original_ties(method: str, compression: float, scores: Named, current: Named, masks: Named) -> None:
    """Raise ZeroScoreTies when zero scores straddle the cut (some kept, some dropped): there the
    original's threshold is 0 and it keeps only the positive scores, fewer than the budget. Where
    negative scores rank below the zeros (GraSP), a budget that keeps every zero is met too."""
    kept = dropped = positive = negative = total = 0
    for name, mask in masks.items():
        alive, keep = current[name].bool(), mask.bool()
        zero = (scores[name] == 0) & alive
        kept += int((zero & keep).count_nonzero())
        dropped += int((zero & ~keep).count_nonzero())
        positive += int(((scores[name] > 0) & alive).count_nonzero())
        negative += int(((scores[name] < 0) & alive).count_nonzero())
        total += mask.numel()
    if kept and dropped:
        reachable = (f"{compression_keeping(total, positive, at_most=True):.4g}x" if positive
                     else "no compression (every score is 0 or below)")
        nonnegative = positive + kept + dropped
        below = (f", or lower it to {compression_keeping(total, nonnegative, at_most=False):.4g}x or below (every "
                 f"zero kept, the cut among the {negative:,} negative scores)" if negative else "")
        raise ZeroScoreTies(
            f'count = "synaptic_flow": {method} at {compression:.4g}x needs {kept:,} of the {kept + dropped:,} '
            f"weights whose score is exactly 0; the Synaptic-Flow code drops every score at or below its "
            f"threshold, keeps the {positive:,} positive ones and stops when that is 5 or more short. The "
            f"positive scores reach {reachable} at the lowest: raise "
            f'prune.compression to that{below}, or use count = "nearest" (fills the budget with zero-score '
            f"weights, and reports how many)")
