"""Pruning: which parameters are prunable, masks that stay applied, scores, schedules."""

from .masks import MaskSet, prunable_parameters
from .scores import SCORES
from .schedule import density_at, round_masks
from .selection import select_masks

__all__ = ["density_at", "round_masks", "MaskSet", "prunable_parameters", "SCORES", "select_masks"]
