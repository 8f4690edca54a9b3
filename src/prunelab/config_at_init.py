"""[prune.at_init]: options of pruning at initialization (SNIP, GraSP, SynFlow, random, magnitude)."""

from __future__ import annotations

from pydantic import Field

from .config_base import Section


class AtInitConfig(Section):
    # Epochs of dense training (with [train]'s optimizer) before scoring; 0 = score at init.
    # Kept in <results_root>/_pretrained/ and shared by runs with the same seed, data, model and [train].
    pre_epochs: int = Field(0, ge=0)
    # Batches of training data the data-driven scores (SNIP, GraSP) average over.
    score_batches: int = Field(1, ge=1)
    # SynFlow: rounds of score-and-prune with density^(k/rounds) at round k.
    synflow_rounds: int = Field(100, ge=1)
    # SynFlow: rank exactly in every round (as the Synaptic-Flow code does) instead of at a
    # sampled threshold in rounds 1 .. rounds-1 (~4x slower on VGG16; the last round is always exact).
    synflow_exact_rounds: bool = False
    # GraSP: softmax temperature of the Hessian-gradient product.
    grasp_temperature: float = Field(200.0, gt=0)
    # Frankle et al. 2021 controls: permute each layer's mask within the layer; re-draw survivors.
    shuffle: bool = False
    reinit: bool = False
    # A floor on each layer's density that prevents layer collapse (0 = no floor).
    min_layer_density: float = Field(0.0, ge=0, lt=1)
    # A layer whose density falls to or under this is reported as collapsed.
    collapse_density: float = Field(0.001, ge=0, lt=1)
