"""Typed, validated experiment configuration: one TOML file per experiment.

Unknown keys, wrong types and out-of-range values are errors that name the
config file and the dotted key. `--set key=value` overrides are applied to the
raw TOML before validation, so they are checked the same way.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from .config_base import Section
from .errors import UserError
from .config_at_init import AtInitConfig
from .config_filters import FilterConfig
from .config_sweep import SweepConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class DataConfig(Section):
    dataset: Literal["mnist", "fashion-mnist", "cifar10", "cifar100"] = "mnist"
    # A directory holding the four IDX files (raw or .gz), or for CIFAR the python archive
    # (or its unpacked directory); copied instead of downloading.
    source: Optional[str] = None
    root: str = "dataset"
    batch_size: int = Field(128, ge=1)
    test_batch_size: int = Field(1000, ge=1)
    # Batch-level augmentation, applied to uint8 tensors on the training set only.
    augment: list[Literal["crop", "flip"]] = []
    crop_padding: int = Field(2, ge=0)  # pixels of zero padding before the random crop
    # 0 = the whole split; N = the first N images (tests and quick runs).
    train_subset: int = Field(0, ge=0)
    test_subset: int = Field(0, ge=0)


class ModelConfig(Section):
    arch: str = "lenet5"

    @model_validator(mode="after")
    def _known_arch(self) -> "ModelConfig":
        from .models import MODELS

        if self.arch not in MODELS:
            raise ValueError(f"unknown arch {self.arch!r}; valid: {', '.join(MODELS.names())}")
        return self


class OptimConfig(Section):
    """An optimizer and learning-rate schedule; shared by training and fine-tuning."""

    epochs: int = Field(10, ge=0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    # constant | step (x gamma at each milestone epoch) | cosine (to 0 over the epochs)
    schedule: Literal["constant", "step", "cosine"] = "cosine"
    milestones: list[int] = []
    gamma: float = Field(0.1, gt=0, le=1)
    # Linear learning-rate warm-up from 0 over this many epochs (fractions allowed).
    warmup_epochs: float = Field(0.0, ge=0)
    # mixup (Zhang et al. 2018): Beta(alpha, alpha) mixing of image pairs; 0 = off.
    mixup_alpha: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "OptimConfig":
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov = true needs momentum > 0")
        return self


class RegularizerConfig(Section):
    """A sparsity-inducing penalty added to the training loss (DeepHoyer); see regularizers.py."""

    # Element-wise: l1, hoyer, hoyer_square, transformed_l1; structural: group_lasso, group_hoyer_square.
    kind: Literal["l1", "hoyer", "hoyer_square", "transformed_l1", "group_lasso", "group_hoyer_square"]
    # Multiplies the penalty summed over the prunable weights; no default, the useful scale
    # differs by orders of magnitude between regularizers.
    decay: float = Field(ge=0)
    # Module names to regularize (e.g. ["conv1", "conv2"]); empty = every conv/linear weight
    # but the classifier. Structural FLOPs live in the convs; fc columns cost accuracy.
    layers: list[str] = []


class TrainConfig(OptimConfig):
    regularizer: Optional[RegularizerConfig] = None
    # A dense checkpoint (e.g. another experiment's dense.pt) to start from instead of a fresh init.
    pretrained: Optional[str] = None


class FinetuneConfig(OptimConfig):
    epochs: int = Field(3, ge=0)
    lr: float = Field(0.005, gt=0)
    # Knowledge distillation from the dense model: loss = (1 - a) CE + a T^2 KL(teacher || student).
    distill_alpha: float = Field(0.0, ge=0, le=1)
    distill_temperature: float = Field(4.0, gt=0)


class PruneConfig(Section):
    # magnitude: rank |w| to reach a target; threshold: drop what falls under a threshold
    # (DeepHoyer's recipe after training with a regularizer).
    # random / snip / grasp / synflow score weights at initialization ([prune.at_init]).
    method: Literal["magnitude", "threshold", "random", "snip", "grasp", "synflow"] = "magnitude"
    # element: single weights; structure: whole output filters / input channels (rows / columns
    # of a linear weight), by group L2 norm, only with method = "threshold";
    # filter: physically remove conv filters ([prune.filters]).
    granularity: Literal["element", "structure", "filter"] = "element"
    # dense: start from the trained dense.pt; init: from a fresh seeded initialization.
    start: Literal["dense", "init"] = "dense"
    # layer: each layer reaches the target on its own; global: one threshold over all layers.
    scope: Literal["layer", "global"] = "layer"
    # Exactly one of: a final target (sparsity, density or compression = total/nonzero),
    # or Han et al.'s quality parameter (threshold = quality x std of the layer's weights).
    sparsity: Optional[float] = Field(None, ge=0, lt=1)
    density: Optional[float] = Field(None, gt=0, le=1)
    compression: Optional[float] = Field(None, ge=1)
    quality: Optional[float] = Field(None, gt=0)
    # method = "threshold": exactly one of a fixed threshold (units of |w|, or of group norms)
    # or std_ratio x std of each layer's weights (of its group norms for structure).
    threshold: Optional[float] = Field(None, gt=0)
    std_ratio: Optional[float] = Field(None, gt=0)
    # Per-layer final sparsity overrides, by module name (e.g. fc3 = 0.74).
    layer_sparsity: dict[str, float] = {}
    # Rounds of prune-then-fine-tune; targets ramp up across rounds.
    iterations: int = Field(1, ge=1)
    # exponential: density_k = density^(k/n) (each round removes the same fraction of survivors);
    # linear: sparsity_k = sparsity * k/n.
    schedule: Literal["exponential", "linear"] = "exponential"
    prune_bias: bool = False
    prune_classifier: bool = False
    finetune: FinetuneConfig = FinetuneConfig()
    # Fine-tune epochs after the last round (default: finetune.epochs); Han et al. retrain
    # longest once the final sparsity is reached.
    last_round_epochs: Optional[int] = Field(None, ge=0)
    at_init: AtInitConfig = AtInitConfig()
    filters: Optional[FilterConfig] = None

    @model_validator(mode="after")
    def _one_target(self) -> "PruneConfig":
        if self.granularity == "filter":
            if self.filters is None:
                raise ValueError("granularity = \"filter\" needs a [prune.filters] table")
            return self
        if self.filters is not None:
            raise ValueError("[prune.filters] needs granularity = \"filter\"")
        rules = [k for k in ("threshold", "std_ratio") if getattr(self, k) is not None]
        if self.method == "threshold":
            targets = [k for k in ("sparsity", "density", "compression", "quality") if getattr(self, k) is not None]
            if self.layer_sparsity:
                targets.append("layer_sparsity")
            if targets:
                raise ValueError(f"method = \"threshold\" takes threshold or std_ratio, not {', '.join(targets)}")
            if len(rules) != 1:
                raise ValueError("method = \"threshold\" needs exactly one of threshold, std_ratio"
                                 + (f" (got {', '.join(rules)})" if rules else ""))
            if self.std_ratio is not None and self.scope == "global":
                raise ValueError("std_ratio is a per-layer rule; use scope = \"layer\"")
            return self
        if rules:
            raise ValueError(f"{', '.join(rules)} needs method = \"threshold\"")
        if self.granularity != "element":
            raise ValueError("granularity = \"structure\" needs method = \"threshold\"")
        if self.method not in ("magnitude", "threshold") and self.quality is not None:
            raise ValueError(f"quality is Han's magnitude rule; method = \"{self.method}\" takes a target")
        given = [k for k in ("sparsity", "density", "compression", "quality") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of sparsity, density, compression, quality (got {', '.join(given)})")
        if not given and not self.layer_sparsity:
            raise ValueError("give one of sparsity, density, compression, quality (or layer_sparsity)")
        if self.quality is not None and self.scope == "global":
            raise ValueError("quality is a per-layer rule; use scope = \"layer\"")
        for layer, value in self.layer_sparsity.items():
            if not 0 <= value < 1:
                raise ValueError(f"layer_sparsity.{layer} must be in [0, 1) (got {value})")
        return self

    def target_density(self) -> Optional[float]:
        """The global or default per-layer final density, or None in quality mode."""
        if self.sparsity is not None:
            return 1 - self.sparsity
        if self.density is not None:
            return self.density
        if self.compression is not None:
            return 1 / self.compression
        return None


class TestConfig(Section):
    # Batch sizes whose forward time is measured (on the CPU, and on CUDA when present).
    latency_batch_sizes: list[int] = Field([1, 128], min_length=1)
    latency_repeats: int = Field(20, ge=1)  # timed batches; the median is reported
    latency_warmup: int = Field(3, ge=0)


class ReportConfig(Section):
    plots: bool = True


class Experiment(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    results_root: str = "results"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    prune: Optional[PruneConfig] = None
    test: TestConfig = TestConfig()
    report: ReportConfig = ReportConfig()
    sweep: Optional[SweepConfig] = None

    _path: str = PrivateAttr("<config>")

    @property
    def path(self) -> str:
        """The config file this experiment was read from (for error messages)."""
        return self._path

    def stage_hash(self, stage: str) -> str:
        """A short hash of the sections that determine a stage's artifact.

        The dense model depends on seed, data, model and train; the pruned one
        also on prune. Changing the report section invalidates nothing.
        """
        keys = ["seed", "data", "model", "train"]
        if stage == "prune":
            keys.append("prune")
        # exclude_defaults: a new option added with a default does not invalidate old artifacts.
        dumped = self.model_dump(mode="json", include=set(keys), exclude_defaults=True)
        for volatile in ("source", "root"):  # where the bytes come from does not change them
            dumped.get("data", {}).pop(volatile, None)
        blob = json.dumps(dumped, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _parse_override(item: str, config_path: str) -> tuple[list[str], object]:
    if "=" not in item:
        raise UserError(f"{config_path}: --set {item!r}: expected KEY=VALUE")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"{config_path}: --set {item!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: --set model.arch=lenet5
    return key.split("."), value


def _apply_override(raw: dict, keys: list[str], value: object, config_path: str) -> None:
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise UserError(f"{config_path}: --set {'.'.join(keys)}: {'.'.join(keys[: depth + 1])} is not a table")
        node = child
    node[keys[-1]] = value


def format_validation_error(config_path: str, error: ValidationError) -> str:
    """The first problem as one line: `file: dotted.key: message (got value)`."""
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    got = first.get("input")
    shown = "" if isinstance(got, dict) or first["type"] == "missing" else f" (got {got!r})"
    where = f"{config_path}: {loc}" if loc else config_path
    more = len(error.errors()) - 1
    tail = f" [+{more} more]" if more else ""
    return f"{where}: {message}{shown}{tail}"


def parse(raw: dict, config_path: str = "<config>", overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    raw = json.loads(json.dumps(raw))  # a deep copy: overrides must not touch the caller's dict
    for item in overrides:
        keys, value = _parse_override(item, config_path)
        _apply_override(raw, keys, value, config_path)
    try:
        experiment = Experiment.model_validate(raw)
    except ValidationError as error:
        raise UserError(format_validation_error(config_path, error)) from None
    experiment._path = config_path
    return experiment


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None
    return parse(raw, str(path), overrides)
