"""Conformance of the at-init scores and global masks with the original Synaptic-Flow code.

tests/data/conformance/synaptic_flow.json holds what the authors' code (github.com/ganguli-lab/
Synaptic-Flow, commit in the file) computes, unmodified, on the fixed tiny network and inputs
rebuilt here; tools/conformance/synaptic_flow.py made it (command in the file). Only prunelab
runs here. Comparisons are in float64 to a relative 1e-10, not bitwise (CPUs may round differently).

SynFlow's 100 exact rounds match with `count = "synaptic_flow"` (the original keeps N - int((1 - d_r) N)
weights in round r; prunelab's default round(d_r N) keeps one fewer in about half the rounds, see
tools/conformance/README.md). Random masks match when both draw from the same seed (float32).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunelab import config
from prunelab.families.at_init.scores import at_init_masks
from prunelab.families.at_init.synflow import AbsoluteNetwork
from prunelab.pruning.scores import SCORES

DATA = json.loads((Path(__file__).parent / "data" / "conformance" / "synaptic_flow.json").read_text())
SHAPES = {name: tuple(shape) for name, shape in DATA["network"]["shapes"].items()}
WEIGHTS = DATA["network"]["weights"]
DENSITIES = (0.1, 0.01)
RTOL = 1e-10


class TinyNet(nn.Module):
    """The generator's network with plain layers (the original's are the same plus weight masks)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(256, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def _state() -> dict[str, torch.Tensor]:
    """As tools/conformance/synaptic_flow.py's tiny_state."""
    g = torch.Generator().manual_seed(20200601)
    state = {}
    for name, shape in SHAPES.items():
        scale = math.sqrt(2.0 / math.prod(shape[1:])) if name.endswith(".weight") else 0.1
        state[name] = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    return state


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """As the generator's tiny_batches."""
    g = torch.Generator().manual_seed(7)
    net = DATA["network"]
    return [(torch.randn((net["batch_size"], *net["input"]), generator=g, dtype=torch.float64),
             torch.randint(0, 10, (net["batch_size"],), generator=g)) for _ in range(net["batches"])]


def _model() -> nn.Module:
    model = TinyNet().double()
    model.load_state_dict(_state())
    return model


def _prune(method: str, density: float, **at_init):
    raw = {"method": method, "start": "init", "scope": "global", "density": density,
           "at_init": {"score_batches": 2, **at_init}}
    return config.parse({"name": "conformance", "prune": raw}).prune


def _stats(score: torch.Tensor) -> dict[str, float]:
    s = score.detach().double()
    return {"sum": float(s.sum()), "abs_sum": float(s.abs().sum()), "sumsq": float((s * s).sum()),
            "min": float(s.min()), "max": float(s.max())}


def _normalised(method: str, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original's rank-preserving normalisations: SNIP / sum, GraSP / (|sum| + 1e-10)."""
    total = sum(s.sum() for s in scores.values())
    if method == "snip":
        return {n: s / total for n, s in scores.items()}
    if method == "grasp":
        return {n: s / (total.abs() + 1e-10) for n, s in scores.items()}
    return scores


def _worst_difference(method: str, scores: dict[str, torch.Tensor]) -> float:
    """Largest relative difference of any statistic (a signed sum relative to the sum of |.|)."""
    worst = 0.0
    for name in WEIGHTS:
        ref, got = DATA["scores"][method]["stats"][name], _stats(scores[name])
        for key, value in ref.items():
            # An exact 0 (a minimum of SNIP's dead units) is compared at the layer's scale.
            scale = ref["abs_sum"] if key == "sum" else abs(value) or max(abs(ref["min"]), abs(ref["max"]))
            worst = max(worst, abs(got[key] - value) / scale)
    return worst


def _kept(masks: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {name: masks[name].flatten().nonzero().flatten().tolist() for name in WEIGHTS}


def _dense() -> dict[str, torch.Tensor]:
    return {name: torch.ones(SHAPES[name], dtype=torch.bool) for name in WEIGHTS}


def test_network_and_inputs_are_the_generators():
    sums = DATA["checksums"]
    for name, t in _state().items():
        assert [float(t.sum()), float((t * t).sum())] == pytest.approx(sums["weights"][name], rel=1e-12, abs=1e-12)
    batches = _batches()
    assert [float(x.sum()) for x, _ in batches] == pytest.approx(sums["images"], rel=1e-12)
    assert [y.tolist() for _, y in batches] == sums["labels"]


def test_both_count_conventions_keep_the_same_number_here():
    total = sum(math.prod(SHAPES[n]) for n in WEIGHTS)
    for density in DENSITIES:
        assert round(density * total) == DATA["counts"][str(density)] == total - int((1.0 - density) * total)


@pytest.mark.parametrize("method", ["magnitude", "snip", "grasp"])
def test_scores_match_the_original(method):
    model = _model()
    scores = SCORES.get(method)(model, WEIGHTS, loader=_batches(), cfg=_prune(method, 0.1).at_init)
    assert _worst_difference(method, _normalised(method, scores)) < RTOL


def test_synflow_scores_match_the_original_in_float64():
    network = AbsoluteNetwork(_model(), WEIGHTS, dtype=torch.float64)
    scores = dict(zip(WEIGHTS, network.scores(tuple(DATA["network"]["input"]), torch.device("cpu"))))
    assert _worst_difference("synflow", scores) < RTOL


def test_registered_synflow_score_matches_the_original_to_float32():
    # The registered score runs the |.| network in float32 (float64 only on overflow), whatever the model's dtype.
    scores = SCORES.get("synflow")(_model(), WEIGHTS, loader=_batches())
    assert _worst_difference("synflow", scores) < 1e-5


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("method", ["magnitude", "snip", "grasp", "synflow"])
def test_global_masks_keep_the_originals_weights(method, density):
    extra = {"synflow_rounds": 1} if method == "synflow" else {}
    masks = at_init_masks(_prune(method, density, **extra), 1, _model(), _dense(), loader=_batches())
    assert _kept(masks) == DATA["scores"][method]["masks"][str(density)]


@pytest.mark.parametrize("density", DENSITIES)
def test_random_masks_keep_the_originals_weights(density):
    """Both draw randn_like(w) per weight in order (float32): seeded alike, the same weights survive."""
    model = _model()
    torch.manual_seed(DATA["random_seed"])
    masks = at_init_masks(_prune("random", density), 1, model, _dense(), loader=_batches())
    assert _kept(masks) == DATA["scores"]["random"]["masks"][str(density)]


@pytest.mark.parametrize("density", DENSITIES)
def test_synflow_100_exact_rounds_with_the_originals_count_keep_its_weights(density):
    rounds = DATA["synflow_rounds"]
    cfg = _prune("synflow", density, synflow_rounds=rounds["rounds"], synflow_exact_rounds=True, count="synaptic_flow")
    masks = at_init_masks(cfg, 1, _model(), _dense(), loader=_batches())
    assert _kept(masks) == rounds["masks"][str(density)]


def test_the_default_count_is_the_nearest_one():
    """round(d N) in every round: one fewer weight than the original in about half of them."""
    assert _prune("synflow", 0.1).at_init.count == "nearest"
    total = sum(math.prod(SHAPES[n]) for n in WEIGHTS)
    originals = [total - int((1.0 - 0.1 ** (r / 100)) * total) for r in range(1, 101)]
    nearest = [round(0.1 ** (r / 100) * total) for r in range(1, 101)]
    assert {a - b for a, b in zip(originals, nearest)} == {0, 1}
    assert sum(a != b for a, b in zip(originals, nearest)) == 45
