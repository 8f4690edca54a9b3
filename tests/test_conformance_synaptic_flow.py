"""Conformance of the at-init scores and global masks with the original Synaptic-Flow code.

tests/data/conformance/synaptic_flow.json holds what the authors' code (github.com/ganguli-lab/
Synaptic-Flow, commit in the file) computes, unmodified, on the fixed tiny network and inputs
rebuilt here; tools/conformance/synaptic_flow.py made it (command in the file). Only prunelab
runs here. Comparisons are in float64 to a relative 1e-10, not bitwise (CPUs may round differently).

SynFlow's 100 exact rounds match with `count = "synaptic_flow"` (the original keeps N - int((1 - d_r) N)
weights in round r; prunelab's default round(d_r N) keeps one fewer in about half the rounds, see
tools/conformance/README.md). Random masks match when both draw from the same seed (float32).

Zero ties (synaptic_flow_zero_ties.json, same tool): where the original's global threshold is 0 it
keeps only the positive scores, fewer than its budget, and prune_loop stops when that is 5 or more
short; prunelab's count = "synaptic_flow" refuses (ties.ZeroScoreTies), count = "nearest" fills the
budget with zero-score weights around the original's, and elsewhere both keep the original's weights.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunelab import config
from prunelab.errors import UserError
from prunelab.families.at_init.pruner import AtInitPruner
from prunelab.families.at_init.scores import at_init_masks, scored_masks
from prunelab.families.at_init.synflow import AbsoluteNetwork
from prunelab.families.at_init.ties import ZeroScoreTies, compression_keeping, zero_score_kept
from prunelab.family import PruneContext
from prunelab.pruning.scores import SCORES
from prunelab.pruning.selection import kept_count

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


# Zero ties. tests/data/conformance/synaptic_flow_zero_ties.json: the same network, scored on the same
# inputs with channel `zero_channel` set to 0 in every image (so SNIP and GraSP score the conv1 weights
# that read it exactly 0, besides the weights of units dead on every image), and what the original's
# global mask and prune_loop did at each density (tools/conformance/synaptic_flow.py, zero_ties).

ZERO = json.loads((Path(__file__).parent / "data" / "conformance" / "synaptic_flow_zero_ties.json").read_text())
# Where the original's threshold is 0: it keeps only the positive scores, fewer than its budget.
TIED = [case for case in ZERO["cases"] if case["threshold"] == 0.0]
UNTIED = [case for case in ZERO["cases"] if case["threshold"] != 0.0]


def _case_id(case: dict) -> str:
    return f"{case['method']}-{case['density']:.4g}"


def _case(method: str, density: float) -> dict:
    return next(c for c in ZERO["cases"] if c["method"] == method and c["density"] == density)


def _zero_channel_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """As the generator's zero_channel_batches."""
    batches = _batches()
    for images, _ in batches:
        images[:, ZERO["zero_channel"]] = 0.0
    return batches


def _unpack(digits: str, shape: tuple) -> torch.Tensor:
    """The generator's bitmap(): 4 flat entries per hex digit, the first the highest bit."""
    bits = "".join(f"{int(d, 16):04b}" for d in digits)[: math.prod(shape)]
    return torch.tensor([b == "1" for b in bits]).view(shape)


def _original(case: dict) -> dict[str, torch.Tensor]:
    return {name: _unpack(case["masks"][name], SHAPES[name]) for name in WEIGHTS}


def _scored(case: dict, count: str):
    cfg = _prune(case["method"], case["density"], count=count)
    return scored_masks(cfg, 1, _model(), _dense(), loader=_zero_channel_batches())


def _kept_total(masks: dict[str, torch.Tensor]) -> int:
    return sum(int(m.count_nonzero()) for m in masks.values())


def test_zero_channel_inputs_are_the_generators():
    sums = ZERO["checksums"]
    batches = _zero_channel_batches()
    assert [float(x.sum()) for x, _ in batches] == pytest.approx(sums["images"], rel=1e-12)
    assert [y.tolist() for _, y in batches] == sums["labels"] and sums["zero_channel_abs_sum"] == 0.0
    assert ZERO["total"] == sum(math.prod(SHAPES[n]) for n in WEIGHTS)
    for case in ZERO["cases"]:  # both count conventions keep the same number at every recorded density
        assert case["budget"] == round(case["density"] * ZERO["total"]) == kept_count(
            case["density"], ZERO["total"], "synaptic_flow")


@pytest.mark.parametrize("method", ["snip", "grasp"])
def test_scores_are_exactly_zero_where_the_originals_are(method):
    scores = SCORES.get(method)(_model(), WEIGHTS, loader=_zero_channel_batches(), cfg=_prune(method, 0.5).at_init)
    assert (scores["conv1.weight"][:, ZERO["zero_channel"]] == 0).all()
    for case in (c for c in ZERO["cases"] if c["method"] == method):
        signs = case["signs"]["layers"]
        for name in WEIGHTS:
            s = scores[name]
            assert {"positive": int((s > 0).sum()), "zero": int((s == 0).sum()), "negative": int((s < 0).sum())} \
                == signs[name], (name, case["density"])
    # At a threshold of 0 the original keeps exactly the positive scores: the same weights as prunelab's.
    for case in (c for c in TIED if c["method"] == method):
        original = _original(case)
        assert all(torch.equal(scores[n] > 0, original[n]) for n in WEIGHTS), case["density"]


