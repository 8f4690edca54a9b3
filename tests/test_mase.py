"""The mase family (MASE group 3's prune pass): weight masks by group norm or at random, per layer or
global; input masks (activation pruning) applied at run time, saved, rebuilt and counted in the FLOPs."""

from __future__ import annotations

import copy
import json
import tomllib

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunelab import checkpoints, config, family, paths
from prunelab.atomic import load_torch
from prunelab.errors import UserError
from prunelab.families.mase.activation_ranking import activation_masks, channel_stats
from prunelab.families.mase.weights import weight_masks
from prunelab.metrics import layer_stats, summarize
from prunelab.pruning.activations import (attach_input_masks, input_density, input_masks, live_weights,
                                          maskable_layers, saved_input_masks)
from prunelab import stages

# MASE group 3's example: VGG7 on CIFAR-10, 20% of the weights (element-wise, L1 norm, per layer) and
# 10% of the activations pruned.
EXAMPLE = """
name = "vgg7_cifar10_mase"
seed = 0

[data]
dataset = "cifar10"

[model]
arch = "vgg7"

[prune]
method = "l1-norm"
granularity = "element"
scope = "layer"
sparsity = 0.2
prune_classifier = true
activation_sparsity = 0.1
activation_method = "l1-norm"
calibration_batches = 10

[prune.finetune]
epochs = 10
"""


def _cfg(**prune) -> config.PruneConfig:
    return config.parse({"name": "x", "prune": {"method": "l1-norm", **prune}}, "x.toml").prune


def _conv_with_kernels(values: list[list[list[float]]]) -> nn.Conv2d:
    """A conv whose kernel (o, i) holds the 4 weights values[o][i] (2x2 kernels)."""
    weight = torch.tensor(values, dtype=torch.float32)
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight.view(conv.weight.shape))
    return conv


def _ones(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {name: torch.ones_like(params[name], dtype=torch.bool) for name in names}


def test_example_config_selects_the_family():
    exp = config.parse(tomllib.loads(EXAMPLE), "example.toml")
    assert family.of(exp).name == "mase"
    assert (exp.prune.activation_sparsity, exp.prune.activation_method, exp.prune.calibration_batches) == (
        0.1, "l1-norm", 10)


def test_kernels_kept_are_the_largest_by_norm_and_l1_differs_from_l2():
    # Kernel (0, 0): one weight 3 (L1 3, L2 3); kernel (0, 1): four weights 1 (L1 4, L2 2).
    model = nn.Sequential(_conv_with_kernels([[[3, 0, 0, 0], [1, 1, 1, 1]]]))
    current = _ones(model, ["0.weight"])
    l1 = weight_masks(_cfg(granularity="kernel", sparsity=0.5), 1, model, current, seed=0)["0.weight"]
    l2 = weight_masks(_cfg(method="l2-norm", granularity="kernel", sparsity=0.5), 1, model, current, seed=0)["0.weight"]
    assert l1[0, 1].all() and not l1[0, 0].any()
    assert l2[0, 0].all() and not l2[0, 1].any()


def test_kernel_masks_keep_exact_counts_per_layer():
    values = [[[v] * 4 for v in row] for row in ([1, -6], [3, 2], [-5, 4])]  # |kernel| order: 6 5 4 3 2 1
    model = nn.Sequential(_conv_with_kernels(values))
    mask = weight_masks(_cfg(granularity="kernel", sparsity=0.5), 1, model, _ones(model, ["0.weight"]), 0)["0.weight"]
    kept = mask.flatten(2).all(2)
    assert (mask.flatten(2).all(2) == mask.flatten(2).any(2)).all()  # whole kernels
    assert kept.tolist() == [[False, True], [False, False], [True, True]]


def test_channel_masks_zero_whole_filters_and_rows():
    conv = _conv_with_kernels([[[1] * 4, [1] * 4], [[0.1] * 4, [0.1] * 4], [[2] * 4, [-2] * 4]])
    linear = nn.Linear(3, 4, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 1, 1], [0, 0, 0.5], [3, 0, 0], [0.2, 0.2, 0.2]]))
    model = nn.Sequential(conv, nn.Flatten(), linear)
    masks = weight_masks(_cfg(granularity="channel", density=0.5), 1, model, _ones(model, ["0.weight", "2.weight"]), 0)
    # Filters: round(0.5 x 3) = 2 kept, the weakest (0.1) goes whole; rows: 2 of 4 by mean |w|.
    assert [bool(masks["0.weight"][o].all()) for o in range(3)] == [True, False, True]
    assert int(masks["0.weight"].sum()) == 2 * 8
    assert masks["2.weight"].all(1).tolist() == [True, False, True, False]
    assert (masks["2.weight"].all(1) == masks["2.weight"].any(1)).all()


