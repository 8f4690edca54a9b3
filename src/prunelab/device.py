"""Device and CPU thread choice, and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from .config import Experiment
from .errors import UserError


def resolve(exp: Experiment) -> torch.device:
    """The device to run on; also sets torch's CPU thread count to `threads` (CPU results are
    bit-identical only at the same count, and more threads than free cores slow a shared machine)."""
    torch.set_num_threads(exp.threads)
    if exp.device == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{exp.path}: device: 'cuda' requested but no CUDA device is available (use 'auto')")
    if exp.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(exp.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# Round k of a prune stage draws its data order (fine-tuning, data-driven scores) from
# seed + ROUND_SEED_STRIDE x k: a fresh order per round, the same on every run.
ROUND_SEED_STRIDE = 7919


def round_data_seed(exp: Experiment, k: int) -> int:
    return exp.seed + ROUND_SEED_STRIDE * k
