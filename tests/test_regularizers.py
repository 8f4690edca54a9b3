"""DeepHoyer regularizers, threshold pruning, structural statistics and their config (CPU, tiny tensors)."""

from __future__ import annotations

import math
import typing

import pytest
import torch
import torch.nn as nn

from prunelab import config, family
from prunelab.config import schema
from prunelab.errors import UserError
from prunelab.families.deephoyer import regularizers
from prunelab.families.deephoyer.regularizers import REGULARIZERS, build_regularizer, group_norms, regularizer_kind
from prunelab.families.deephoyer.settings import RegularizerConfig
from prunelab.families.deephoyer.structure import structure_stats
from prunelab.families.deephoyer.threshold import ThresholdPruner, threshold_round_masks
from prunelab.pruning.masks import MaskSet, prunable_parameters
from prunelab.stages.train import train


def _prune_cfg(**fields):
    return schema.current().prune(method="threshold", **fields)


# ---------------------------------------------------------------- values


def test_element_values_by_hand():
    w = torch.tensor([3.0, -4.0])
    assert regularizers.l1(w).item() == pytest.approx(7)
    assert regularizers.hoyer(w).item() == pytest.approx(7 / 5)
    assert regularizers.hoyer_square(w).item() == pytest.approx(49 / 25)
    assert regularizers.transformed_l1(w).item() == pytest.approx(2 * 3 / 4 + 2 * 4 / 5)


def test_hoyer_bounds_and_scale_invariance():
    one_hot = torch.tensor([0.0, 0.0, 5.0, 0.0])
    flat = torch.full((4,), 0.3)
    assert regularizers.hoyer_square(one_hot).item() == pytest.approx(1)  # sparsest
    assert regularizers.hoyer_square(flat).item() == pytest.approx(4)  # densest: n
    w = torch.randn(10, generator=torch.Generator().manual_seed(0))
    assert regularizers.hoyer(7 * w).item() == pytest.approx(regularizers.hoyer(w).item(), rel=1e-6)


def test_group_values_by_hand():
    # rows: norms 5 and 0; columns: norms 3 and 4
    w = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    rows, cols = group_norms(w)
    assert rows.tolist() == pytest.approx([5, 0])
    assert cols.tolist() == pytest.approx([3, 4])
    assert regularizers.group_lasso(w).item() == pytest.approx(5 + 7)
    assert regularizers.group_hoyer_square(w).item() == pytest.approx(25 / 25 + 49 / 25)


def test_conv_groups_are_filters_and_input_channels():
    w = torch.zeros(3, 2, 2, 2)  # (out, in, kh, kw)
    w[0, 1] = 1.0  # filter 0, input channel 1: 4 ones
    w[2, 1, 0, 0] = 3.0
    rows, cols = group_norms(w)
    assert rows.tolist() == pytest.approx([2, 0, 3])
    assert cols.tolist() == pytest.approx([0, math.sqrt(4 + 9)])
    assert regularizers.group_lasso(w).item() == pytest.approx(5 + math.sqrt(13))


@pytest.mark.parametrize("name", REGULARIZERS.names())
def test_all_zero_tensor_gives_zero_and_finite_gradient(name):
    w = torch.zeros(3, 4, requires_grad=True)
    value = REGULARIZERS.get(name)(w)
    value.backward()
    assert value.item() == 0
    assert torch.isfinite(w.grad).all()


@pytest.mark.parametrize("name", REGULARIZERS.names())
def test_gradients_match_finite_differences(name):
    # Entries bounded away from 0 (|w| is not differentiable there) and no zero group.
    g = torch.Generator().manual_seed(1)
    w = (torch.rand(3, 2, 2, 2, generator=g, dtype=torch.float64) + 0.1) * torch.sign(
        torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64)
    )
    w.requires_grad_(True)
    assert torch.autograd.gradcheck(REGULARIZERS.get(name), (w,))


def test_group_gradient_is_zero_on_a_zero_group():
    w = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    regularizers.group_lasso(w).backward()
    assert torch.isfinite(w.grad).all()
    assert w.grad[1].tolist() == [0.0, 0.0]


def test_kinds_and_config_literal_match_the_registry():
    assert {regularizer_kind(n) for n in ("l1", "hoyer", "hoyer_square", "transformed_l1")} == {"element"}
    assert {regularizer_kind(n) for n in ("group_lasso", "group_hoyer_square")} == {"structure"}
    literal = typing.get_args(RegularizerConfig.model_fields["kind"].annotation)
    assert sorted(literal) == REGULARIZERS.names()


# ---------------------------------------------------------------- build_regularizer


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 5), nn.ReLU(), nn.Linear(5, 3))


