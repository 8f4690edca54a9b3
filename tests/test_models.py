"""Models: parameter and FLOP (MAC) counts against the hand-computed values in docs/references.md."""

from __future__ import annotations

import pytest
import torch

from prunelab.metrics import flops_by_module, summarize
from prunelab.models import MODELS, build

# (params, {layer: MACs}) for one 28x28x1 image, from docs/references.md.
HAND_COMPUTED = {
    "lenet300_100": (266_610, {"fc1": 235_200, "fc2": 30_000, "fc3": 1_000}),
    "lenet5": (61_706, {"conv1": 117_600, "conv2": 240_000, "fc1": 48_000, "fc2": 10_080, "fc3": 840}),
    "lenet5_caffe": (431_080, {"conv1": 288_000, "conv2": 1_600_000, "fc1": 400_000, "fc2": 5_000}),
}


@pytest.mark.parametrize("arch", sorted(HAND_COMPUTED))
def test_params_and_macs_match_hand_computed(arch):
    params, macs = HAND_COMPUTED[arch]
    model = build(arch)
    assert sum(p.numel() for p in model.parameters()) == params
    by_module, total = flops_by_module(model, (1, 28, 28))
    assert {name: by_module[name] for name in macs} == macs
    assert total == sum(macs.values())


@pytest.mark.parametrize("arch", MODELS.names())
@pytest.mark.parametrize("in_channels, num_classes", [(1, 10), (3, 7)])
def test_every_model_runs_on_tiny_batches(arch, in_channels, num_classes):
    torch.manual_seed(0)
    model = build(arch, in_channels=in_channels, num_classes=num_classes)
    out = model(torch.randn(2, in_channels, 28, 28))
    assert out.shape == (2, num_classes)


def test_effective_flops_scale_with_weight_density():
    model = build("lenet5")
    with torch.no_grad():
        model.fc1.weight[:, :200] = 0  # half of fc1's 400 inputs
        model.conv2.weight[:4] = 0  # 4 of 16 filters
    stats = summarize(model, (1, 28, 28))
    layers = {layer["name"]: layer for layer in stats["layers"]}
    assert layers["fc1"]["effective_flops"] == 48_000 * 0.5
    assert layers["conv2"]["effective_flops"] == 240_000 * 0.75
    assert stats["effective_flops"] == 416_520 - 24_000 - 60_000
    weights = 61_706 - (6 + 16 + 120 + 84 + 10)  # minus biases
    assert stats["weights"] == weights
    assert stats["compression"] == pytest.approx(weights / (weights - 24_000 - 600))


def test_sparse_bytes_count_csr_storage():
    model = build("lenet300_100")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.fc3.weight[0, :5] = 1.0  # 5 nonzeros in a 10x100 weight
    layers = {layer["name"]: layer for layer in summarize(model, (1, 28, 28))["layers"]}
    # 5 x (4-byte value + 4-byte index) + 11 row pointers x 4 bytes + 10 dense fp32 biases
    assert layers["fc3"]["sparse_bytes"] == 5 * 8 + 11 * 4 + 10 * 4
    assert layers["fc3"]["dense_bytes"] == 1010 * 4
