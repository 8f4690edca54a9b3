"""The spine's config sections: one TOML file per experiment, validated and hashed.

The pruning families add their own keys to [prune] and [train] (see schema.py, which
joins them with these sections); everything here is what every family shares.
Unknown keys, wrong types and out-of-range values are errors that name the config
file and the dotted key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, Field, PrivateAttr, field_validator, model_validator

from ..accel import COMPILE_MODES
from ..errors import UserError
from ..kernels.names import NAMES as KERNEL_NAMES
from ..report import records
from ..models import ArchError, check_arch, identity as model_identity
from ..models.init import INITS
from . import pattern as nm_pattern
from .base import Folder, Section
from .data import DataConfig


class ModelConfig(Section):
    arch: str = "lenet5"
    # default: PyTorch's per-layer initialization; kaiming_normal: Synaptic-Flow's lottery models
    # (kaiming-normal conv/linear weights, zero biases; models/init.py).
    init: Literal[tuple(INITS.names())] = "default"  # type: ignore[valid-type]  (the INITS registry's names)

    @model_validator(mode="after")
    def _known_arch(self) -> "ModelConfig":
        check_arch(self.arch)  # a registered name, or "package.module:factory" (models/user.py)
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
    # How the steps run (accel.py, docs/speed.md). Off by default where they change the numbers.
    # fp32 | bf16 (autocast: convolutions and matmuls in bfloat16; weights and optimizer in float32)
    precision: Literal["fp32", "bf16"] = "fp32"
    # 4-d tensors of conv nets in channels_last order: faster kernels (LeNet-5 epochs 1.1-1.2x faster on this CPU),
    # float results that differ in the last bits. "auto" = on for CUDA, off on CPU.
    channels_last: Union[bool, Literal["auto"]] = "auto"
    # torch.compile the model: "off", or a torch.compile mode ("reduce-overhead" = CUDA graphs on a GPU).
    compile: Literal[COMPILE_MODES] = "off"  # type: ignore[valid-type]  (accel.COMPILE_MODES)
    # Evaluate on the test split every N epochs (and always after the last).
    eval_every: int = Field(1, ge=1)
    # CPU: flush subnormal floats to zero (torch.set_flush_denormal) while training. Long sparsity-
    # regularized runs slowed 4-6x per epoch on this CPU; arithmetic on subnormals (in weights,
    # gradients or optimizer state) takes the CPU's slow path. Results change only where values are
    # subnormal. No effect on CUDA.
    flush_denormal: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "OptimConfig":
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov = true needs momentum > 0")
        return self


class TrainConfig(OptimConfig):
    """[train]: the dense model's recipe; families may add keys (schema.py)."""

    # A dense checkpoint (e.g. another experiment's dense.pt) to start from instead of a fresh init.
    pretrained: Optional[str] = None


class FinetuneConfig(OptimConfig):
    epochs: int = Field(3, ge=0)
    lr: float = Field(0.005, gt=0)
    # Knowledge distillation from the dense model: loss = (1 - a) CE + a T^2 KL(teacher || student).
    distill_alpha: float = Field(0.0, ge=0, le=1)
    distill_temperature: float = Field(4.0, gt=0)