def test_global_scope_compares_groups_per_weight_within_one_group_of_the_target():
    # conv kernels: 9 weights of 0.5 (L1 sum 4.5) and 9 of 3.0; the linear's "kernels" are single weights.
    model = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([0.5, 3.0]).view(2, 1, 1, 1).expand(2, 1, 3, 3))
        model[2].weight.copy_(torch.tensor([[1.0, 2.0, 4.0, 0.1]]))
    current = _ones(model, ["0.weight", "2.weight"])
    # 22 weights, density 1/2 -> 11. By mean |w|: the weight 4 (1 weight), the 3.0 kernel (10), the
    # weight 2 (11). By L1 sums the 0.5 kernel (4.5) would come before the 4.
    masks = weight_masks(_cfg(granularity="kernel", scope="global", density=0.5), 1, model, current, 0)
    assert masks["0.weight"][:, 0, 0, 0].tolist() == [False, True]
    assert masks["2.weight"].tolist() == [[False, True, True, False]]
    # 5 weights wanted: the 4, then the 3.0 kernel reaches 10 (the overshoot is less than one group).
    masks = weight_masks(_cfg(granularity="kernel", scope="global", density=5 / 22), 1, model, current, 0)
    assert int(masks["0.weight"].sum()) == 9 and masks["2.weight"].tolist() == [[False, False, True, False]]
    # Element-wise the global count is exact.
    masks = weight_masks(_cfg(scope="global", density=0.5), 1, model, current, 0)
    assert sum(int(m.sum()) for m in masks.values()) == 11


def test_element_rounds_are_exact_and_masks_only_shrink():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(10, 7))
    current = _ones(model, ["0.weight", "2.weight"])
    cfg = _cfg(granularity="kernel", sparsity=0.75, iterations=2)
    first = weight_masks(cfg, 1, model, current, 0)
    second = weight_masks(cfg, 2, model, first, 0)
    for name, mask in second.items():
        assert not (mask & ~first[name]).any()  # masks only shrink
        groups = mask.shape[0] * mask.shape[1]
        assert int(mask.flatten(2).all(2).sum() if mask.dim() == 4 else mask.sum()) == round(0.25 * groups)


def test_random_is_seeded_and_exact():
    model = nn.Sequential(nn.Conv2d(4, 6, 3), nn.Flatten(), nn.Linear(10, 10))
    current = _ones(model, ["0.weight", "2.weight"])
    cfg = _cfg(method="random", family="mase", granularity="kernel", sparsity=0.5)
    a, b, c = (weight_masks(cfg, 1, model, current, seed) for seed in (1, 1, 2))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)
    assert int(a["0.weight"].flatten(2).all(2).sum()) == 12 and int(a["2.weight"].sum()) == 50


def _identity_then(layer_in: int, layer_out: int) -> nn.Sequential:
    """A first linear layer that passes its input through unchanged, then the layer whose input is ranked."""
    model = nn.Sequential(nn.Linear(layer_in, layer_in), nn.Linear(layer_in, layer_out))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(layer_in))
        model[0].bias.zero_()
    return model


# Channels (columns) over 4 samples: l1 = 1, 0.75, 0.5, 1; l2 = 1, 1.5, 0.5, 1.41; zeros = 0, 75%, 0, 50%.
PATTERN = torch.tensor([[1.0, 3, 0.5, 2], [1, 0, 0.5, 2], [1, 0, 0.5, 0], [1, 0, 0.5, 0]])


@pytest.mark.parametrize("method, kept", [("l1-norm", [0, 3]), ("l2-norm", [1, 3]), ("apoz", [0, 2])])
def test_activation_methods_pick_the_expected_channels(method, kept):
    model = _identity_then(4, 2)
    masks = activation_masks(model, [PATTERN[:2], PATTERN[2:]], 0.5, method, seed=0)
    assert list(masks) == ["1"]  # not the first layer: its input is the data
    assert masks["1"].nonzero().flatten().tolist() == kept


