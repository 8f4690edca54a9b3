"""N:M patterns ([prune] pattern = "2:4"): at most N of every M consecutive weights along a layer's input
dimension kept, by the family's score; layers whose input dimension is not a multiple of M left dense;
the pattern held through fine-tuning, recorded in and checked on the checkpoints; bad or conflicting
configs refused with one line."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from prunelab import config, family, paths, stages
from prunelab.atomic import load_torch
from prunelab.errors import UserError
from prunelab.families.at_init.scores import scored_masks
from prunelab.families.mase.weights import weight_masks
from prunelab.family import PruneContext, ReportInputs
from prunelab.pruning import pattern, pattern_record
from prunelab.pruning.mask_pruner import MaskPruner
from prunelab.pruning.masks import prunable_parameters


def prune_table(**keys) -> config.PruneConfig:
    return config.parse({"name": "x", "model": {"arch": "lenet300_100"}, "prune": keys}, "x.toml").prune


def ones(*tensors: torch.Tensor) -> dict[str, torch.Tensor]:
    return {f"w{i}": torch.ones_like(t, dtype=torch.bool) for i, t in enumerate(tensors)}


def holds(masks: dict[str, torch.Tensor], n: int, m: int) -> bool:
    """Every group of m consecutive entries of every row of every patterned tensor keeps at most n."""
    for mask in masks.values():
        if pattern.patterned(mask.shape, m):
            rows = (mask != 0).reshape(mask.shape[0], -1)
            for row in rows:
                for start in range(0, rows.shape[1], m):
                    if int(row[start:start + m].sum()) > n:
                        return False
    return True


# --- selection, by hand -------------------------------------------------------------------------------

def test_linear_keeps_the_two_largest_scores_of_every_four_inputs():
    scores = torch.tensor([[0.1, -0.9, 0.3, 0.2, 0.5, 0.4, -0.6, 0.05],
                           [1.0, 2.0, 3.0, 4.0, -4.0, -3.0, -2.0, -1.0]]).abs()
    masks = pattern.pattern_masks({"w0": scores}, ones(scores), 2, 4)
    assert masks["w0"].int().tolist() == [[0, 1, 1, 0, 1, 0, 1, 0],
                                          [0, 0, 1, 1, 1, 1, 0, 0]]


def test_pruned_weights_stay_pruned_and_a_group_with_fewer_alive_keeps_those():
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.2, 0.5, 0.4, 0.6, 0.05],
                           [1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0]])
    current = torch.ones_like(scores, dtype=torch.bool)
    current[0, 1] = False  # the best of row 0's first group is already pruned
    current[1, 4:7] = False  # row 1's second group has one weight left
    masks = pattern.pattern_masks({"w0": scores}, {"w0": current}, 2, 4)
    assert masks["w0"].int().tolist() == [[0, 0, 1, 1, 1, 0, 1, 0],
                                          [0, 0, 1, 1, 0, 0, 0, 1]]
    assert not (masks["w0"] & ~current).any()  # masks only shrink


def test_conv_groups_run_along_in_channels_x_kh_x_kw_of_each_filter():
    """Filter 0's row is input channel 0's four taps, then channel 1's: the groups are per channel here.
    Grouped in channels_last order (tap 0 of both channels, tap 1 of both ...) the choice would differ."""
    scores = torch.zeros(2, 2, 2, 2)
    scores[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    scores[0, 1] = torch.tensor([[8.0, 7.0], [6.0, 5.0]])
    scores[1] = torch.arange(8.0).flip(0).view(2, 2, 2)  # 7 6 5 4 | 3 2 1 0: the first two of each group
    expected = torch.tensor([[[[0, 0], [1, 1]], [[1, 1], [0, 0]]],
                             [[[1, 1], [0, 0]], [[1, 1], [0, 0]]]], dtype=torch.bool)
    for layout in (torch.contiguous_format, torch.channels_last):
        masks = pattern.pattern_masks({"w0": scores.contiguous(memory_format=layout)}, ones(scores), 2, 4)
        assert torch.equal(masks["w0"], expected)


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (1, 2), (3, 8), (2, 3)])
def test_every_group_of_random_scores_keeps_exactly_n(n, m):
    generator = torch.Generator().manual_seed(n * 10 + m)
    scores = torch.rand(16, 3, 4, 2 * m, generator=generator)  # rows of 3 x 4 x 2m weights
    mask = pattern.pattern_masks({"w0": scores}, ones(scores), n, m)["w0"]
    groups = mask.reshape(16, -1, m)
    assert (groups.sum(2) == n).all()
    chosen = scores.reshape(16, -1, m)
    kept_min = chosen.masked_fill(~groups, math.inf).amin(2)
    dropped_max = chosen.masked_fill(groups, -math.inf).amax(2)
    assert (kept_min > dropped_max).all()  # the kept ones are the largest of their group


def test_layers_whose_input_dimension_is_not_a_multiple_of_m_are_left_dense():
    conv1 = torch.rand(20, 1, 5, 5)  # LeNet-5 (Caffe)'s conv1: 25 inputs per filter
    fc = torch.rand(10, 12)
    masks = pattern.pattern_masks({"conv1": conv1, "fc": fc}, {"conv1": torch.ones_like(conv1, dtype=torch.bool),
                                                               "fc": torch.ones_like(fc, dtype=torch.bool)}, 2, 4)
    assert masks["conv1"].all() and int(masks["fc"].sum()) == 60
    assert pattern.dense_names({"conv1": conv1.shape, "fc": fc.shape}, 4) == ["conv1"]
    assert pattern.dense_names({"conv1": conv1.shape, "fc": fc.shape}, 5) == ["fc"]


# --- each family's score --------------------------------------------------------------------------------

def test_mase_element_masks_and_at_init_scores_follow_the_pattern():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 2), nn.Flatten(), nn.Linear(4 * 3 * 3, 8), nn.Linear(8, 3))
    current = {name: torch.ones_like(p, dtype=torch.bool) for name, p in model.named_parameters()
               if name in prunable_parameters(model)}
    params = dict(model.named_parameters())
    mase = weight_masks(prune_table(method="l1-norm", pattern="2:4"), 1, model, current, seed=0)
    by_magnitude = pattern.pattern_masks({n: params[n].detach().abs() for n in current}, current, 2, 4)
    assert all(torch.equal(mase[n], by_magnitude[n]) for n in current)  # element-wise l1-norm is |w|
    images, labels = torch.randn(8, 2, 4, 4), torch.randint(0, 3, (8,))
    masks, scores = scored_masks(prune_table(method="snip", pattern="2:4"), 1, model, current, [(images, labels)])
    for name in current:
        assert torch.equal(masks[name], pattern.pattern_masks({name: scores[name]}, current, 2, 4)[name])
        assert int(masks[name].sum()) == current[name].numel() // 2
    assert holds(mase, 2, 4) and holds(masks, 2, 4)


def test_a_family_whose_pruner_does_not_keep_patterns_refuses_one():
    class Unpatterned(MaskPruner):
        def round_masks(self, k, current):
            return current

    exp = config.parse({"name": "x", "model": {"arch": "lenet300_100"}, "prune": {"pattern": "2:4"}}, "x.toml")
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))
    with pytest.raises(UserError, match=r"^x.toml: prune.pattern: the magnitude family does not prune to N:M"):
        Unpatterned(PruneContext(exp, model, None, None, torch.device("cpu")))


# --- config ---------------------------------------------------------------------------------------------

def test_the_pattern_sets_the_target_and_a_key_may_repeat_it():
    assert prune_table(pattern="2:4").target_density() == 0.5
    assert prune_table(pattern="1:4", compression=4).target_density() == 0.25
    assert prune_table(pattern="2:4", sparsity=0.5).nm() == (2, 4)
    assert prune_table(pattern="none", compression=2).pattern is None  # --set prune.pattern=none: unstructured


@pytest.mark.parametrize("prune, key, words", [
    ({"pattern": "2-4"}, "prune.pattern", 'expected "N:M"'),
    ({"pattern": "4:4"}, "prune.pattern", "0 < N < M"),
    ({"pattern": "5:4"}, "prune.pattern", "0 < N < M"),
    ({"pattern": "0:4"}, "prune.pattern", "0 < N < M"),
    ({"pattern": "two:four"}, "prune.pattern", 'expected "N:M"'),
    ({"pattern": "2:4", "compression": 3}, "prune.compression", 'conflicts with pattern = "2:4"'),
    ({"pattern": "2:4", "sparsity": 0.9}, "prune.sparsity", "compression 2"),
    ({"pattern": "2:4", "density": 0.25}, "prune.density", "leave density out"),
    ({"pattern": "2:4", "layer_sparsity": {"fc1": 0.5}}, "prune.pattern", "leave layer_sparsity out"),
    ({"pattern": "2:4", "quality": 1.0}, "prune.pattern", "give pattern or quality"),
    ({"pattern": "2:4", "iterations": 3}, "prune.pattern", "set iterations = 1"),
    ({"pattern": "2:4", "scope": "global"}, "prune.pattern", 'scope = "global" does not apply'),
    ({"pattern": "2:4", "prune_bias": True}, "prune.pattern", "biases"),
    ({"pattern": "2:4", "method": "l1-norm", "granularity": "kernel"}, "prune.pattern", 'granularity = "element"'),
    ({"pattern": "2:4", "granularity": "filter"}, "prune.pattern", 'granularity = "element"'),
    ({"pattern": "2:4", "method": "threshold", "threshold": 0.01}, "prune", "not pattern"),
    ({"pattern": "2:4", "method": "synflow"}, "prune.at_init.synflow_rounds", "synflow_rounds = 1"),
    ({"pattern": "2:4", "method": "snip", "at_init": {"shuffle": True}}, "prune.at_init.shuffle", "breaks"),
    ({"pattern": "2:4", "method": "snip", "at_init": {"min_layer_density": 0.1}},
     "prune.at_init.min_layer_density", "leave"),
])
def test_bad_and_conflicting_patterns_are_one_line_naming_the_key(tiny_config, prune, key, words):
    path = tiny_config(prune={"sparsity": None, "iterations": 1, **prune})
    path.write_text(path.read_text().replace("sparsity = null\n", ""))
    with pytest.raises(UserError) as error:
        config.load(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: {key}: ") and words in message, message


def test_a_bad_pattern_from_the_command_line_names_the_set_item(tiny_config):
    path = tiny_config(prune={"sparsity": 0.5, "iterations": 1})
    with pytest.raises(UserError) as error:
        config.load(path, ["prune.pattern=3:3"])
    assert str(error.value).startswith("--set prune.pattern=3:3: ") and "\n" not in str(error.value)


# --- end to end: prune, fine-tune, checkpoint, report ---------------------------------------------------

def test_fine_tuning_keeps_the_pattern_and_checkpoints_round_trip(tiny_config, capsys):
    """LeNet-5 (Caffe) at 2:4: conv1 (25 inputs per filter) left dense, conv2 (20 x 5 x 5), fc1, fc2 patterned."""
    path = tiny_config(model={"arch": "lenet5_caffe"}, data={"train_subset": 600, "test_subset": 200},
                       train={"epochs": 1},
                       prune={"sparsity": None, "pattern": "2:4", "iterations": 1, "prune_classifier": True,
                              "finetune": {"epochs": 2, "lr": 0.05}})
    path.write_text(path.read_text().replace("sparsity = null\n", ""))
    exp = config.load(path)
    stages.get_dataset(exp)
    stages.train(exp)
    stages.prune(exp)
    pruned = load_torch(paths.pruned(exp))  # weights_only
    masks, weights = pruned["masks"], pruned["model"]
    assert pruned["pattern"] == {"pattern": "2:4", "dense_layers": ["conv1.weight"]}
    assert masks["conv1.weight"].all()
    for name in ("conv2.weight", "fc1.weight", "fc2.weight"):
        assert int(masks[name].sum()) == masks[name].numel() // 2, name
    assert holds(masks, 2, 4) and holds({k: weights[k] for k in masks}, 2, 4)
    assert all(not weights[k][~mask].any() for k, mask in masks.items())  # zeros stayed zero
    dense = load_torch(paths.dense(exp))["model"]
    assert not torch.equal(weights["fc1.weight"], dense["fc1.weight"] * masks["fc1.weight"])  # it did fine-tune
    with paths.prune_log(exp).open(newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["pattern"] == "2:4" and row["dense_layers"] == "conv1"
    pattern_record.check_checkpoint(exp.prune, pruned, "pruned.pt")  # the pattern verifies on load

    # The report: the pattern in words, the layer left dense, and the check on the checkpoint.
    inputs = ReportInputs(exp, None, None, pruned, {})
    text = "\n".join(section for f in family.FAMILIES.values() for section in f.report_sections(inputs))
    assert text.count("## N:M pattern") == 1
    assert "2:4 along the input dimension" in text and "Left dense (input dimension not a multiple of 4): conv1" in text
    assert "every one of the" in text and "groups keeps at most 2" in text
    assert "pattern 2:4 along the input dimension" in family.of(exp).describe(exp)

    # Resuming from the round checkpoint checks it; a checkpoint that breaks the pattern is refused.
    paths.pruned(exp).unlink()
    capsys.readouterr()
    stages.prune(exp)
    assert "resuming prune after round 1/1" in capsys.readouterr().out
    assert torch.equal(load_torch(paths.pruned(exp))["model"]["fc1.weight"], weights["fc1.weight"])
    broken = {**pruned, "masks": {**masks, "fc2.weight": torch.ones_like(masks["fc2.weight"])}}
    with pytest.raises(ValueError, match=r"pruned.pt: its masks keep more than 2 of 4 in fc2 \(1,250 groups\)"):
        pattern_record.check_checkpoint(exp.prune, broken, "pruned.pt")
    with pytest.raises(ValueError, match="made with pattern None"):
        pattern_record.check_checkpoint(exp.prune, {**pruned, "pattern": {}}, "pruned.pt")
    report = pattern_record.section(ReportInputs(exp, None, None, broken, {}))
    assert "**The pattern does not hold**" in "\n".join(report)


# --- the checked-in 2:4 configs -------------------------------------------------------------------------

@pytest.mark.parametrize("name, twin, base", [("lenet300_100_2to4", "lenet300_100_2x", "lenet300_100"),
                                              ("lenet5_caffe_2to4", "lenet5_caffe_2x", "lenet5_caffe")])
def test_the_2to4_configs_and_their_unstructured_twins_prune_the_same_dense_models(name, twin, base, monkeypatch):
    """The 2:4 config's dense models are the unstructured config's (trained by the same recipe, or its
    dense.pt itself); its twin prunes those very models to 2x, each layer to 50%, fine-tuned the same way."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    patterned, unstructured, han = (config.load(f"configs/{n}.toml") for n in (name, twin, base))
    assert patterned.prune.pattern == "2:4" and patterned.prune.iterations == 1
    assert set(patterned.seeds) <= set(han.seeds) and patterned.seeds == unstructured.seeds
    assert (patterned.data, patterned.model) == (han.data, han.model) == (unstructured.data, unstructured.model)
    if patterned.train.pretrained is None:  # trains the base config's dense models itself
        assert patterned.train == han.train
        assert unstructured.train.pretrained == f"runs/{name}/seeds/seed-{{seed}}/dense.pt"
    else:
        assert patterned.train.pretrained == f"runs/{base}/seeds/seed-{{seed}}/dense.pt"
        assert unstructured.train == patterned.train
    assert unstructured.train.epochs == 0
    assert unstructured.prune.pattern is None and unstructured.prune.target_density() == 0.5
    assert unstructured.prune.scope == "layer" and unstructured.prune.iterations == 1
    assert unstructured.prune.finetune == patterned.prune.finetune
