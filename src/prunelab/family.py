"""The pruning families and the one registry the spine asks.

A family is one package under prunelab/families/ that owns one way of pruning: the
keys it adds to the config, the hooks it adds to dense training, one pruning round,
its report sections, how a model it saved is rebuilt, its sweep report and its
benchmark. The spine (config, data, models, train, stages, report) never names a
family; it asks this registry:

  select(prune)  the family a [prune] table selects: `prune.family` if given, else the
                 one family whose `claims` accepts the table (config/plugins.py)
  of(exp)        the same for an experiment (None without [prune])
  stage(name)    the function of a stage a family adds (e.g. "compress" after prune)
  extra_models(exp)  the models test measures besides dense and pruned (e.g. a decoded file)
  FAMILIES       every registered family, in registration order (the report's order)

A family registers itself with `register(Family(...))` in its package's __init__.py;
prunelab/families/__init__.py imports the built-in ones. Its config part (keys, names,
selection rule) is a config.plugins.FamilySchema, registered with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

import torch
import torch.nn as nn

from .config import plugins
from .config.plugins import FamilySchema
from .config.sections import Experiment, PruneConfig
from .data.loader import TensorLoader
from .registry import Registry

BenchSection = tuple[str, list[dict]]  # (markdown heading, rows with the same keys)


@dataclass
class PruneContext:
    """What the prune stage hands a family's pruner: the model (on `device`, with the dense
    weights loaded or freshly initialized) and the experiment's loaders."""

    exp: Experiment
    model: nn.Module
    train_loader: TensorLoader
    test_loader: TensorLoader
    device: torch.device


class Pruner(Protocol):
    """One prune stage of a family. stages/prune.py runs the rounds: for k in 1..rounds,
    prune_round(k) -> evaluate -> fine-tune with hooks() -> evaluate -> log -> save."""

    model: nn.Module  # the model being pruned (restore may replace it)
    rounds: int
    unit: str  # what a round is called on the console: "round", "step"
    epoch_log: list[dict]  # training done before round 1 (e.g. pre-training), one row per epoch

    def prune_round(self, k: int) -> dict:
        """Prune round k (1-based) in place; returns extra prune-log fields (may be empty)."""

    def sizes(self) -> dict:
        """density and compression of the model as it is (plus any counts the family logs)."""

    def state(self) -> dict:
        """Checkpoint entries beside the weights: masks, or an architecture description."""

    def restore(self, checkpoint: dict, path: Path) -> None:
        """Continue from a checkpoint that state() and the weights were saved to."""

    def hooks(self) -> list:
        """train.TrainHook objects for the fine-tuning after each round (e.g. keep the masks)."""

    def summary(self) -> str:
        """One line on the model as it is now, e.g. 'density 8.33% (12.00x)'."""


@dataclass
class ReportInputs:
    """What report.md is made from: the dense and pruned models, the pruned checkpoint
    (None without [prune]) and metrics.json."""

    exp: Experiment
    dense: nn.Module
    pruned: nn.Module
    checkpoint: Optional[dict]
    measured: dict


def _no_hooks(exp: Experiment, model: nn.Module) -> list:
    return []


def _no_sections(inputs: ReportInputs) -> list[str]:
    return []


@dataclass
class ExtraModel:
    """A model the test stage measures beside dense and pruned (e.g. one decoded from a compressed
    file): the artifact's `digest`, `config_hash`, `path` and `made_by` (as a checkpoint has them; `measured`:
    figures test adds to its metrics.json entry) and how to build the model."""

    artifact: dict
    build: Callable[[], nn.Module]


def _no_extra_models(exp: Experiment) -> dict[str, ExtraModel]:
    return {}


@dataclass(frozen=True)
class Family:
    schema: FamilySchema  # its config keys and names, and the rule that selects it
    title: str  # one line: the papers it reproduces
    # The prune stage's rounds; None for a family that prunes nothing itself but works on any
    # family's pruned model in a stage of its own (`stages`), selected by its own table (schema.section).
    pruner: Optional[Callable[[PruneContext], Pruner]]
    describe: Callable[[Experiment], str]  # the report's paragraph on what it did
    # Hooks for dense training (the train stage asks every family; e.g. a sparsity penalty).
    train_hooks: Callable[[Experiment, nn.Module], list] = _no_hooks
    # Markdown sections for report.md (every family is asked; each decides whether it applies).
    report_sections: Callable[[ReportInputs], list[str]] = _no_sections
    # The model a checkpoint of this family holds, when it is not the configured architecture
    # (None: build the configured one).
    rebuild: Optional[Callable[[Experiment, dict], Optional[nn.Module]]] = None
    # Writes the report of a [sweep] of kind schema.sweep_kind: (exp, sweep.json summary,
    # {cell id: cell experiment}).
    sweep_report: Optional[Callable[[Experiment, dict, dict], None]] = None
    benchmark: Optional[Callable[[], list[BenchSection]]] = None  # bench's sections, in order
    # Stages it adds, by task name (e.g. "compress"): f(exp, force); stages/ runs them through stage().
    stages: dict[str, Callable[[Experiment, bool], None]] = field(default_factory=dict)
    # Models the test stage measures besides dense and pruned, by metrics.json key ({} where none applies).
    extra_models: Callable[[Experiment], dict[str, ExtraModel]] = _no_extra_models

    @property
    def name(self) -> str:
        return self.schema.name


FAMILIES: Registry[Family] = Registry("pruning family")


def register(family: Family) -> Family:
    """Add a family (and its config schema): its keys are valid in every config read after this."""
    plugins.FAMILY_SCHEMAS.register(family.name)(family.schema)
    FAMILIES.register(family.name)(family)
    return family


def unregister(name: str) -> None:
    """Remove a family added at run time (as the tests do with a throw-away one)."""
    plugins.FAMILY_SCHEMAS.unregister(name)
    FAMILIES.unregister(name)


def select(prune: PruneConfig) -> Family:
    """The family a (validated) [prune] table selects."""
    return FAMILIES.get(plugins.select(prune).name)


def stage(name: str) -> Callable[[Experiment, bool], None]:
    """The stage function a family adds under `name` (exactly one family adds each)."""
    (runner,) = [f.stages[name] for f in FAMILIES.values() if name in f.stages]
    return runner


def extra_models(exp: Experiment) -> dict[str, ExtraModel]:
    """Every family's extra models for this experiment (test measures them)."""
    return {key: model for f in FAMILIES.values() for key, model in f.extra_models(exp).items()}


def of(exp: Experiment) -> Optional[Family]:
    """The family that prunes this experiment (None without a [prune] table)."""
    return None if exp.prune is None else select(exp.prune)
