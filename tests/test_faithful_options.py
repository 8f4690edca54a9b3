"""Options that reproduce the original implementations' pipelines: the lottery models' initialization
(`model.init`), GraSP's BatchNorm mode (`[prune.at_init] grasp_batchnorm`) and DeepHoyer's structural
rule (`prune.structure_rule = "element"`), its regularizer's coverage (`[train.regularizer] coverage`)
and Synaptic-Flow's scoring set (`[prune.at_init] score_images`, `score_fresh_augmentation`)."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn as nn

from prunelab import checkpoints, config, paths
from prunelab.atomic import load_json
from prunelab.cli import run
from prunelab.data.loader import TensorLoader
from prunelab.errors import UserError
from prunelab.families.at_init.scores import _passes
from prunelab.families.deephoyer.penalty import train_hooks
from prunelab.families.deephoyer.threshold import describe, threshold_round_masks
from prunelab.pruning.scores import SCORES


def _model(arch: str, init: str, dataset: str = "mnist") -> nn.Module:
    exp = config.parse({"name": "x", "model": {"arch": arch, "init": init}, "data": {"dataset": dataset}})
    torch.manual_seed(0)
    return checkpoints.build_for(exp)


def test_kaiming_normal_init_is_the_lottery_models():
    model = _model("vgg11_bn", "kaiming_normal", "cifar10")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            assert not module.bias.any()
        if isinstance(module, nn.BatchNorm2d):
            assert (module.weight == 1).all() and not module.bias.any()
    fc1 = _model("lenet300_100", "kaiming_normal").fc1.weight.detach()  # 235,200 draws: std within 1% of sqrt(2 / 784)
    assert float(fc1.std()) == pytest.approx(math.sqrt(2 / 784), rel=0.01)


def test_default_init_is_pytorchs_and_hashes_as_before():
    assert _model("lenet300_100", "default").fc1.bias.abs().sum() > 0  # PyTorch's uniform biases
    plain = config.parse({"name": "x", "model": {"arch": "lenet5"}})
    explicit = config.parse({"name": "x", "model": {"arch": "lenet5", "init": "default"}})
    assert plain.stage_hash("train") == explicit.stage_hash("train")  # existing artifacts stay current
    other = config.parse({"name": "x", "model": {"arch": "lenet5", "init": "kaiming_normal"}})
    assert other.stage_hash("train") != plain.stage_hash("train")


class _BatchNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def _grasp(model: nn.Module, mode: str) -> dict[str, torch.Tensor]:
    at_init = config.parse({"name": "x", "prune": {"method": "grasp", "start": "init", "density": 0.1,
                                                  "at_init": {"grasp_batchnorm": mode}}}).prune.at_init
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 1, 8, 8, generator=generator), torch.randint(0, 10, (16,), generator=generator))]
    return SCORES.get("grasp")(model, ["conv.weight", "fc.weight"], loader=batches, cfg=at_init)


def test_grasp_batchnorm_mode_changes_the_scores_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = _BatchNormNet()
    model.bn.running_mean.fill_(0.5)  # running statistics unlike any batch's: eval and train differ
    model.bn.running_var.fill_(4.0)
    model.train(False)
    before = {name: buffer.clone() for name, buffer in model.named_buffers()}
    evaluated, trained = _grasp(model, "eval"), _grasp(model, "train")
    assert not torch.allclose(evaluated["conv.weight"], trained["conv.weight"])
    assert all(torch.equal(buffer, before[name]) for name, buffer in model.named_buffers())
    assert not model.training  # the caller's mode is restored
    assert config.parse({"name": "x", "prune": {"method": "grasp", "start": "init", "density": 0.1}}
                        ).prune.at_init.grasp_batchnorm == "eval"


def _threshold_cfg(granularity: str, **extra):
    return config.parse({"name": "x", "model": {"arch": "lenet5_caffe"},
                         "prune": {"method": "threshold", "std_ratio": 0.5, "granularity": granularity, **extra}})


def test_deephoyers_structural_rule_is_the_element_rule_then_counting():
    torch.manual_seed(0)
    model = _model("lenet5_caffe", "default")
    ones = {name: torch.ones_like(p, dtype=torch.bool) for name, p in model.named_parameters()
            if name.endswith("weight")}
    element = threshold_round_masks(_threshold_cfg("element").prune, model, ones)
    counted = _threshold_cfg("structure", structure_rule="element")
    assert all(torch.equal(element[n], m) for n, m in threshold_round_masks(counted.prune, model, ones).items())
    assert all(torch.equal(element[n], m)  # DeepHoyer's rule is the default
               for n, m in threshold_round_masks(_threshold_cfg("structure").prune, model, ones).items())
    by_groups = threshold_round_masks(_threshold_cfg("structure", structure_rule="group_norm").prune, model, ones)
    assert any(not torch.equal(element[n], m) for n, m in by_groups.items())
    assert "counted as structure, as DeepHoyer does" in describe(counted)
    assert _threshold_cfg("structure").prune.structure_rule == "element"


@pytest.mark.parametrize("coverage, expected", [
    ("weights", ["fc1.weight", "fc2.weight"]),
    ("all_weights", ["fc1.weight", "fc2.weight", "fc3.weight"]),
    ("all_parameters", ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]),
])
def test_regularizer_coverage_follows_deephoyers_scripts(coverage, expected):
    exp = config.parse({"name": "x", "model": {"arch": "lenet300_100"},
                        "train": {"regularizer": {"kind": "l1", "decay": 0.5, "coverage": coverage}}})
    torch.manual_seed(0)
    model = checkpoints.build_for(exp)
    (hook,) = train_hooks(exp, model)
    params = dict(model.named_parameters())
    by_hand = 0.5 * sum(params[name].abs().sum() for name in expected)
    assert float(hook.penalty(model).detach()) == pytest.approx(float(by_hand.detach()), rel=1e-12)


def test_a_structural_regularizer_cannot_cover_biases():
    with pytest.raises(UserError, match=r"x\.toml: train\.regularizer.*all_parameters.*all_weights"):
        config.parse({"name": "x", "train": {"regularizer": {"kind": "group_lasso", "decay": 1.0,
                                                            "coverage": "all_parameters"}}}, "x.toml")


def _loader(augment=()):
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (500, 1, 8, 8), generator=generator, dtype=torch.uint8)
    labels = torch.arange(500) % 10
    return TensorLoader(images, labels, 64, (0.5,), (0.25,), shuffle=True, seed=4, augment=augment, crop_padding=2)


def _at_init(**keys):
    return config.parse({"name": "x", "prune": {"method": "snip", "start": "init", "density": 0.1,
                                               "at_init": keys}}).prune.at_init


def test_scoring_images_are_a_seeded_random_subset_of_the_training_set():
    loader = _loader()
    batches = _passes(loader, _at_init(score_images=100), "snip")(0)
    assert [len(labels) for _, labels in batches] == [64, 36]  # 100 images at data.batch_size
    again = _passes(_loader(), _at_init(score_images=100), "snip")(0)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    everything, _ = next(iter(TensorLoader(loader.images, loader.labels, 500, (0.5,), (0.25,))))
    dataset = {tuple(image.flatten().tolist()) for image in everything}
    assert all(tuple(image.flatten().tolist()) in dataset for images, _ in batches for image in images)
    default = _passes(loader, _at_init(score_batches=2), "snip")
    assert len(default(0)) == 2 and default(0) is default(1)  # prunelab's default: the same batches


def test_fresh_augmentation_draws_new_crops_on_every_pass():
    fresh = _passes(_loader(("crop",)), _at_init(score_images=100, score_fresh_augmentation=True), "grasp")
    assert not torch.equal(fresh(0)[0][0], fresh(1)[0][0])  # GraSP's two gradients see different crops
    fixed = _passes(_loader(("crop",)), _at_init(score_images=100), "grasp")
    assert torch.equal(fixed(0)[0][0], fixed(1)[0][0])


def test_the_reported_accuracy_is_the_last_models_not_the_best_epochs(tiny_config):
    """DeepHoyer's scripts report the best test accuracy over fine-tuning epochs (selection on the test
    set); prunelab reports the model the run ends with."""
    path = tiny_config(train={"epochs": 1}, prune={"iterations": 1, "finetune": {"epochs": 3, "lr": 0.2}})
    assert run("reproduce", [str(path)]) == 0
    exp = config.load(path)
    epochs = [row for row in csv.DictReader(paths.prune_train_log(exp).open()) if row["phase"] == "fine-tune"]
    measured = load_json(paths.metrics(exp))["pruned"]["accuracy"]
    assert measured == pytest.approx(float(epochs[-1]["test_accuracy"]), abs=1e-9)
    assert f"{measured:.2f}" in paths.report(exp).read_text().split("## Summary", 1)[1].split("##", 1)[0]
