"""Experiment configuration: the spine's sections, the schema the families join, TOML loading."""

from .base import Section
from .load import apply_override, format_validation_error, load, parse, validate
from .sections import (DataConfig, Experiment, FinetuneConfig, ModelConfig, OptimConfig, PruneConfig, ReportConfig,
                       SweepConfig, TestConfig, TrainConfig)

__all__ = [
    "DataConfig", "Experiment", "FinetuneConfig", "ModelConfig", "OptimConfig", "PruneConfig", "ReportConfig",
    "Section", "SweepConfig", "TestConfig", "TrainConfig", "apply_override", "format_validation_error", "load",
    "parse", "validate",
]
