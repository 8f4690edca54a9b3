"""Masks: exact sparsities, masks only shrink, zeros stay zero through any optimizer."""

from __future__ import annotations

import pytest
import torch

from prunelab import checkpoints
from prunelab import train as train_module
from prunelab.atomic import load_torch
from prunelab.config import FinetuneConfig
from prunelab.config import schema
from prunelab.data.loader import TensorLoader
from prunelab.families.magnitude.pruner import magnitude_masks
from prunelab.models import build
from prunelab.pruning.masks import MaskSet, prunable_parameters
from prunelab.pruning.schedule import density_at
from prunelab.pruning.selection import select_masks
from prunelab.train import KeepMasks, fit

PruneConfig = schema.current().prune  # [prune] with every family's keys


def test_prunable_parameters_skip_biases_and_classifier_by_default():
    model = build("lenet5")
    assert prunable_parameters(model) == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    assert "fc3.weight" in prunable_parameters(model, prune_classifier=True)
    assert "fc1.bias" in prunable_parameters(model, prune_bias=True)


@pytest.mark.parametrize("density", [0.5, 0.1, 0.0123])
def test_layer_scope_reaches_exact_counts(density):
    torch.manual_seed(0)
    model = build("lenet300_100")
    names = prunable_parameters(model, prune_classifier=True)
    masks = MaskSet.ones(model, names)
    scores = {n: p.detach().abs() for n, p in model.named_parameters() if n in names}
    new = select_masks(scores, masks.masks, {n: density for n in names})
    for name in names:
        assert int(new[name].sum()) == round(density * scores[name].numel())


def test_global_scope_reaches_exact_total_and_keeps_largest():
    torch.manual_seed(0)
    model = build("lenet5")
    names = prunable_parameters(model)
    masks = MaskSet.ones(model, names)
    scores = {n: p.detach().abs() for n, p in model.named_parameters() if n in names}
    new = select_masks(scores, masks.masks, {}, global_density=0.2)
    total = sum(scores[n].numel() for n in names)
    assert sum(int(m.sum()) for m in new.values()) == round(0.2 * total)
    kept = torch.cat([scores[n][new[n]] for n in names])
    dropped = torch.cat([scores[n][~new[n]] for n in names])
    assert kept.min() >= dropped.max()


def test_masks_only_shrink_and_schedule_reaches_target():
    torch.manual_seed(0)
    model = build("lenet300_100")
    cfg = PruneConfig(compression=10, iterations=3, scope="global", prune_classifier=True)
    names = prunable_parameters(model, prune_classifier=True)
    masks = MaskSet.ones(model, names)
    std = {n: p.detach().std().item() for n, p in model.named_parameters() if n in names}
    previous = {n: m.clone() for n, m in masks.masks.items()}
    for k in (1, 2, 3):
        with torch.no_grad():  # perturb weights so a naive re-ranking would revive pruned entries
            for n, p in model.named_parameters():
                p.add_(torch.randn_like(p))
        masks.update(magnitude_masks(cfg, k, model, masks.masks, std))
        for n in names:
            assert not (masks.masks[n] & ~previous[n]).any()
            previous[n] = masks.masks[n].clone()
        assert masks.density() == pytest.approx(density_at(0.1, k, 3, "exponential"), abs=1e-5)
    assert masks.density() == pytest.approx(0.1, abs=1e-5)


def test_quality_times_std_threshold():
    torch.manual_seed(0)
    model = build("lenet300_100")
    cfg = PruneConfig(quality=1.0, iterations=2)
    names = prunable_parameters(model)
    masks = MaskSet.ones(model, names)
    params = dict(model.named_parameters())
    std = {n: params[n].detach().std().item() for n in names}
    masks.update(magnitude_masks(cfg, 2, model, masks.masks, std))
    for n in names:
        expected = params[n].detach().abs() > std[n]
        assert torch.equal(masks.masks[n], expected)


def _loader(n: int = 256, seed: int = 0) -> TensorLoader:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return TensorLoader(images, labels, 64, (0.5,), (0.25,), shuffle=True, seed=seed)


@pytest.mark.parametrize(
    "optim",
    [
        {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
        {"optimizer": "adam", "weight_decay": 1e-2},
    ],
)
def test_pruned_weights_stay_exactly_zero_through_training(tmp_path, monkeypatch, optim):
    torch.manual_seed(0)
    model = build("lenet5")
    names = prunable_parameters(model, prune_classifier=True)
    masks = MaskSet.ones(model, names)
    scores = {n: p.detach().abs() for n, p in model.named_parameters() if n in names}
    masks.update(select_masks(scores, masks.masks, {n: 0.3 for n in names}))
    params = dict(model.named_parameters())
    before = {n: params[n].detach().clone() for n in names}
    checked_steps = []
    real_build = train_module.build_optimizer

    def build_and_watch(model_, cfg_):
        """Wrap step() so the check runs after it and its post-step hooks (the masks)."""
        optimizer = real_build(model_, cfg_)
        original_step = optimizer.step

        def step(*args, **kwargs):
            result = original_step(*args, **kwargs)
            for n in names:
                assert (params[n].detach()[~masks.masks[n]] == 0).all()
            checked_steps.append(1)
            return result

        optimizer.step = step
        return optimizer

    monkeypatch.setattr(train_module, "build_optimizer", build_and_watch)
    cfg = FinetuneConfig(epochs=2, lr=0.05, **optim)
    loader = _loader()
    fit(model, loader, _loader(64, 1), cfg, tmp_path / "state.pt", "h", hooks=[KeepMasks(masks)])
    for n in names:
        after = params[n].detach()
        assert (after[~masks.masks[n]] == 0).all()
        assert int((after != 0).sum()) <= int(masks.masks[n].sum())
        assert not torch.equal(after[masks.masks[n]], before[n][masks.masks[n]])  # survivors did train
    assert len(checked_steps) == 2 * len(loader)


def test_masks_and_weights_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build("lenet300_100")
    names = prunable_parameters(model)
    masks = MaskSet.ones(model, names)
    scores = {n: p.detach().abs() for n, p in model.named_parameters() if n in names}
    masks.update(select_masks(scores, masks.masks, {n: 0.25 for n in names}))
    checkpoints.save(tmp_path / "m.pt", model, "abc", masks=masks.state())
    loaded = load_torch(tmp_path / "m.pt")  # weights_only=True inside
    fresh = build("lenet300_100")
    fresh.load_state_dict(loaded["model"])
    restored = MaskSet(fresh, loaded["masks"])
    for n in names:
        assert torch.equal(restored.masks[n], masks.masks[n])
        assert torch.equal(dict(fresh.named_parameters())[n], dict(model.named_parameters())[n])
