"""`[model] arch = "package.module:factory"`: a network defined outside src/prunelab, written by the
test beside its config, through every family; the one-line errors; its file in the stage hashes."""

from __future__ import annotations

import sys

import pytest
import torch

from prunelab import checkpoints, config, paths
from prunelab.atomic import load_torch
from prunelab.cli import run

from conftest import tiny_raw, to_toml

ARCH = "mymodels:small_cnn"
MODEL_FILE = '''
from collections import OrderedDict

import torch
import torch.nn as nn

WIDTH = 8  # conv1's filters; conv2 has twice as many


class SmallCNN(nn.Module):
    def __init__(self, in_channels, num_classes, image_size):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, WIDTH, 3, padding=1)), ("bn1", nn.BatchNorm2d(WIDTH)),
            ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(WIDTH, 2 * WIDTH, 3, padding=1)), ("bn2", nn.BatchNorm2d(2 * WIDTH)),
            ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ]))
        self.head = nn.Linear(2 * WIDTH * (image_size // 4) ** 2, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


def small_cnn(in_channels, num_classes, image_size):
    return SmallCNN(in_channels, num_classes, image_size)


def wrong_signature(channels):
    return SmallCNN(channels, 10, 28)


def returns_dict(in_channels, num_classes, image_size):
    return {"conv": nn.Conv2d(in_channels, 4, 3)}


def raises(in_channels, num_classes, image_size):
    raise ValueError(f"no variant for {image_size} pixels")


class Fixed(nn.Module):
    """conv1's channel count written into forward(): DepGraph cannot follow it."""

    def __init__(self, in_channels, num_classes, image_size):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.conv1(x).reshape(x.shape[0], 8, -1).reshape(x.shape[0], 8, x.shape[2], x.shape[3])
        return self.head(self.conv2(x).mean((2, 3)))


fixed = Fixed
NOT_CALLABLE = 3
'''
# Short runs: 300 training images, one epoch, one round; no figures.
FAST = {"data": {"train_subset": 300, "test_subset": 200, "batch_size": 100, "test_batch_size": 200},
        "train": {"epochs": 1, "lr": 0.05}, "report": {"plots": False},
        "test": {"latency_batch_sizes": [1], "latency_repeats": 1, "latency_warmup": 0}}