def test_build_regularizer_sums_prunable_weights_times_decay():
    model = _tiny_net()
    cfg = RegularizerConfig(kind="hoyer_square", decay=0.01)
    penalty = build_regularizer(cfg, model, prunable_parameters(model))
    params = dict(model.named_parameters())
    expected = 0.01 * sum(regularizers.hoyer_square(params[n]).item() for n in ("0.weight", "2.weight"))
    assert penalty(model).item() == pytest.approx(expected, rel=1e-6)
    assert penalty.kind == "element" and penalty.names == ["0.weight", "2.weight"]  # classifier excluded
    penalty(model).backward()
    assert params["0.weight"].grad is not None and params["4.weight"].grad is None


def test_build_regularizer_zero_decay_and_default_names():
    model = _tiny_net()
    penalty = build_regularizer(RegularizerConfig(kind="group_lasso", decay=0), model)
    assert penalty(model).item() == 0
    assert penalty.kind == "structure"


# ---------------------------------------------------------------- threshold masks


def test_element_threshold_fixed_and_std_ratio():
    model = nn.Sequential(nn.Linear(4, 2), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, -0.5, 2.0, 0.0], [-3.0, 0.2, 0.05, 1.0]]))
    current = {"0.weight": torch.ones(2, 4, dtype=torch.bool)}
    masks = threshold_round_masks(_prune_cfg(threshold=0.3), model, current)
    assert masks["0.weight"].tolist() == [[False, True, True, False], [True, False, False, True]]
    ratio = 0.5
    t = ratio * model[0].weight.detach().std().item()
    masks = threshold_round_masks(_prune_cfg(std_ratio=ratio), model, current)
    assert torch.equal(masks["0.weight"], model[0].weight.detach().abs() > t)
    # method = "threshold" selects the DeepHoyer family, whose rounds are these masks
    assert family.select(_prune_cfg(threshold=0.3)).pruner is ThresholdPruner


def test_threshold_masks_only_shrink():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]]))
    current = {"0.weight": torch.tensor([[True, False, True], [True, True, False]])}
    masks = threshold_round_masks(_prune_cfg(threshold=0.1), model, current)
    assert torch.equal(masks["0.weight"], current["0.weight"])  # large weights do not revive pruned ones
    structural = threshold_round_masks(_prune_cfg(threshold=0.1, granularity="structure", structure_rule="group_norm"), model, current)
    assert not (structural["0.weight"] & ~current["0.weight"]).any()


def test_structural_threshold_zeros_weak_filters_and_channels():
    conv = nn.Conv2d(3, 4, 3, bias=True)
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        conv.weight.fill_(1.0)  # each filter norm: sqrt(3*9) = 5.2; each channel norm: sqrt(4*9) = 6
        conv.weight[1].fill_(0.01)  # filter 1: norm 0.052
        conv.weight[:, 2].mul_(0.01)  # input channel 2: norm ~0.052
    names = prunable_parameters(model, prune_bias=True, prune_classifier=False)
    masks = MaskSet.ones(model, names)
    masks.update(threshold_round_masks(_prune_cfg(threshold=1.0, granularity="structure", structure_rule="group_norm"), model, masks.masks))
    weight = conv.weight.detach()
    assert (weight[1] == 0).all()  # the weak filter is all-zero
    assert (weight[:, 2] == 0).all()  # the weak input channel is all-zero
    assert (weight[[0, 2, 3]][:, [0, 1]] != 0).all()  # everything else survives
    assert conv.bias[1].item() == 0 and (conv.bias[[0, 2, 3]] != 0).all()  # bias follows its filter


def test_structural_std_ratio_uses_group_norm_std():
    lin = nn.Linear(3, 4, bias=False)
    model = nn.Sequential(lin, nn.Linear(4, 2))
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [0.1, 0.1, 0.1], [2.0, 2.0, 2.0], [1.5, 1.5, 1.5]]))
    row_norms = lin.weight.detach().norm(dim=1)
    col_norms = lin.weight.detach().norm(dim=0)  # all equal: std 0, no column is dropped
    masks = threshold_round_masks(_prune_cfg(std_ratio=1.0, granularity="structure", structure_rule="group_norm"), model,
                                  {"0.weight": torch.ones(4, 3, dtype=torch.bool)})
    kept_rows = row_norms > row_norms.std()
    assert kept_rows.tolist() == [True, False, True, True]
    assert masks["0.weight"].tolist() == [[bool(k)] * 3 for k in kept_rows]
    assert col_norms.std().item() == pytest.approx(0, abs=1e-6)


# ---------------------------------------------------------------- config


def _raw(**prune) -> dict:
    return {"name": "x", "prune": prune}


def test_threshold_config_accepts_one_rule():
    exp = config.parse(_raw(method="threshold", std_ratio=0.25), "x.toml")
    assert exp.prune.std_ratio == 0.25 and exp.prune.granularity == "element"
    exp = config.parse(_raw(method="threshold", threshold=1e-3, granularity="structure"), "x.toml")
    assert exp.prune.threshold == 1e-3


