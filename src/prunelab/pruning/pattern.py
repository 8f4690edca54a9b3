"""N:M patterns (`[prune] pattern = "2:4"`): in every group of M consecutive weights along a layer's
input dimension at most N are kept, the N with the highest scores (each family's own score).

The input dimension: a Linear weight's dim 1 (in_features); a conv weight's in_channels x kh x kw of
each output filter, in `weight.reshape(out, -1)` order (the kh x kw taps of input channel 0, then of
channel 1, ...). Row r of that view is cut into groups [0, M), [M, 2M), ...; N of each group stay.
This is the layout NVIDIA's 2:4 sparse tensor cores (torch's semi-structured tensors) read.

A layer whose input dimension is not a multiple of M has no whole groups: it is left dense (pruned
nothing), named in the prune log (`dense_layers`), the checkpoint and the report, and counted as
kept in the compression. LeNet-5 (Caffe)'s conv1 (1 x 5 x 5 = 25 inputs per filter, 500 weights)
is one. Refusing instead would rule the pattern out for most first conv layers, which hold a
tiny share of the weights; the report says how many weights stayed dense.

A pattern is reached in one round (prune.iterations = 1, config/pattern.py); the masks are held
through fine-tuning like any other (masks.MaskSet), so the pattern holds in the nonzero weights
too. This module is the layout alone (tensors in, tensors out; the sparse kernels read it too);
pattern_record.py is what a run does with it: the family's selection from a [prune] table, the
checkpoint record and prune-log columns, the check on load and the report's section.
"""

from __future__ import annotations

import torch

from .selection import alive_scores


def row_length(shape: torch.Size | tuple[int, ...]) -> int:
    """Weights per output unit along the input dimension (a conv's in_channels x kh x kw); 0 for a 1-d tensor."""
    length = 1
    for size in shape[1:]:
        length *= size
    return length if len(shape) >= 2 else 0


def patterned(shape: torch.Size | tuple[int, ...], m: int) -> bool:
    """Whether a weight of this shape is cut into whole groups of m (else it is left dense)."""
    length = row_length(shape)
    return length > 0 and length % m == 0


def dense_names(shapes: dict[str, torch.Size], m: int) -> list[str]:
    """The weights a pattern of group size m leaves dense, in order."""
    return [name for name, shape in shapes.items() if not patterned(shape, m)]


def layer(name: str) -> str:
    """'features.0.weight' -> 'features.0', as the report's layer tables name it."""
    return name.rsplit(".", 1)[0]


def pattern_masks(scores: dict[str, torch.Tensor], current: dict[str, torch.Tensor],
                  n: int, m: int) -> dict[str, torch.Tensor]:
    """Masks keeping, of every group of m consecutive weights of each row, the n with the highest
    scores that are still alive (pruned ones rank last, so masks only shrink; a group with fewer
    than n alive keeps those). Layers that are not patterned keep their current mask."""
    masks = {}
    for name, score in scores.items():
        alive = current[name].bool()
        if not patterned(score.shape, m):
            masks[name] = alive.clone()
            continue
        # alive_scores flattens in the weight's logical (row-major) order: rows of in x kh x kw.
        groups = alive_scores(score.float(), alive).view(score.shape[0], -1, m)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(2, groups.topk(n, dim=2).indices, True)
        masks[name] = keep.view(score.shape) & alive
    return masks


def groups_over(kept: torch.Tensor, n: int, m: int) -> int:
    """How many groups of m keep more than n entries (nonzero / True) in a patterned weight."""
    groups = (kept != 0).reshape(kept.shape[0], -1, m)
    return int((groups.sum(2) > n).count_nonzero())


def violations(tensors: dict[str, torch.Tensor], n: int, m: int) -> dict[str, int]:
    """{weight: groups keeping more than n} of the patterned weights where any do; {} when the pattern holds."""
    found = {name: groups_over(t, n, m) for name, t in tensors.items() if patterned(t.shape, m)}
    return {name: over for name, over in found.items() if over}