FINETUNE = {"epochs": 1, "lr": 0.01}
FAMILIES = {
    "magnitude": {"prune": {"sparsity": 0.8, "iterations": 1, "finetune": FINETUNE}},
    "at_init": {"prune": {"method": "synflow", "start": "init", "scope": "global", "sparsity": 0.8,
                          "iterations": 1, "finetune": FINETUNE, "at_init": {"synflow_rounds": 2}}},
    "deephoyer": {"train": {"epochs": 1, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
                            "regularizer": {"kind": "hoyer_square", "decay": 1e-4}},
                  "prune": {"method": "threshold", "std_ratio": 0.5,
                            "finetune": {"epochs": 1, "optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0}}},
    "filters": {"prune": {"granularity": "filter", "filters": {"criterion": "l1", "ratio": 0.5, "steps": 1},
                          "finetune": FINETUNE}},
    "compress": {"prune": {"sparsity": 0.8, "iterations": 1, "finetune": FINETUNE},
                 "compress": {"quantizer": "kmeans", "fc_bits": 4, "fc_index_bits": 3,
                              "finetune": {"epochs": 1, "lr": 0.001}}},
}
LAYERS = ("features.conv1", "features.conv2", "head")


@pytest.fixture
def user_model(tmp_path, synthetic_source, monkeypatch):
    """mymodels.py in tmp_path (the working directory, on sys.path); returns write_config(arch, **sections)."""
    (tmp_path / "mymodels.py").write_text(MODEL_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write_config(arch: str = ARCH, **sections) -> str:
        raw = tiny_raw(tmp_path, synthetic_source, model={"arch": arch}, **FAST)
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value} if key in ("train", "data") else value
        path = tmp_path / "user.toml"
        path.write_text(to_toml(raw))
        return str(path)

    yield write_config
    sys.modules.pop("mymodels", None)  # the next test's mymodels.py is another file


def _one_error_line(capsys, task: str, path: str) -> str:
    assert run(task, [path]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_runs_on_a_users_network(user_model, family, capsys):
    path = user_model(**FAMILIES[family])
    assert run("reproduce", [path]) == 0, capsys.readouterr().err
    exp = config.load(path)
    report = paths.report(exp).read_text()
    per_layer = report.split("## Parameters per layer\n", 1)[1].split("\n## ", 1)[0]
    assert [row.split("|")[1].strip() for row in per_layer.strip().splitlines()[2:-1]] == list(LAYERS)
    # The checkpoints rebuild through the import path (filters: shrunk to the recorded channels).
    pruned = load_torch(paths.pruned(exp))
    model = checkpoints.build_model(exp, pruned, paths.pruned(exp))
    assert type(model).__name__ == "SmallCNN" and set(model.state_dict()) == set(pruned["model"])
    if family == "filters":
        assert model.features.conv1.out_channels == 4 and model.features.conv2.out_channels == 8


def test_editing_the_model_file_makes_dense_pt_stale(user_model, tmp_path, capsys):
    path = user_model(prune={"sparsity": 0.5, "iterations": 1, "finetune": {"epochs": 0}})
    assert run("get_dataset", [path]) == 0 and run("train", [path]) == 0
    exp = config.load(path)
    dense = paths.dense(exp)
    before = {stage: exp.stage_hash(stage) for stage in ("train", "prune")}
    assert checkpoints.is_current(dense, before["train"])
    source = tmp_path / "mymodels.py"
    source.write_text(source.read_text().replace("WIDTH = 8", "WIDTH = 6"))
    after = {stage: config.load(path).stage_hash(stage) for stage in ("train", "prune")}
    assert after["train"] != before["train"] and after["prune"] != before["prune"]
    assert not checkpoints.is_current(dense, after["train"])
    line = _one_error_line(capsys, "prune", path)
    assert str(dense) in line and "made from a different config" in line
    # Retraining runs the edited network (the module is executed again, not the cached one).
    assert run("train", [path]) == 0
    assert load_torch(dense)["model"]["features.conv1.weight"].shape[0] == 6
    # Rewriting the same bytes changes nothing.
    source.write_text(source.read_text())
    assert config.load(path).stage_hash("train") == after["train"]


def test_the_working_directory_goes_on_sys_path(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(MODEL_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", str(tmp_path))])
    try:
        exp = config.parse({"name": "x", "model": {"arch": ARCH}}, "x.toml")
        assert type(checkpoints.build_for(exp)).__name__ == "SmallCNN"
        assert sys.path[-1] == str(tmp_path)  # last: a file here never shadows an installed package
    finally:
        sys.modules.pop("mymodels", None)


# Registered names hash as before import paths existed: values computed at commit 96666b4 (before
# this feature) with config.parse(raw, "x.toml").stage_hash(stage).
BEFORE = [
    ({"name": "h", "model": {"arch": "lenet5"}, "train": {"epochs": 3}, "prune": {"sparsity": 0.9, "iterations": 2}},
     {"train": "aee7dbf87f7d", "prune": "ffbc0fcce44e", "compress": "ffbc0fcce44e"}),
    ({"name": "h", "data": {"dataset": "fashion-mnist"}, "model": {"arch": "vgg11_bn", "init": "kaiming_normal"},
      "prune": {"granularity": "filter", "filters": {"ratio": 0.5}}},
     {"train": "5b4ef3085a73", "prune": "028ea575c457", "compress": "028ea575c457"}),
    ({"name": "h", "model": {"arch": "lenet300_100"}, "prune": {"sparsity": 0.9},
      "compress": {"quantizer": "kmeans", "fc_bits": 4}},
     {"train": "fb7d28fcd564", "prune": "b31b26406fd0", "compress": "1cfe1f21290f"}),
]


@pytest.mark.parametrize("raw, hashes", BEFORE)
def test_registered_models_keep_their_stage_hashes(raw, hashes):
    exp = config.parse(raw, "x.toml")
    assert {stage: exp.stage_hash(stage) for stage in hashes} == hashes


BAD_ARCH = [
    ("my models:small_cnn", "is not an import path of the form package.module:factory"),
    ("missing_module_xyz:make", "no module named 'missing_module_xyz'"),
    ("mymodels.sub:make", "'mymodels' is not a package"),
    ("mymodels:nope", "has no 'nope'"),
    ("mymodels:NOT_CALLABLE", "is an object of type int, not a callable factory"),
    ("mymodels:wrong_signature", "must take keyword arguments in_channels, num_classes, image_size"),
    ("broken:make", "broken.py line 2: ModuleNotFoundError: No module named 'not_installed_xyz'"),
    ("mymodels:returns_dict", "returned a value of type dict, not a torch.nn.Module"),
    ("mymodels:raises", "raised ValueError: no variant for 28 pixels at mymodels.py line"),
]


@pytest.mark.parametrize("arch, words", BAD_ARCH)
def test_a_bad_import_path_is_one_line_naming_model_arch(user_model, tmp_path, capsys, arch, words):
    (tmp_path / "broken.py").write_text("import torch\nimport not_installed_xyz\n")
    path = user_model(arch)
    line = _one_error_line(capsys, "train", path)
    assert f"{path}: model.arch: " in line and words in line, line
    sys.modules.pop("broken", None)


def test_an_unsupported_layer_pattern_for_filter_removal_names_the_layer(user_model, capsys):
    path = user_model("mymodels:fixed", **FAMILIES["filters"])
    assert run("get_dataset", [path]) == 0 and run("train", [path]) == 0
    line = _one_error_line(capsys, "prune", path)
    assert line.startswith(f"error: {path}: prune.granularity = \"filter\": removing filters of conv1 ")
    assert "the model itself (Fixed, mymodels.py line" in line and "ignored_layers" in line