@pytest.mark.parametrize(
    "prune, words",
    [
        ({"method": "threshold"}, ["x.toml", "prune", "threshold", "std_ratio"]),
        ({"method": "threshold", "threshold": 0.1, "std_ratio": 0.2}, ["x.toml", "prune", "exactly one"]),
        ({"method": "threshold", "std_ratio": 0.2, "sparsity": 0.9}, ["x.toml", "prune", "sparsity"]),
        ({"method": "threshold", "threshold": 0.1, "quality": 1.0}, ["x.toml", "prune", "quality"]),
        ({"sparsity": 0.9, "threshold": 0.1}, ["x.toml", "prune", "threshold", "method"]),
        ({"sparsity": 0.9, "granularity": "structure"}, ["x.toml", "prune", "granularity"]),
        ({"method": "threshold", "threshold": -1}, ["x.toml", "prune.threshold"]),
        ({"method": "threshold", "std_ratio": 0.2, "scope": "global"}, ["x.toml", "prune", "scope"]),
    ],
)
def test_bad_prune_configs_name_the_key(prune, words):
    with pytest.raises(UserError) as error:
        config.parse(_raw(**prune), "x.toml")
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_regularizer_config():
    exp = config.parse({"name": "x", "train": {"regularizer": {"kind": "hoyer_square", "decay": 1e-4},
                                               "pretrained": "results/a/dense.pt"}}, "x.toml")
    assert exp.train.regularizer.kind == "hoyer_square" and exp.train.pretrained == "results/a/dense.pt"
    assert config.parse({"name": "x"}, "x.toml").train.regularizer is None
    with pytest.raises(UserError, match=r"x\.toml: train\.regularizer\.kind"):
        config.parse({"name": "x", "train": {"regularizer": {"kind": "l3", "decay": 1}}}, "x.toml")
    with pytest.raises(UserError, match=r"x\.toml: train\.regularizer\.decay"):
        config.parse({"name": "x", "train": {"regularizer": {"kind": "l1", "decay": -1}}}, "x.toml")
    with pytest.raises(UserError, match=r"x\.toml: train\.regularizer\.decay"):
        config.parse({"name": "x", "train": {"regularizer": {"kind": "l1"}}}, "x.toml")
    with pytest.raises(UserError, match=r"x\.toml: train\.regularizer\.scale"):
        config.parse({"name": "x", "train": {"regularizer": {"kind": "l1", "decay": 1, "scale": 2}}}, "x.toml")


def test_missing_pretrained_is_a_user_error(tmp_path):
    exp = config.parse({"name": "x", "device": "cpu", "results_root": str(tmp_path),
                        "train": {"pretrained": str(tmp_path / "nope.pt")}}, "x.toml")
    with pytest.raises(UserError, match=r"^x\.toml: train\.pretrained: .*nope\.pt not found; make it first"):
        train(exp)


# ---------------------------------------------------------------- structural statistics


class _TwoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)  # 8x8 -> 8x8
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.fc = nn.Linear(6 * 8 * 8, 3, bias=False)

    def forward(self, x):
        return self.fc(self.conv2(self.conv1(x)).flatten(1))


def test_structure_stats_on_known_zero_rows():
    model = _TwoConv()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
        model.conv1.weight[[1, 3]] = 0  # 2 of 4 filters
        model.conv2.weight[:, 0] = 0  # input channel 0
        model.conv2.weight[5] = 0  # filter 5
        model.conv2.weight[0, 1, 0, 0] = 0  # a stray zero: element sparsity only
    stats = structure_stats(model, (1, 8, 8))
    conv1, conv2, fc = stats["layers"]
    hw = 8 * 8
    assert (conv1["zero_rows"], conv1["zero_cols"], conv1["out_kept"], conv1["in_kept"]) == (2, 0, 2, 1)
    assert conv1["sparsity"] == pytest.approx(0.5)
    assert conv1["macs"] == 4 * 1 * 9 * hw
    assert conv1["structural_weights"] == 2 * 1 * 9
    assert conv1["structural_macs"] == pytest.approx(2 * 1 * 9 * hw)
    assert (conv2["zero_rows"], conv2["zero_cols"]) == (1, 1)
    assert conv2["structural_weights"] == 5 * 3 * 9
    assert conv2["structural_macs"] == pytest.approx(5 * 3 * 9 * hw)
    assert conv2["sparsity"] == pytest.approx(1 - (5 * 3 * 9 - 1) / (6 * 4 * 9))
    assert (fc["zero_rows"], fc["zero_cols"], fc["structural_macs"]) == (0, 0, fc["macs"])
    total = stats["total"]
    dense = (4 * 9 + 6 * 4 * 9) * hw + 6 * hw * 3
    kept = (2 * 9 + 5 * 3 * 9) * hw + 6 * hw * 3
    assert total["macs"] == dense
    assert total["structural_macs"] == pytest.approx(kept)
    assert total["macs_reduction"] == pytest.approx(1 - kept / dense)
    assert total["structural_speedup"] == pytest.approx(dense / kept)
