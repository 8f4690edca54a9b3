"""Quantizers: Han's k-means weight sharing and centroid fine-tuning, MASE's fixed point."""

from __future__ import annotations

import io
import time

import pytest
import torch
import torch.nn as nn

from prunelab.families.compression.quantize import (
    Quantized,
    bake,
    fixed_point,
    kmeans_share,
    quantizable_layers,
    quantize_model,
    share,
)


def random_layer(shape=(40, 30), density=0.5, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 0.1, torch.rand(shape, generator=g) < density


def squared_error(q: Quantized, weight: torch.Tensor) -> float:
    return float(((q.values().double() - weight.double()) ** 2)[q.mask].sum())


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 4))


def random_masks(model: nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(model.get_parameter(name).shape, generator=g) < 0.6 for name in quantizable_layers(model)}


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    g = torch.Generator().manual_seed(2)
    for _ in range(steps):
        x, y = torch.randn(16, 12, generator=g), torch.randint(0, 4, (16,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def test_kmeans_codebook_values_pruned_zero_and_at_most_k():
    weight, mask = random_layer()
    q = kmeans_share(weight, mask, bits=3)
    values = q.values()
    assert q.codebook.dtype == torch.float32 and q.labels.dtype == torch.int64
    assert q.codebook.numel() <= 8 and torch.all(q.codebook[1:] >= q.codebook[:-1])
    assert torch.isin(values[mask], q.codebook).all()
    assert torch.equal(values[~mask], torch.zeros(int((~mask).sum())))
    assert torch.all(values[~mask].view(torch.int32) == 0)  # +0.0, not -0.0
    assert torch.all(q.labels[~mask] == 0)
    assert torch.unique(values[mask]).numel() <= 8


def test_kmeans_linear_init_hand_computed():
    # Kept weights 0, 1, 2, 9, 10; the pruned 100 and -50 must not move anything.
    weight = torch.tensor([0.0, 1.0, 100.0, 2.0, 9.0, -50.0, 10.0])
    mask = torch.tensor([True, True, False, True, True, False, True])
    # Linear init for K=2: centroids 0 and 10, midpoint 5 -> clusters {0,1,2}, {9,10};
    # means 1 and 9.5, midpoint 5.25 -> same clusters: converged.
    q = kmeans_share(weight, mask, bits=1)
    assert torch.equal(q.codebook, torch.tensor([1.0, 9.5]))
    assert torch.equal(q.labels, torch.tensor([0, 0, 0, 0, 1, 0, 1]))
    assert torch.equal(q.values(), torch.tensor([1.0, 1.0, 0.0, 1.0, 9.5, 0.0, 9.5]))
    assert torch.equal(kmeans_share(weight, mask, bits=1, max_iter=0).codebook, torch.tensor([0.0, 10.0]))


def test_kmeans_fewer_distinct_values_than_clusters_is_exact():
    weight = torch.tensor([[0.5, -0.25, 0.5], [3.0, -0.25, 7.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    q = kmeans_share(weight, mask, bits=4)
    assert torch.equal(q.codebook, torch.tensor([-0.25, 0.5, 3.0]))
    assert torch.equal(q.values(), weight * mask)


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_lloyd_never_increases_squared_error(init):
    weight, mask = random_layer()
    errors = [
        squared_error(kmeans_share(weight, mask, 3, init, torch.Generator().manual_seed(5), max_iter=i), weight)
        for i in range(0, 12)
    ]
    assert all(later <= earlier * (1 + 1e-9) for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < errors[0]


def test_kmeans_deterministic_and_random_init_reproducible():
    weight, mask = random_layer()
    a, b = kmeans_share(weight, mask, 4), kmeans_share(weight, mask, 4)
    assert torch.equal(a.codebook, b.codebook) and torch.equal(a.labels, b.labels)

    def random_init(seed):
        return kmeans_share(weight, mask, 4, "random", torch.Generator().manual_seed(seed), max_iter=0).codebook

    first, again, other = random_init(3), random_init(3), random_init(4)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.numel() == 16 and torch.unique(first).numel() == 16
    assert torch.isin(first, weight[mask]).all()  # drawn among the surviving weights


def test_density_init_at_the_quantiles():
    weight, mask = random_layer()
    levels = (torch.arange(8, dtype=torch.float64) + 0.5) / 8
    expected = torch.quantile(weight[mask].double(), levels).float()
    got = kmeans_share(weight, mask, 3, "density", max_iter=0).codebook
    assert torch.allclose(got, expected, rtol=0, atol=1e-7)


def test_kmeans_400k_weights_256_clusters_fast():
    weight, mask = random_layer((1000, 800), density=0.5)
    start = time.perf_counter()
    q = kmeans_share(weight, mask, 8)
    assert time.perf_counter() - start < 2.0  # well under 1 s unloaded; loose for a busy machine
    assert q.codebook.numel() == 256


def test_fixed_point_hand_checked():
    weight = torch.tensor([7.99, 100.0, -8.0, -9.0, 0.03, 0.04, -0.03125, 0.09375, 50.0])
    mask = torch.tensor([True] * 8 + [False])
    q = fixed_point(weight, mask, total_bits=8, frac_bits=4)
    # 0.03125*16 = 0.5 and 0.09375*16 = 1.5: round half to even -> 0 and 2
    expected = torch.tensor([7.9375, 7.9375, -8.0, -8.0, 0.0, 0.0625, 0.0, 0.125, 0.0])
    assert torch.equal(q.values(), expected)
    assert torch.equal(q.labels, torch.tensor([255, 255, 0, 0, 128, 129, 128, 130, 0]))
    assert q.codebook.numel() == 256 and q.codebook[0] == -8.0 and q.codebook[-1] == 7.9375
    grid = random_layer()[0] * 40
    on_grid = fixed_point(grid, torch.ones_like(grid, dtype=torch.bool)).values() * 16
    assert torch.equal(on_grid, on_grid.round()) and on_grid.min() >= -128 and on_grid.max() <= 127


def test_centroid_gradient_is_per_cluster_sum_of_weight_gradients():
    layer = nn.Linear(3, 2, bias=False)
    labels = torch.tensor([[0, 1, 0], [1, 0, 0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    share(layer, {"weight": Quantized(torch.tensor([-0.5, 0.25]), labels, mask, "kmeans", 1)})
    x = torch.tensor([[1.0, 2.0, 3.0]])
    (layer(x) * torch.tensor([[1.0, 10.0]])).sum().backward()
    # dL/dW[i, j] = c_i * x_j = [[1, 2, 3], [10, 20, 30]]; (0, 2) is pruned.
    # cluster 0: (0,0) + (1,1) + (1,2) = 1 + 20 + 30; cluster 1: (0,1) + (1,0) = 2 + 10
    codebook = layer.parametrizations.weight[0].codebook
    assert torch.equal(codebook.grad, torch.tensor([51.0, 12.0]))
    assert layer.parametrizations.weight.original.grad is None


@pytest.mark.parametrize("optimizer_type", [torch.optim.SGD, torch.optim.Adam])
def test_shared_training_then_bake(optimizer_type):
    model = tiny_model()
    names = quantizable_layers(model)
    keys = list(model.state_dict())
    masks = random_masks(model)
    layers = quantize_model(model, masks, bits=lambda name, module: 2 if name == "0.weight" else 3)
    share(model, layers)
    originals = {n: model.get_submodule(n[0]).parametrizations.weight.original.clone() for n in names}
    kwargs = {"momentum": 0.9} if optimizer_type is torch.optim.SGD else {}
    train_steps(model, optimizer_type(model.parameters(), lr=0.05, weight_decay=5e-4, **kwargs))
    for name in names:
        module = model.get_submodule(name[0])
        assert not torch.equal(module.parametrizations.weight[0].codebook, layers[name].codebook)
        assert torch.equal(module.parametrizations.weight.original, originals[name])
        assert torch.all(module.weight[~masks[name]] == 0)
        assert torch.unique(module.weight[masks[name]]).numel() <= layers[name].codebook.numel()

    final = bake(model, layers)
    assert list(model.state_dict()) == keys
    for name in names:
        weight = model.get_parameter(name)
        assert type(weight) is nn.Parameter and weight.requires_grad
        assert torch.equal(weight.view(torch.int32), final[name].values().view(torch.int32))
        assert torch.equal(final[name].labels, torch.where(masks[name], final[name].labels, 0))
        assert torch.all(final[name].codebook[1:] >= final[name].codebook[:-1])
        assert final[name].codebook.numel() == (4 if name == "0.weight" else 8)


def test_shared_model_state_dict_round_trip():
    model = tiny_model()
    layers = quantize_model(model, random_masks(model), bits=3)
    share(model, layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    train_steps(model, optimizer, steps=2)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    fresh = tiny_model(seed=9)
    share(fresh, quantize_model(fresh, random_masks(fresh), bits=3))
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    fresh.load_state_dict(state["model"])
    fresh_optimizer.load_state_dict(state["optimizer"])
    x = torch.randn(5, 12)
    assert torch.equal(fresh(x), model(x))
    train_steps(model, optimizer, steps=1)
    train_steps(fresh, fresh_optimizer, steps=1)
    assert torch.equal(fresh(x), model(x))


def test_fixed_point_straight_through_training_then_bake():
    model = tiny_model()
    masks = random_masks(model)
    layers = quantize_model(model, masks, bits=8, method="fixed", frac_bits=4)
    share(model, layers)
    first = model[0]
    assert torch.equal(first.weight, layers["0.weight"].values())
    original = first.parametrizations.weight.original
    assert original.requires_grad
    x = torch.randn(3, 12)
    (model(x) ** 2).sum().backward()
    # straight through: the original's gradient is the weight's, zero where pruned
    assert original.grad is not None and original.grad[masks["0.weight"]].abs().sum() > 0
    assert torch.all(original.grad[~masks["0.weight"]] == 0)
    before = original.detach().clone()
    train_steps(model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9))
    assert not torch.equal(original, before)

    final = bake(model, layers)
    for name, q in final.items():
        weight = model.get_parameter(name)
        assert torch.equal(weight.view(torch.int32), q.values().view(torch.int32))
        assert torch.equal(weight * 16, (weight * 16).round()) and torch.all(weight[~masks[name]] == 0)
        assert (q.kind, q.bits, q.frac_bits) == ("fixed", 8, 4)
