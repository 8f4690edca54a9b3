"""colored-mnist / colored-fashion-mnist: the colour rule, determinism, the shared base files,
the catalog's statistics (real data only) and VGG7 / ResNet18 end to end on a slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunelab import config, paths, stages
from prunelab.data import DATASETS
from prunelab.data.colored import BG_SPREAD, FG_MIN, colorize, split_colors
from prunelab.data.loader import load_splits, make_loaders
from prunelab.errors import UserError

from conftest import to_toml

REPO_DATASETS = Path(__file__).resolve().parents[1] / "dataset"
SLICE = {"train_subset": 64, "test_subset": 64, "batch_size": 32, "test_batch_size": 64}


def colored(tiny_config, **data) -> config.Experiment:
    """The tiny experiment on colored-mnist made from the synthetic IDX files."""
    return config.load(tiny_config(data={"dataset": "colored-mnist", **SLICE, **data}))


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and population std of uint8 (N, 3, H, W) images on [0, 1] pixels, from each
    channel's histogram of the 256 values (exact sums; how the catalog's colored statistics were computed)."""
    counts = torch.stack([torch.bincount(images[:, c].reshape(-1).int(), minlength=256) for c in range(3)]).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    mean = (counts * values).sum(1) / counts.sum(1)
    std = ((counts * values**2).sum(1) / counts.sum(1) - mean**2).sqrt()
    return mean.tolist(), std.tolist()