def test_similarity_drops_the_weaker_of_a_duplicated_channel():
    base = torch.tensor([1.0, 2, 3, 4])
    pattern = torch.stack([base, 2 * base, torch.tensor([4.0, -1, 0, 2]), torch.tensor([0.0, 1, -2, 1])], 1)
    masks = activation_masks(_identity_then(4, 2), [pattern], 0.25, "similarity", seed=0)
    assert masks["1"].tolist() == [False, True, True, True]


def test_random_activation_masks_are_seeded():
    model = _identity_then(20, 2)
    a, b, c = (activation_masks(model, [], 0.5, "random", seed) for seed in (0, 0, 1))
    assert torch.equal(a["1"], b["1"]) and not torch.equal(a["1"], c["1"]) and int(a["1"].sum()) == 10


def test_conv_statistics_cover_every_position():
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 2, 1))
    stats = channel_stats(model, ["1"], [torch.ones(2, 1, 4, 5)])["1"]
    assert stats.positions == 2 * 4 * 5 and stats.abs_sum.shape == (3,)


def test_masks_apply_at_run_time_and_survive_state_dict_copy_and_device_moves():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3))
    x = torch.randn(2, 2, 7, 7)
    dense_out = model(x)
    seen = {}
    mask = torch.tensor([True, False, True, False])
    attach_input_masks(model, {"2": mask})
    model[2].register_forward_pre_hook(lambda module, args: seen.update(input=args[0]))  # runs after the mask
    out = model(x)
    assert (seen["input"][:, ~mask] == 0).all() and (seen["input"][:, mask] != 0).any()
    expected = F.conv2d(F.relu(model[0](x)) * mask.view(1, -1, 1, 1), model[2].weight, model[2].bias)
    assert torch.allclose(out, expected) and not torch.allclose(out, dense_out)
    state = model.state_dict()
    assert state["2.input_mask"].dtype == torch.bool
    fresh = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3))
    attach_input_masks(fresh, saved_input_masks(state))
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x), out) and torch.equal(copy.deepcopy(fresh)(x), out)
    assert torch.equal(input_masks(fresh.to("cpu"))["2"], mask)
    assert input_density(fresh) == 0.5 and maskable_layers(fresh) == ["2"]


def test_effective_flops_count_skipped_inputs():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1))
    before = summarize(model, (1, 8, 8))
    dense_macs = 8 * 4 * 9 * 64  # out x in x kernel x positions
    assert before["layers"][1]["flops"] == dense_macs == before["layers"][1]["effective_flops"]
    attach_input_masks(model, {"1": torch.ones(4, dtype=torch.bool)})  # all kept: same numbers
    assert summarize(model, (1, 8, 8)) == before
    attach_input_masks(model, {"1": torch.tensor([True, False, True, False])})
    assert layer_stats(model, (1, 8, 8))[1].effective_flops == dense_macs / 2
    with torch.no_grad():
        model[1].weight[0].zero_()  # one filter of eight pruned too: 7/8 of the live half
    after = summarize(model, (1, 8, 8))
    assert after["layers"][1]["effective_flops"] == dense_macs * 7 / 16
    assert after["flops"] == before["flops"]  # the mask multiply is not a counted op


def test_grouped_conv_weights_read_their_own_group_of_channels():
    conv = nn.Conv2d(4, 4, 1, groups=2, bias=False)  # weight[o, j] reads channel 2 (o // 2) + j
    attach_input_masks(conv, {"": torch.tensor([True, True, False, True])})
    assert live_weights(conv).flatten(1).tolist() == [[True, True], [True, True], [False, True], [False, True]]