class PruneConfig(Section):
    """[prune]: the keys every pruning family shares; each family adds its own (schema.py).

    Which family runs is `family`, or when it is not given the one family whose rule
    accepts the table (plugins.select: each family claims some values of method,
    granularity and start). The valid `method` and `granularity` values are the families'.
    """

    family: Optional[str] = None
    method: str = "magnitude"
    # element: single weights; the families add others (whole groups, physically removed filters).
    granularity: str = "element"
    # dense: start from the trained dense.pt; init: from a fresh seeded initialization.
    start: Literal["dense", "init"] = "dense"
    # layer: each layer reaches the target on its own; global: one threshold over all layers.
    scope: Literal["layer", "global"] = "layer"
    # A final target, for the families that take one: sparsity, density or compression = total/nonzero.
    sparsity: Optional[float] = Field(None, ge=0, lt=1)
    density: Optional[float] = Field(None, gt=0, le=1)
    compression: Optional[float] = Field(None, ge=1)
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
    # An N:M pattern ("2:4"): of every M consecutive weights along a layer's input dimension at most N
    # are kept, by the family's score; the target follows (rules: config/pattern.py; masks:
    # pruning/pattern.py; docs/config.md). "none" = no pattern.
    pattern: Annotated[Optional[str], AfterValidator(nm_pattern.parse)] = None
    _pattern_rules = model_validator(mode="after")(nm_pattern.checked)

    def nm(self) -> Optional[tuple[int, int]]:  # (N, M) of the pattern
        return None if self.pattern is None else nm_pattern.split(self.pattern)

    def targets(self) -> list[str]:
        """The target keys given: any of sparsity, density, compression, layer_sparsity, pattern."""
        given = [k for k in ("sparsity", "density", "compression") if getattr(self, k) is not None]
        return given + (["layer_sparsity"] if self.layer_sparsity else []) + (["pattern"] if self.pattern else [])

    def check_one_target(self, alternatives: tuple[str, ...] = ()) -> None:
        """Exactly one of sparsity, density, compression and the family's `alternatives` (given
        as attribute names), or layer_sparsity alone; every layer_sparsity value in [0, 1). With a
        pattern: at most one of sparsity, density, compression (equal to the pattern's) and no alternative."""
        keys = ("sparsity", "density", "compression", *alternatives)
        given = [k for k in keys if getattr(self, k) is not None]
        if self.pattern is not None:  # the pattern is the target; a key may repeat it (config/pattern.py)
            return nm_pattern.check_target(self.pattern, given, alternatives)
        if len(given) > 1:
            raise ValueError(f"give only one of {', '.join(keys)} (got {', '.join(given)})")
        if not given and not self.layer_sparsity:
            raise ValueError(f"give one of {', '.join(keys)} (or layer_sparsity)")
        for layer, value in self.layer_sparsity.items():
            if not 0 <= value < 1:
                raise ValueError(f"layer_sparsity.{layer} must be in [0, 1) (got {value})")

    def target_density(self) -> Optional[float]:
        """The global or default per-layer final density, or None without a target (a pattern's N/M
        when no key gives one)."""
        if self.sparsity is not None:
            return 1 - self.sparsity
        if self.density is not None:
            return self.density
        if self.compression is not None:
            return 1 / self.compression
        return None if self.pattern is None else nm_pattern.density(self.pattern)


