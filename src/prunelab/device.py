"""Device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from .config import Experiment
from .errors import UserError


def resolve(exp: Experiment) -> torch.device:
    if exp.device == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{exp.path}: device: 'cuda' requested but no CUDA device is available (use 'auto')")
    if exp.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(exp.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
