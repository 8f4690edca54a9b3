"""Experiment configuration: the spine's sections (sections.py), what each pruning family adds
(plugins.py), the schema composed from both (schema.py) and TOML loading with --set overrides
(load.py)."""

from . import schema
from .base import Section
from .load import apply_override, derive, format_validation_error, load, parse, validate
from .sections import (DataConfig, Experiment, FinetuneConfig, ModelConfig, OptimConfig, PruneConfig, ReportConfig,
                       SweepConfig, TestConfig, TrainConfig)

__all__ = [
    "DataConfig", "Experiment", "FinetuneConfig", "ModelConfig", "OptimConfig", "PruneConfig", "ReportConfig",
    "Section", "SweepConfig", "TestConfig", "TrainConfig", "apply_override", "derive", "format_validation_error", "load",
    "parse", "schema", "validate",
]
