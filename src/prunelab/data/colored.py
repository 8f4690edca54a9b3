"""Derived data sets (colored-mnist, colored-fashion-mnist): made in memory from the verified IDX
files of their base set, which get-dataset fetches, stores and checks under the base set's own
name (dataset/mnist/ is shared, never fetched twice).

Each grey image becomes 3-channel uint8: pixel intensity v in [0, 255] blends a per-image
foreground colour fg into a per-image background colour bg,

    out = round(v / 255 * fg + (1 - v / 255) * bg)    (per channel; bg = black unless data.color_background)

so the digit (or garment) takes fg and the empty surround bg. The colours are the data set's, not
the experiment's: a torch.Generator seeded with COLOR_SEED + the split's index draws every image's
colours of a split in one go, so every run, seed and subset sees the same bytes (image i always
has colour i). Colour rule, in 0..255 per channel:

- fg: each channel uniform in [64, 255], so a digit on black is never darker than 64/255;
- bg (data.color_background): each channel (fg + 128 + d) mod 256 with d uniform in [-64, 64],
  so every channel of bg differs from fg's by 64..192 (a quarter to three quarters of the range).

Both draws are always made, so fg is the same with and without the background option.
"""

from __future__ import annotations

import torch

from ..config.sections import Experiment
from .catalog import DATASETS

COLOR_SEED = 1_000  # any constant; changing it changes the data set (and the catalog's statistics)
SPLIT_INDEX = {"train": 0, "test": 1}  # added to COLOR_SEED: each split has its own colours
FG_MIN = 64  # darkest foreground channel value (of 255)
BG_SHIFT = 128  # bg channel = fg channel + BG_SHIFT + d (mod 256), d in [-BG_SPREAD, BG_SPREAD]
BG_SPREAD = 64
_CHUNK = 8192  # images blended at a time: bounds the float32 temporaries to ~77 MB each at 28x28


def base_experiment(exp: Experiment) -> Experiment:
    """`exp` as seen by the files: its data set replaced by the base set it is derived from, so
    paths.dataset_dir, the manifest and every message name dataset/<base>/ (unchanged if not derived)."""
    spec = DATASETS.get(exp.data.dataset)  # a user's own set (not in the catalog) is never derived
    base = spec.derived_from if spec is not None else None
    if base is None:
        return exp
    data = exp.data.model_copy(update={"dataset": base, "color_background": False})
    return exp.model_copy(update={"data": data})  # private attributes (the config's path) are kept


def split_colors(split: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fg, bg): int32 (count, 3) colours in 0..255 of the first `count` images of `split`, drawn
    as the module docstring says; `count` must be the split's full size for the colours to be the
    data set's (the bg draw follows all `count` fg draws in the generator's stream)."""
    generator = torch.Generator().manual_seed(COLOR_SEED + SPLIT_INDEX[split])
    fg = torch.randint(FG_MIN, 256, (count, 3), generator=generator, dtype=torch.int32)
    offset = torch.randint(-BG_SPREAD, BG_SPREAD + 1, (count, 3), generator=generator, dtype=torch.int32)
    return fg, (fg + BG_SHIFT + offset) % 256


def colorize(images: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, H, W) grey images -> uint8 (N, 3, H, W): v / 255 * fg + (1 - v / 255) * bg per
    channel, with fg and bg (N, 3) in 0..255, rounded to the nearest integer.

    float32 is exact here: v * (fg - bg) + 255 * bg is an integer below 2**24, and since 255 is odd
    its quotient by 255 is never within 0.5 / 255 of a rounding boundary, far above the float error
    (checked for all 256**3 (v, fg, bg) in the tests); 3x faster than int32 floor division."""
    out = torch.empty(images.shape[0], 3, *images.shape[2:], dtype=torch.uint8)
    for start in range(0, images.shape[0], _CHUNK):
        v = images[start : start + _CHUNK].float()  # (B, 1, H, W), broadcast over the channels
        f = fg[start : start + _CHUNK, :, None, None].float()  # (B, 3, 1, 1)
        b = bg[start : start + _CHUNK, :, None, None].float()
        # + 0.5, then the cast to uint8 truncates: rounds to the nearest of 0..255
        out[start : start + _CHUNK] = (v * (f - b)).add_(255 * b).mul_(1 / 255).add_(0.5)
    return out


def color_split(images: torch.Tensor, split: str, split_size: int, background: bool) -> torch.Tensor:
    """The first len(images) images of `split` (of `split_size` in all) in the data set's colours;
    a black background unless `background`."""
    fg, bg = split_colors(split, split_size)
    count = images.shape[0]
    return colorize(images, fg[:count], bg[:count] if background else torch.zeros_like(bg[:count]))