def test_the_recorded_cases_cover_a_stop_and_a_shortfall_the_original_lets_through():
    """The original's prune_loop prints its ERROR line and quits when the kept count is 5 or more
    from N d; at 0.952 it is 4 short and goes on with the positive scores."""
    assert {_case_id(c) for c in TIED} == {"snip-0.96", "snip-0.952", "grasp-0.56"}
    for case in TIED:
        assert case["kept"] == case["signs"]["positive"] < case["budget"]
        assert case["aborted"] == (abs(case["kept"] - case["expected"]) >= 5)
        if case["aborted"]:
            line = f"ERROR: {float(case['kept'])} prunable parameters remaining, expected {case['expected']}"
            assert case["error"] == line
        else:
            assert case["error"] is None and case["budget"] - case["kept"] == 4
    for case in UNTIED:
        assert case["kept"] == case["budget"] and not case["aborted"] and case["error"] is None


@pytest.mark.parametrize("case", TIED, ids=_case_id)
def test_synaptic_flow_count_refuses_a_budget_the_originals_threshold_of_0_cannot_meet(case):
    """prunelab refuses every such budget, also 1 to 4 weights short, where the original goes on (0.952)."""
    with pytest.raises(ZeroScoreTies) as raised:
        _scored(case, "synaptic_flow")
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert "\n" not in message
    # The count the original keeps at this threshold, and the compression that is.
    assert f"keeps the {case['kept']:,} positive ones" in message
    assert f"{ZERO['total'] / case['kept']:.4g}x at the lowest" in message
    zeros = case["signs"]["zero"]
    assert f"needs {case['budget'] - case['kept']:,} of the {zeros:,} weights whose score is exactly 0" in message


@pytest.mark.parametrize("case", TIED, ids=_case_id)
def test_nearest_count_fills_the_budget_with_zero_scores_around_the_originals_weights(case):
    masks, scores = _scored(case, "nearest")
    original = _original(case)
    assert _kept_total(masks) == case["budget"]
    for name in WEIGHTS:
        assert not (original[name] & ~masks[name]).any(), name  # every weight the original keeps
        assert torch.equal(masks[name] & (scores[name] != 0), original[name]), name  # and its only nonzero ones
    assert sum(zero_score_kept(scores, masks).values()) == case["budget"] - case["kept"]


@pytest.mark.parametrize("count", ["nearest", "synaptic_flow"])
@pytest.mark.parametrize("case", UNTIED, ids=_case_id)
def test_both_counts_keep_the_originals_weights_where_no_zero_is_at_its_cut(case, count):
    masks, scores = _scored(case, count)
    assert _kept(masks) == _kept(_original(case))
    # GraSP's negative scores rank below the zeros: at 1/1.705 and 0.7 every zero is kept, with no tie.
    zeros = case["signs"]["zero"] if case["threshold"] < 0 else 0
    assert sum(zero_score_kept(scores, masks).values()) == zeros


@pytest.mark.parametrize("case", [c for c in TIED if c["aborted"]], ids=_case_id)
def test_the_compressions_the_refusal_names_are_ones_the_original_meets(case):
    with pytest.raises(ZeroScoreTies) as raised:
        _scored(case, "synaptic_flow")
    message = str(raised.value)
    named = [float(re.search(r"reach ([0-9.]+)x at the lowest", message).group(1))]
    lower = re.search(r"lower it to ([0-9.]+)x or below", message)
    assert (lower is not None) == (case["signs"]["negative"] > 0)
    if lower:
        named.append(float(lower.group(1)))
    for compression in named:
        met = _case(case["method"], 1 / compression)  # recorded for these
        assert met["kept"] == met["budget"] and not met["aborted"] and met["threshold"] != 0


def test_the_named_compression_keeps_no_more_than_the_positive_scores_under_the_count():
    """N / P to 4 digits can keep a zero-score weight again: 10,000 / 8,000 = 1.25x keeps
    10,000 - int(0.19999999999999996 x 10,000) = 8,001; the refusal names 1.251x."""
    assert kept_count(1 / 1.25, 10_000, "synaptic_flow") == 8_001
    assert compression_keeping(10_000, 8_000, at_most=True) == 1.251
    assert compression_keeping(10_000, 5_000, at_most=False) == 2.0
    assert compression_keeping(10**7, 10**6 + 1, at_most=True) == 10.0  # across a decade
    for total, keep in [(9_880, 9_402), (9_880, 5_316), (1_000_003, 123_457), (61_706, 6_171)]:
        upper, lower = compression_keeping(total, keep, True), compression_keeping(total, keep, False)
        assert kept_count(1 / upper, total, "synaptic_flow") <= keep <= kept_count(1 / lower, total, "synaptic_flow")
        assert upper - lower <= 10.0 ** (math.floor(math.log10(upper)) - 3) * 2


def test_the_pruner_turns_zero_ties_into_one_user_error():
    case = _case("snip", 0.96)
    raw = {"method": "snip", "start": "init", "scope": "global", "density": case["density"],
           "prune_classifier": True, "at_init": {"score_batches": 2, "count": "synaptic_flow"}}
    exp = config.parse({"name": "conformance", "prune": raw}, "zero_ties.toml")
    ctx = PruneContext(exp=exp, model=_model(), train_loader=_zero_channel_batches(), test_loader=None,
                       device=torch.device("cpu"))
    pruner = AtInitPruner(ctx)
    assert pruner.names == WEIGHTS
    with pytest.raises(UserError) as raised:
        pruner.prune_round(1)
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert message.startswith('zero_ties.toml: prune.at_init.count = "synaptic_flow": snip at 1.042x')
    assert f"{ZERO['total'] / case['kept']:.4g}x" in message