class TestConfig(Section):
    # Batch sizes whose forward time is measured (on the CPU, and on CUDA when present).
    latency_batch_sizes: list[int] = Field([1, 128], min_length=1)
    latency_repeats: int = Field(20, ge=1)  # timed batches; the median is reported
    latency_warmup: int = Field(3, ge=0)
    # Kernels each pruned model is timed with (kernels/, docs/speed.md): dense = the masked model as stored
    # (always measured: the baseline); csr = torch sparse CSR products (linear layers, convs as im2col + CSR;
    # CPU and CUDA); semi_structured = 2:4 linear layers in fp16 on CUDA. A layer keeps the dense kernel
    # where the sparse one measures slower. None (not given) = dense plus every kernel that runs on the device.
    kernels: Optional[list[Literal[KERNEL_NAMES]]] = None  # type: ignore[valid-type]  (kernels.names.NAMES)

    @field_validator("kernels")
    @classmethod
    def _each_kernel_once(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each kernel once")
        return value


class ReportConfig(Section):
    plots: bool = True
    # Published records beside this run's rows, whatever its way of pruning (report/records.py, docs/config.md).
    references: list[Literal[records.NAMES]] = []  # type: ignore[valid-type]  (report.records.NAMES)


class SweepConfig(Section):
    """[sweep]: a grid of --set overrides over a base experiment; each cell is a full experiment."""

    # Which family's sweep report to write (the valid names are the families', schema.py).
    kind: str
    # Dotted config key -> the values it takes; the cells are the product of the axes.
    grid: dict[str, list[Any]] = Field(min_length=1)
    # Extra override sets, each crossed with the grid ({} = the plain cell).
    variants: list[dict[str, Any]] = [{}]
    # Stages each cell runs, in order; finished cells are skipped.
    stages: list[Literal["train", "prune", "test"]] = ["train", "prune", "test"]
    # The compression (total / nonzero prunable weights) whose per-layer figures a sweep report
    # shows, where it has such a section; None = the highest compression of the sweep.
    report_compression: Optional[float] = Field(None, ge=1)
    # Markdown appended to the sweep report as its discussion (written after looking at the results).
    discussion: str = ""

    @model_validator(mode="after")
    def _axes_not_empty(self) -> "SweepConfig":
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{key} has no values")
        return self


class Experiment(Section):
    """One experiment: the whole TOML file. Configs validate against the subclass schema.py composes."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0)
    # Replicates: run the whole pipeline once per seed (runs/<name>/seeds/seed-<k>/) and report
    # every accuracy and compression figure as mean ± std over them. Replaces `seed`.
    seeds: list[Annotated[int, Field(ge=0)]] = []
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # torch's CPU threads (intra-op). CPU results are bit-identical only at the same thread count
    # (and torch version and CPU kind); 1 never oversubscribes a shared machine. `--threads N` overrides.
    threads: int = Field(1, ge=1)
    # Where runs write (git-ignored); the checked-in reference reports under results/ change only
    # through `publish`.
    results_root: Folder = "runs"
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

    @model_validator(mode="after")
    def _seed_or_seeds(self) -> "Experiment":
        if self.seeds:
            if "seed" in self.model_fields_set:
                raise ValueError("seeds: give seed or seeds, not both")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds: each seed once (got {self.seeds})")
            if self.sweep is not None:
                raise ValueError("seeds: a [sweep] varies the seed through its grid (grid = { seed = [...] })")
        return self

    @model_validator(mode="after")
    def _records_for_this_arch(self) -> "Experiment":
        records.check(self.report.references, self.model.arch, sweep=self.sweep is not None)
        return self

    def stage_hash(self, stage: str) -> str:
        """A short hash of the sections that determine a stage's artifact.

        The dense model depends on seed, data, model and train; the pruned one
        also on prune; the compressed one also on compress. Changing the report
        section invalidates nothing. A user's own data set (dataset = "folder" /
        "arrays") enters by the identity of what get-dataset stored: changed data
        make dense.pt stale, a moved source does not.
        """
        keys = ["seed", "data", "model", "train"]
        if stage in ("prune", "compress"):
            keys.append("prune")
        if stage == "compress":
            keys.append("compress")
        # exclude_defaults: a new option added with a default does not invalidate old artifacts.
        dumped = self.model_dump(mode="json", include=set(keys), exclude_defaults=True)
        for volatile in ("source", "root"):  # where the bytes come from does not change them
            dumped.get("data", {}).pop(volatile, None)
        try:  # an import path's model file (its sha256): an edited network is another model
            source = model_identity(self.model.arch)  # {} for a registered name: their hashes stay
        except ArchError as error:
            raise UserError(f"{self.path}: model.arch: {error}") from None
        if source:
            dumped.setdefault("model", {}).update(source)
        try:  # a user's own set: what get-dataset stored (None for a catalog set: its bytes are fixed)
            identity = self.data.identity()
        except UserError as error:
            raise UserError(f"{self.path}: {error}") from None
        if identity is not None:
            dumped.setdefault("data", {})["identity"] = identity
        blob = json.dumps(dumped, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