def rgb_at(images: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """The (K, 3) values of uint8 (N, 3, H, W) images at the K pixels where `where` (N, H, W) is true."""
    return images.permute(0, 2, 3, 1)[where]


def per_pixel(colours: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Per-image colours (N, 3) repeated at the K pixels where `where` (N, H, W) is true: (K, 3) uint8."""
    return colours[:, None, None, :].expand(-1, *where.shape[1:], -1)[where].to(torch.uint8)


def test_colour_rule_on_a_hand_made_image():
    grey = torch.tensor([[0, 255], [128, 64]], dtype=torch.uint8).reshape(1, 1, 2, 2)
    fg = torch.tensor([[200, 100, 50]])
    bg = torch.tensor([[10, 20, 30]])
    # 128: 128/255 * 200 + 127/255 * 10 = 105.37 -> 105;  64: 64/255 * 200 + 191/255 * 10 = 57.69 -> 58
    expected = [[[10, 200], [105, 58]],  # red
                [[20, 100], [60, 40]],  # green: 50.20 + 9.96 -> 60; 25.10 + 14.98 -> 40
                [[30, 50], [40, 35]]]  # blue: 25.10 + 14.94 -> 40; 12.55 + 22.47 -> 35
    assert colorize(grey, fg, bg).tolist() == [expected]
    on_black = colorize(grey, fg, torch.zeros_like(bg))
    # 128/255 * (200, 100, 50) = (100.39, 50.20, 25.10); 64/255 * ... = (50.20, 25.10, 12.55)
    assert on_black.tolist() == [[[[0, 200], [100, 50]], [[0, 100], [50, 25]], [[0, 50], [25, 13]]]]


def test_float_blend_rounds_exactly_for_every_value():
    """Every (v, fg, bg) in 0..255: the float32 blend equals integer round-to-nearest."""
    grey = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 1, 256).expand(256 * 256, 1, 1, 256)
    values = torch.arange(256)
    fg = values.repeat_interleave(256)[:, None].expand(-1, 3)  # every fg with every bg
    bg = values.repeat(256)[:, None].expand(-1, 3)
    v = torch.arange(256)[None, :]
    exact = (v * fg[:, :1] + (255 - v) * bg[:, :1] + 127) // 255  # (65536, 256)
    assert torch.equal(colorize(grey, fg, bg)[:, 0, 0], exact.to(torch.uint8))


def test_split_colours_follow_the_documented_rule():
    fg, bg = split_colors("train", 60000)
    assert fg.min() == FG_MIN and fg.max() == 255
    gap = (fg - bg).abs()
    assert gap.min() == 128 - BG_SPREAD and gap.max() == 128 + BG_SPREAD
    again_fg, again_bg = split_colors("train", 60000)
    assert torch.equal(fg, again_fg) and torch.equal(bg, again_bg)
    test_fg, _ = split_colors("test", 10000)
    assert not torch.equal(fg[:10000], test_fg)
    # Pinned: a change here (seed, rule or torch's generator) changes the data set and its statistics.
    assert fg[:2].tolist() == PINNED_TRAIN_FG and test_fg[:2].tolist() == PINNED_TEST_FG


PINNED_TRAIN_FG = [[179, 87, 199], [192, 251, 222]]  # the first two images' foreground colours
PINNED_TEST_FG = [[237, 73, 189], [94, 142, 163]]


def test_loaded_splits_are_coloured_deterministically(tiny_config):
    exp = colored(tiny_config)
    stages.get_dataset(exp)
    splits = load_splits(exp)
    assert splits.train_images.shape == (64, 3, 28, 28) and splits.train_images.dtype == torch.uint8
    assert splits.test_images.shape == (64, 3, 28, 28)
    assert torch.equal(load_splits(exp).train_images, splits.train_images)  # same bytes twice
    other_seed = config.load(tiny_config(seed=7, data={"dataset": "colored-mnist", **SLICE, "train_subset": 128}))
    longer = load_splits(other_seed)  # another experiment seed and subset: image i keeps colour i
    assert torch.equal(longer.train_images[:64], splits.train_images)
    grey = load_splits(config.load(tiny_config(data={"dataset": "mnist", **SLICE})))
    assert torch.equal(splits.train_labels, grey.train_labels) and torch.equal(splits.test_labels, grey.test_labels)
    fg, _ = split_colors("train", 60000)
    lit = grey.train_images[:, 0] == 255  # full-intensity pixels take the foreground colour exactly
    assert torch.equal(rgb_at(splits.train_images, lit), per_pixel(fg[:64], lit))
    assert (rgb_at(splits.train_images, grey.train_images[:, 0] == 0) == 0).all()  # black background


def test_background_option_colours_the_background(tiny_config):
    exp = colored(tiny_config, color_background=True)
    stages.get_dataset(exp)
    splits = load_splits(exp)
    grey = load_splits(config.load(tiny_config(data={"dataset": "mnist", **SLICE})))
    _, bg = split_colors("test", 10000)
    empty = grey.test_images[:, 0] == 0
    assert torch.equal(rgb_at(splits.test_images, empty), per_pixel(bg[:64], empty))
    plain = load_splits(colored(tiny_config))
    lit = grey.test_images[:, 0] == 255  # the foreground is the same with or without the option
    assert torch.equal(rgb_at(splits.test_images, lit), rgb_at(plain.test_images, lit))
    train, _ = make_loaders(exp, splits, torch.device("cpu"))
    mean, std = DATASETS["colored-mnist"].normalization(background=True)
    assert train.mean == mean and train.std == std and mean != DATASETS["colored-mnist"].mean


def test_color_background_needs_a_colored_data_set(tiny_config):
    with pytest.raises(UserError, match="color_background is only for the colored data sets"):
        config.load(tiny_config(data={"color_background": True}))


def test_get_dataset_fetches_the_base_set_once(tiny_config, capsys):
    exp = colored(tiny_config)
    hint = r"mnist not found in .*dataset/mnist; run `python tasks/get_dataset.py .*tiny.toml`"
    with pytest.raises(UserError, match=hint):  # before get-dataset: the base set's directory, this config
        load_splits(exp)
    stages.get_dataset(exp)
    assert [p.name for p in Path(exp.data.root).iterdir()] == ["mnist"]  # no dataset/colored-mnist/
    mnist = config.load(tiny_config())
    assert json.loads(paths.dataset_manifest(mnist).read_text())["dataset"] == "mnist"
    capsys.readouterr()
    stages.get_dataset(exp)
    stages.get_dataset(mnist)  # plain mnist: the same files, already there
    assert capsys.readouterr().out.count("is up to date") == 2


def test_crop_and_flip_work_on_three_channels(tiny_config):
    exp = colored(tiny_config, augment=["crop", "flip"], crop_padding=4)
    stages.get_dataset(exp)
    splits = load_splits(exp)
    train, test = make_loaders(exp, splits, torch.device("cpu"))
    images, labels = next(iter(train))
    assert images.shape == (32, 3, 28, 28) and images.dtype == torch.float32 and labels.shape == (32,)
    plain, _ = next(iter(test))
    mean, std = DATASETS["colored-mnist"].mean, DATASETS["colored-mnist"].std
    expected = (splits.test_images.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(plain, expected, atol=1e-5)


@pytest.mark.parametrize("arch", ["vgg7", "resnet18"])
def test_train_prune_test_on_a_slice(tiny_config, arch):
    exp = config.load(tiny_config(
        data={"dataset": "colored-mnist", **SLICE, "augment": ["crop", "flip"]},
        model={"arch": arch},
        train={"epochs": 1, "lr": 0.01},
        prune={"method": "magnitude", "sparsity": 0.2, "iterations": 1, "finetune": {"epochs": 0}},
        test={"latency_batch_sizes": [8], "latency_repeats": 1, "latency_warmup": 0},
    ))
    for stage in (stages.get_dataset, stages.train, stages.prune, stages.test):
        stage(exp)
    metrics = json.loads(paths.metrics(exp).read_text())
    assert 0 <= metrics["pruned"]["accuracy"] <= 100
    assert metrics["pruned"]["compression"] == pytest.approx(1 / 0.8, rel=0.02)


@pytest.mark.parametrize("base", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("background", [False, True])
def test_catalog_statistics_are_the_real_training_splits(tmp_path, base, background):
    if not (REPO_DATASETS / base / "manifest.json").is_file():
        pytest.skip(f"needs the real {base} in dataset/{base} (get-dataset of a config with data.dataset = {base!r})")
    raw = {"name": "stats", "data": {"dataset": f"colored-{base}", "root": str(REPO_DATASETS),
                                     "color_background": background}}
    (tmp_path / "stats.toml").write_text(to_toml(raw))
    exp = config.load(tmp_path / "stats.toml")
    mean, std = channel_stats(load_splits(exp).train_images)
    expected_mean, expected_std = DATASETS[f"colored-{base}"].normalization(background)
    assert mean == pytest.approx(expected_mean, abs=1e-4) and std == pytest.approx(expected_std, abs=1e-4)
