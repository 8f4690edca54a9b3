"""Pruning at initialization: scores against hand computations, exact masks, floor, controls."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunelab import config, paths
from prunelab.atomic import load_torch
from prunelab.cli import run
from prunelab.config import schema
from prunelab.families.at_init.bench import synflow_timing
from prunelab.families.at_init.controls import collapsed_layers, shuffle_masks
from prunelab.families.at_init.scores import at_init_masks
from prunelab.families.at_init.settings import AtInitConfig
from prunelab.families.at_init.synflow import AbsoluteNetwork
from prunelab.models import build
from prunelab.pruning.masks import MaskSet, prunable_parameters
from prunelab.pruning.scores import SCORES
from prunelab.pruning.selection import select_with_floor, top_mask
from prunelab.stages import get_dataset, prune

PruneConfig = schema.current().prune  # [prune] with every family's keys


def _batches(count: int = 2, size: int = 16, features: int = 8, classes: int = 3, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, features, generator=g, dtype=torch.float64),
             torch.randint(0, classes, (size,), generator=g)) for _ in range(count)]


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3)).double()


NAMES = ["0.weight", "2.weight"]


def test_every_method_is_registered_beside_magnitude():
    assert {"magnitude", "random", "snip", "grasp", "synflow"} <= set(SCORES.names())


def test_snip_is_weight_times_summed_gradient():
    model, batches = _mlp(), _batches()
    scores = SCORES.get("snip")(model, NAMES, loader=batches, cfg=AtInitConfig(score_batches=2))
    loss = sum(F.cross_entropy(model(x), y) for x, y in batches)
    loss.backward()
    params = dict(model.named_parameters())
    for name in NAMES:
        assert torch.allclose(scores[name], (params[name] * params[name].grad).abs())


def test_grasp_is_weight_times_hessian_gradient_by_finite_differences():
    model, batches = _mlp(), _batches(count=1)
    temperature = 3.0
    cfg = AtInitConfig(grasp_temperature=temperature)
    scores = SCORES.get("grasp")(model, NAMES, loader=batches, cfg=cfg)
    params = dict(model.named_parameters())
    weights = [params[n] for n in NAMES]
    x, y = batches[0]

    def gradient() -> list[torch.Tensor]:
        return list(torch.autograd.grad(F.cross_entropy(model(x) / temperature, y), weights))

    g = [t.detach().clone() for t in gradient()]
    eps = 1e-5
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(eps * d)
    plus = gradient()
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.sub_(2 * eps * d)
    minus = gradient()
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(eps * d)
    for name, w, p, m in zip(NAMES, weights, plus, minus):
        hessian_grad = (p - m) / (2 * eps)  # H g
        assert torch.allclose(scores[name], w.detach() * hessian_grad, rtol=1e-4, atol=1e-10)


def test_synflow_matches_closed_form_and_leaves_the_model_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = SCORES.get("synflow")(model, NAMES[:1] + ["1.weight"], loader=[(torch.zeros(5, 3), None)])
    a1, a2 = model[0].weight.detach().abs(), model[1].weight.detach().abs()
    # R = 1' |W2| |W1| 1: dR/d|W1|_ij = sum_k |W2|_ki, dR/d|W2|_ki = sum_j |W1|_ij.
    assert torch.allclose(scores["0.weight"], a1 * a2.sum(0)[:, None])
    assert torch.allclose(scores["1.weight"], a2 * a1.sum(1)[None, :])
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]) and value.dtype == torch.float32


def test_synflow_of_a_deep_net_does_not_overflow():
    torch.manual_seed(0)
    layers = [nn.Linear(64, 64) for _ in range(40)]
    for layer in layers:
        nn.init.uniform_(layer.weight, 0.0, 1.0)  # |w| sums grow ~32x per layer: ~1e60, past float32
    model = nn.Sequential(*layers)
    names = [f"{i}.weight" for i in range(40)]
    scores = SCORES.get("synflow")(model, names, loader=[(torch.zeros(1, 64), None)])
    assert all(torch.isfinite(s).all() and (s > 0).all() for s in scores.values())


@pytest.mark.parametrize("keep", [0, 1234, 700_000, 1_100_000])
def test_top_mask_keeps_exactly_the_highest(keep):
    values = torch.randn(1_100_000, generator=torch.Generator().manual_seed(0))  # > 1M: the sampled band path
    values[:300_000] = -float("inf")  # pruned entries rank last
    mask = top_mask(values, keep)
    assert int(mask.sum()) == keep
    if 0 < keep < values.numel():
        assert values[mask].min() >= values[~mask].max()


@pytest.mark.parametrize("exact", [False, True])
def test_synflow_rounds_follow_the_schedule_and_the_last_is_exact(monkeypatch, exact):
    torch.manual_seed(0)
    model = build("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = prunable_parameters(model)
    cfg = PruneConfig(method="synflow", start="init", scope="global", compression=20,
                      at_init={"synflow_rounds": 4, "synflow_exact_rounds": exact})
    alive_per_round, kept_sets = [], []
    real = AbsoluteNetwork.scores

    def counting(self, shape, device):
        alive = self.alive()
        alive_per_round.append(sum(int(m.sum()) for m in alive.values()))
        kept_sets.append(alive)
        return real(self, shape, device)

    monkeypatch.setattr(AbsoluteNetwork, "scores", counting)
    masks = MaskSet.ones(model, names)
    new = at_init_masks(cfg, 1, model, masks.masks, loader=[(torch.zeros(2, 1, 28, 28), None)])
    total = sum(m.numel() for m in new.values())
    assert sum(int(m.sum()) for m in new.values()) == round(total / 20)  # the last round: exact
    # Round r scores the network pruned by round r - 1 to density 20^(-(r-1)/4): exactly, or
    # within the sampled threshold's error (the default's intermediate rounds are approximate).
    targets = [round(total * 20 ** (-r / 4)) for r in range(4)]
    if exact:
        assert alive_per_round == targets
    else:
        assert alive_per_round[0] == total
        for alive, target in zip(alive_per_round[1:], targets[1:]):
            assert abs(alive - target) <= 0.03 * target
    # Masks only shrink, and the model itself is never changed (the rounds prune |.| copies).
    for earlier, later in zip(kept_sets, kept_sets[1:] + [new]):
        assert all(bool((later[n] <= earlier[n]).all()) for n in names)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.parametrize("exact", [False, True])
def test_synflow_rounds_keep_the_floor_and_each_layer_scope_target(exact):
    torch.manual_seed(0)
    model = build("lenet5")
    names = prunable_parameters(model)
    loader = [(torch.zeros(1, 1, 28, 28), None)]
    floored = PruneConfig(method="synflow", start="init", scope="global", compression=100,
                          at_init={"synflow_rounds": 5, "min_layer_density": 0.005, "synflow_exact_rounds": exact})
    new = at_init_masks(floored, 1, model, MaskSet.ones(model, names).masks, loader)
    sizes = {n: m.numel() for n, m in new.items()}
    assert sum(int(m.sum()) for m in new.values()) == round(sum(sizes.values()) / 100)
    assert all(int(new[n].sum()) >= math.ceil(0.005 * sizes[n]) for n in names)
    per_layer = PruneConfig(method="synflow", start="init", scope="layer", density=0.2,
                            at_init={"synflow_rounds": 5, "synflow_exact_rounds": exact})
    new = at_init_masks(per_layer, 1, model, MaskSet.ones(model, names).masks, loader)
    assert all(int(new[n].sum()) == round(0.2 * sizes[n]) for n in names)


def _random_masks(scope: str) -> dict[str, torch.Tensor]:
    """Random at-init masks of LeNet-300-100 at density 0.1 under this scope."""
    torch.manual_seed(0)
    model = build("lenet300_100")
    cfg = PruneConfig(method="random", start="init", scope=scope, density=0.1)
    return at_init_masks(cfg, 1, model, MaskSet.ones(model, prunable_parameters(model)).masks)


def test_layer_scope_gives_each_layer_the_target():
    for name, mask in _random_masks("layer").items():
        assert int(mask.sum()) == round(0.1 * mask.numel())


def test_floor_prevents_collapse_and_keeps_the_total_exact():
    g = torch.Generator().manual_seed(0)
    scores = {"a.weight": torch.rand(50, 20, generator=g) * 1e-6, "b.weight": torch.rand(300, 100, generator=g)}
    current = {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
    total = sum(s.numel() for s in scores.values())
    plain = select_with_floor(scores, current, 0.05, 0.0)
    assert collapsed_layers(plain, 0.001) == ["a.weight"]
    floored = select_with_floor(scores, current, 0.05, 0.02)
    assert collapsed_layers(floored, 0.001) == []
    assert int(floored["a.weight"].sum()) == 20  # ceil(0.02 x 1000), its best entries
    assert sum(int(m.sum()) for m in floored.values()) == round(0.05 * total)
    best = scores["a.weight"].flatten().topk(20).indices
    assert floored["a.weight"].flatten()[best].all()


def test_random_global_masks_are_uniform_across_layers():
    for mask in _random_masks("global").values():
        assert abs(mask.float().mean().item() - 0.1) < 0.02


def test_shuffle_keeps_each_layers_count_and_moves_the_mask():
    g = torch.Generator().manual_seed(0)
    masks = {"a": torch.rand(40, 30, generator=g) < 0.2, "b": torch.rand(10, 3, 3, 3, generator=g) < 0.5}
    shuffled = shuffle_masks(masks, torch.Generator().manual_seed(1))
    for name, mask in masks.items():
        assert shuffled[name].shape == mask.shape and int(shuffled[name].sum()) == int(mask.sum())
        assert not torch.equal(shuffled[name], mask)


def _at_init_config(tiny_config, **at_init):
    return tiny_config(
        data={"train_subset": 300, "test_subset": 200},
        prune={"method": "synflow", "start": "init", "scope": "global", "sparsity": 0.9,
               "iterations": 1, "finetune": {"epochs": 0}, "at_init": {"synflow_rounds": 3, **at_init}},
    )


def test_controls_shuffle_and_reinit_in_the_prune_stage(tiny_config):
    plain_exp = config.load(_at_init_config(tiny_config))
    get_dataset(plain_exp)
    prune(plain_exp)
    control_exp = config.load(_at_init_config(tiny_config, shuffle=True, reinit=True),
                              ["results_root=" + json.dumps(plain_exp.results_root + "_controls")])
    prune(control_exp)
    plain, control = load_torch(paths.pruned(plain_exp)), load_torch(paths.pruned(control_exp))
    torch.manual_seed(plain_exp.seed)
    init = build("lenet300_100").state_dict()
    for name, mask in plain["masks"].items():
        other = control["masks"][name]
        assert int(other.sum()) == int(mask.sum()) and not torch.equal(other, mask)  # shuffled within the layer
        assert torch.equal(plain["model"][name], init[name] * mask)  # no training: masked init
        assert (control["model"][name][~other] == 0).all()
        assert not torch.equal(control["model"][name][other], init[name][other])  # survivors re-drawn
    row = list(csv.DictReader(paths.prune_log(control_exp).open()))[-1]
    assert row["controls"] == "shuffle+reinit"
    assert abs(float(row["density"]) - float(row["target_density"])) < 1e-5


def test_prune_stage_logs_target_and_collapse_and_report_shows_them(tiny_config, capsys):
    path = _at_init_config(tiny_config, collapse_density=0.9)  # at 10x no layer keeps 90%: all "collapsed"
    assert run("reproduce", [str(path)]) == 0
    out = capsys.readouterr().out
    assert "layer collapse: fc1.weight" in out and "achieved" in out
    exp = config.load(path)
    row = list(csv.DictReader(paths.prune_log(exp).open()))[-1]
    assert row["collapsed_layers"] == "fc1.weight;fc2.weight" and float(row["target_density"]) == pytest.approx(0.1)
    report = paths.report(exp).read_text()
    assert "## Pruning at initialization" in report and "collapsed layers (density <= 90%): fc1.weight;fc2.weight" in report
    # The prune log has the path check and the zero-score count; the report shows them.
    assert row["disconnected_layers"] == "" and 0 < float(row["effective_density"]) <= 0.1
    assert row["zero_score_kept"] == "0"
    assert "cut layers (no kept weight on an input-output path): none" in report
    assert "0 kept weights had a score of exactly 0" in report


def test_floor_above_the_target_names_the_key(tiny_config, capsys):
    path = _at_init_config(tiny_config, min_layer_density=0.2)
    assert run("prune", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and "prune.at_init.min_layer_density" in err


def test_synflow_benchmark_rows_compare_the_two_exact_paths_and_the_sampled_one():
    rows = synflow_timing(arch="resnet20", rounds=3, repeats=1)
    assert [r["run"].split()[0] for r in rows] == ["3", "3", "3", "2"]
    shared = "kept weights shared with the exact 3-round mask (seed 0)"
    # Both exact paths keep the same weights (no ties at this size): the k-th value one is exact.
    assert rows[0][shared] == rows[1][shared] == "100.0%"
    assert all(float(r["achieved density"]) == pytest.approx(0.1, abs=1e-5) for r in rows)


def test_pre_training_is_shared_between_runs_and_every_epoch_is_logged(tiny_config, capsys):
    path = tiny_config(
        data={"train_subset": 300, "test_subset": 200},
        prune={"method": "magnitude", "start": "init", "scope": "global", "sparsity": 0.9, "iterations": 1,
               "finetune": {"epochs": 2, "lr": 0.01}, "at_init": {"pre_epochs": 1}},
    )
    first = config.load(path)
    get_dataset(first)
    prune(first)
    # A second run at another compression (as in a sweep) reuses the one pre-trained model.
    second = config.load(path, ["name=\"other\"", "prune.sparsity=0.8"])
    capsys.readouterr()
    prune(second)
    assert "resuming pre-train" in capsys.readouterr().out
    shared = list((paths.run_dir(first).parent / "_pretrained").glob("*.pt"))
    assert len(shared) == 1
    # Magnitude after pre-training: the kept weights are the largest of the pre-trained ones.
    pretrained = load_torch(shared[0])["model"]
    masks = load_torch(paths.pruned(first))["masks"]
    kept = torch.cat([pretrained[n].abs().flatten()[masks[n].flatten()] for n in masks])
    dropped = torch.cat([pretrained[n].abs().flatten()[~masks[n].flatten()] for n in masks])
    assert kept.min() >= dropped.max()
    rows = list(csv.DictReader(paths.prune_train_log(first).open()))
    assert [(r["phase"], r["round"], r["epoch"]) for r in rows] == [
        ("pre-train", "0", "1"), ("fine-tune", "1", "1"), ("fine-tune", "1", "2")]
    assert all(float(r["train_loss"]) > 0 and float(r["test_loss"]) > 0 for r in rows)


def test_zero_ties_are_checked_in_the_groups_the_selection_ranks():
    """scope "layer" ranks (and the original's 'local' masks cut) every layer alone: a layer whose
    zero scores straddle its own cut is refused even when the pooled counts would not be."""
    from prunelab.families.at_init.scores import selection_groups
    from prunelab.families.at_init.ties import ZeroScoreTies, check_original_ties

    names = ["a.weight", "b.weight"]
    assert selection_groups("layer", names, 0.5, {}) == [(["a.weight"], 0.5), (["b.weight"], 0.5)]
    assert selection_groups("global", names, 0.5, {"b.weight": 0.2}) == [(["b.weight"], 0.2), (["a.weight"], 0.5)]
    # Layer a: 4 weights, 2 of them score 0; keeping 3 needs one of the zeros (straddles its cut).
    scores = {"a.weight": torch.tensor([1.0, 2.0, 0.0, 0.0])}
    current = {"a.weight": torch.ones(4, dtype=torch.bool)}
    masks = {"a.weight": torch.tensor([True, True, True, False])}
    with pytest.raises(ZeroScoreTies, match=r"snip at 1\.333x needs 1 of the 2 weights"):
        check_original_ties("snip", 4 / 3, scores, current, masks)
    check_original_ties("snip", 2.0, scores, current, {"a.weight": torch.tensor([True, True, False, False])})
