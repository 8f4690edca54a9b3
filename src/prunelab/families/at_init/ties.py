"""Kept weights whose score is exactly 0: counted for every at-init prune, refused under the
Synaptic-Flow code's conventions.

A score of exactly 0 carries no ranking information: SNIP and GraSP give it to every weight
whose input never varies over the scoring images (e.g. a 3x3 tap that only ever sees padding on
a 1x1 map), SynFlow to weights with no path left. When the budget needs more weights than have
a nonzero score, prunelab's default (`count = "nearest"`) fills it with zero-score weights in
the order torch.topk returns tied values (repeatable on one torch build and device, not a
documented order), and logs and reports how many. The Synaptic-Flow code drops every score at
or below its threshold (`score <= threshold`), so when 0 is that threshold it keeps fewer
weights than asked and its prune_loop stops ("ERROR: ... prunable parameters remaining,
expected ..."); with `count = "synaptic_flow"` prunelab stops as well, naming the lowest
compression the nonzero scores can reach.
"""

from __future__ import annotations

import torch

Named = dict[str, torch.Tensor]


class ZeroScoreTies(ValueError):
    """The budget can only be met with zero-score weights, under the original code's conventions."""


def zero_score_kept(scores: Named, masks: Named) -> dict[str, int]:
    """Kept weights whose score is exactly 0, per layer."""
    return {name: int(((scores[name] == 0) & masks[name].bool()).count_nonzero()) for name in masks}


def check_original_ties(method: str, compression: float, scores: Named, current: Named, masks: Named) -> None:
    """Raise ZeroScoreTies when zero scores straddle the cut (some kept, some dropped): there the
    original's threshold is 0 and it keeps only the positive scores, fewer than the budget."""
    kept = dropped = positive = total = 0
    for name, mask in masks.items():
        alive, keep = current[name].bool(), mask.bool()
        zero = (scores[name] == 0) & alive
        kept += int((zero & keep).count_nonzero())
        dropped += int((zero & ~keep).count_nonzero())
        positive += int(((scores[name] > 0) & alive).count_nonzero())
        total += mask.numel()
    if kept and dropped:
        reachable = f"{total / positive:.4g}x" if positive else "no compression (every score is 0 or below)"
        raise ZeroScoreTies(
            f'count = "synaptic_flow": {method} at {compression:.4g}x needs {kept:,} of the {kept + dropped:,} '
            f"weights whose score is exactly 0; the Synaptic-Flow code drops every score at or below its "
            f"threshold and stops there. The nonzero scores reach {reachable} at the lowest: raise "
            f'prune.compression to that, or use count = "nearest" (fills the budget with zero-score weights, '
            f"and reports how many)")
