"""The at-init family's config: [prune.at_init], and which [prune] tables it takes (start = "init",
or a method that is a registered score other than magnitude)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...config import PruneConfig, Section
from ...config.plugins import FamilySchema
from ...pruning.scores import BATCHNORM_MODES, SCORES
from ...pruning.selection import COUNTS
from . import scores  # noqa: F401  (registers random, snip, grasp, synflow in SCORES)

NAME = "at_init"


class AtInitConfig(Section):
    # Epochs of dense training (with [train]'s optimizer) before scoring; 0 = score at init.
    # Kept in <results_root>/_pretrained/ and shared by runs with the same seed, data, model and [train].
    pre_epochs: int = Field(0, ge=0)
    # Batches of training data the data-driven scores (SNIP, GraSP) average over.
    score_batches: int = Field(1, ge=1)
    # Scoring images instead: 0 = `score_batches` batches of the training loader (prunelab's default);
    # N > 0 = N training images drawn at random with the run's seed, batched at data.batch_size, as
    # the Synaptic-Flow code scores on prune_dataset_ratio x classes random images (100 for 10 classes).
    score_images: int = Field(0, ge=0)
    # Re-augment the scoring images on every pass, as a DataLoader over augmented data does (GraSP's
    # two gradients then see different crops, as in the Synaptic-Flow code); false = one fixed draw.
    score_fresh_augmentation: bool = False
    # SynFlow: rounds of score-and-prune with density^(k/rounds) at round k.
    synflow_rounds: int = Field(100, ge=1)
    # SynFlow: keep exactly each round's count in every round (as the Synaptic-Flow code does; an
    # O(n) k-th value selection, synflow.py); false = rounds 1 .. rounds-1 at a threshold sampled from
    # the scores (densities within ~1% of the schedule's; the last round is always exact).
    synflow_exact_rounds: bool = True
    # How many weights a density keeps (pruning/selection.py COUNTS): "nearest" = round(d x N), the
    # count closest to the target; "synaptic_flow" = N - int((1 - d) N), as the Synaptic-Flow code's
    # mask() keeps (with exact rounds, its 100-round SynFlow masks are reproduced exactly).
    count: Literal[tuple(COUNTS)] = "nearest"  # type: ignore[valid-type]  (selection.COUNTS' names)
    # GraSP: softmax temperature of the Hessian-gradient product.
    grasp_temperature: float = Field(200.0, gt=0)
    # GraSP: BatchNorm while scoring. "eval" (running statistics) as the Synaptic-Flow code scores;
    # "train" (batch statistics) as the GraSP authors' code does. On a BatchNorm net the masks differ.
    grasp_batchnorm: Literal[BATCHNORM_MODES] = "eval"  # type: ignore[valid-type]
    # Frankle et al. 2021 controls: permute each layer's mask within the layer; re-draw survivors.
    shuffle: bool = False
    reinit: bool = False
    # A floor on each layer's density that prevents layer collapse (0 = no floor).
    min_layer_density: float = Field(0.0, ge=0, lt=1)
    # A layer whose density falls to or under this is reported as collapsed.
    collapse_density: float = Field(0.001, ge=0, lt=1)


class AtInitPrune(Section):
    """Keys added to [prune]."""

    at_init: AtInitConfig = AtInitConfig()


def methods() -> tuple[str, ...]:
    """Every registered score is a method of this family."""
    return tuple(SCORES.names())


def claims(prune: PruneConfig) -> bool:
    """start = "init" (magnitude included: magnitude at init, or after pre_epochs), or any other score."""
    if prune.granularity != "element" or prune.method not in SCORES:
        return False
    return prune.start == "init" or prune.method != "magnitude"


def check(prune: PruneConfig) -> None:
    if prune.method not in SCORES or prune.granularity != "element":
        raise ValueError(f"the {NAME} family prunes by a score ({', '.join(methods())}) with granularity = "
                         f'"element"')
    prune.check_one_target()
    at, density = prune.at_init, prune.target_density()
    if at.min_layer_density > 0 and density is not None and at.min_layer_density > density:
        raise ValueError(f"at_init.min_layer_density: {at.min_layer_density} is above the target density {density:.4g}; "
                         "every layer cannot keep more than the whole model")
    if (at.shuffle or at.reinit) and prune.iterations != 1:
        control = "shuffle" if at.shuffle else "reinit"
        raise ValueError(f"at_init.{control}: the controls need prune.iterations = 1 (got {prune.iterations})")
    if prune.pattern is not None:
        check_pattern(prune)


def check_pattern(prune: PruneConfig) -> None:
    """What a pattern leaves no room for: every layer keeps N/M (no floor, no count convention, no
    collapse for SynFlow's rounds to prevent), and a shuffled mask would break the groups."""
    at, spec = prune.at_init, f'pattern = "{prune.pattern}"'
    if at.shuffle:
        raise ValueError(f"at_init.shuffle: permuting a layer's mask breaks {spec}; leave shuffle out")
    if at.min_layer_density > 0:
        raise ValueError(f"at_init.min_layer_density: {spec} keeps {prune.target_density():g} of every patterned "
                         "layer; leave min_layer_density out")
    if at.count != "nearest":
        raise ValueError(f"at_init.count: {spec} keeps N of every M weights, whatever the count convention; "
                         "leave count out")
    if prune.method == "synflow" and at.synflow_rounds != 1:
        raise ValueError(f"at_init.synflow_rounds: with {spec} no layer can collapse, so SynFlow scores once; "
                         f"set synflow_rounds = 1 (got {at.synflow_rounds})")


SCHEMA = FamilySchema(
    name=NAME,
    selected_by=f'start = "init", or method = {" | ".join(m for m in methods() if m != "magnitude")}',
    claims=claims,
    check=check,
    prune_fields=AtInitPrune,
    methods=methods(),
    sweep_kind="at_init",
)