@pytest.mark.parametrize(
    "prune, words",
    [
        ({"method": "l3-norm", "sparsity": 0.2}, ["prune.method", "l1-norm"]),
        ({"method": "l1-norm", "sparsity": 0.2, "activation_sparsity": 1.0},
         ["prune.activation_sparsity", "less than 1"]),
        ({"method": "l1-norm", "sparsity": 0.2, "activation_method": "entropy"}, ["prune.activation_method", "apoz"]),
        ({"method": "magnitude", "sparsity": 0.2, "activation_sparsity": 0.1}, ["activation_sparsity", "mase"]),
        ({"method": "magnitude", "granularity": "kernel", "sparsity": 0.2}, ["l1-norm | l2-norm | random"]),
        ({"method": "l1-norm", "sparsity": 0.2, "start": "init"}, ["start", "dense"]),
        ({"method": "l1-norm", "sparsity": 0.2, "prune_bias": True}, ["prune_bias"]),
        ({"method": "l1-norm"}, ["give one of sparsity"]),
    ],
)
def test_bad_configs_name_the_key(prune, words):
    with pytest.raises(UserError) as error:
        config.parse({"name": "x", "prune": prune}, "x.toml")
    assert "\n" not in str(error.value) and "x.toml" in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_random_element_wise_stays_at_init_unless_mase_is_named():
    def chosen(**prune) -> str:
        return family.of(config.parse({"name": "x", "prune": {"sparsity": 0.5, **prune}}, "x.toml")).name

    assert chosen(method="random") == "at_init"
    assert chosen(method="random", family="mase") == "mase"
    assert chosen(method="random", granularity="channel") == "mase"
    assert chosen(method="l2-norm") == "mase"


def test_rebuild_attaches_saved_masks_before_loading(tiny_config):
    exp = config.load(tiny_config(model={"arch": "lenet5"}, prune={"method": "l1-norm", "sparsity": 0.5}))
    model = checkpoints.build_for(exp)
    assert checkpoints.build_model(exp, {"model": model.state_dict()}, "dense.pt").state_dict().keys() == \
        model.state_dict().keys()  # no masks: the configured model
    attach_input_masks(model, {"fc1": torch.arange(400) % 3 > 0})
    rebuilt = checkpoints.build_model(exp, {"model": model.state_dict()}, "pruned.pt")
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(input_masks(rebuilt)["fc1"], torch.arange(400) % 3 > 0)
    assert torch.equal(rebuilt(x), model(x))


def test_kernel_and_activation_pruning_end_to_end_and_resumable(tiny_config, capsys):
    path = tiny_config(model={"arch": "lenet5"}, train={"epochs": 1}, prune={
        "method": "l1-norm", "granularity": "kernel", "sparsity": 0.5, "iterations": 2, "activation_sparsity": 0.1,
        "activation_method": "apoz", "calibration_batches": 2, "finetune": {"epochs": 1, "lr": 0.01}})
    exp = config.load(path)
    stages.get_dataset(exp)
    stages.train(exp)
    stages.prune(exp)
    pruned = load_torch(paths.pruned(exp))
    masks, state = pruned["masks"], pruned["model"]
    kernels = masks["conv2.weight"].flatten(2)
    assert (kernels.all(2) == kernels.any(2)).all() and int(kernels.all(2).sum()) == 48  # half of 16 x 6 kernels
    assert int(masks["fc1.weight"].sum()) == masks["fc1.weight"].numel() // 2  # a linear's kernel is one weight
    assert {name: int(mask.sum()) for name, mask in saved_input_masks(state).items()} == {
        "conv2": 5, "fc1": 360, "fc2": 108, "fc3": 76}  # round(0.9 x channels); conv1 reads the image
    log = pruned["log"]
    assert log[0]["input_density"] == 1.0 and log[1]["input_density"] == pytest.approx(549 / 610)

    stages.test(exp)
    metrics = json.loads(paths.metrics(exp).read_text())
    rebuilt = checkpoints.build_model(exp, pruned, paths.pruned(exp))
    unmasked = sum(layer.flops * layer.weight_density for layer in layer_stats(rebuilt, (1, 28, 28)))
    masked = sum(layer.effective_flops for layer in layer_stats(rebuilt, (1, 28, 28)))
    assert masked < unmasked and metrics["pruned"]["effective_flops"] < metrics["dense"]["flops"]
    stages.report(exp)
    text = paths.report(exp).read_text()
    assert "## Weights and input channels kept" in text and "| fc1 " in text and "360 / 400" in text

    # Resume from the last round (input masks in the checkpoint), then from round 1 (recalibrated).
    for stale, resumed in (([paths.pruned(exp)], 2), ([paths.pruned(exp), paths.prune_round(exp, 2)], 1)):
        for artifact in stale:
            artifact.unlink()
        capsys.readouterr()
        stages.prune(exp)
        assert f"resuming prune after round {resumed}/2" in capsys.readouterr().out
        again = load_torch(paths.pruned(exp))["model"]
        assert again.keys() == state.keys() and all(torch.equal(again[k], state[k]) for k in state)
