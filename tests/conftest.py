"""Shared fixtures: a synthetic MNIST-format data set and tiny experiment configs."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from prunelab import config
from prunelab.data import DATASETS
from prunelab.data.idx import read_bytes

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)


def synthetic_split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: class c lights up a 4x4 block at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = rng.integers(0, 60, (count, 28, 28), dtype=np.uint8)
    for c in range(10):
        row, col = 2 + 5 * (c // 5), 2 + 5 * (c % 5)
        images[labels == c, row : row + 4, col : col + 4] = 255
    return images, labels


@pytest.fixture(scope="session")
def synthetic_source(tmp_path_factory) -> Path:
    """A directory with the four IDX files at full MNIST size (60000/10000), raw and gzip mixed."""
    directory = tmp_path_factory.mktemp("synthetic_idx")
    for split, stem, count, seed in (("train", "train", 60000, 1), ("test", "t10k", 10000, 2)):
        images, labels = synthetic_split(count, seed)
        write_idx(directory / f"{stem}-images-idx3-ubyte", images)
        write_idx(directory / f"{stem}-labels-idx1-ubyte.gz", labels, compress=True)
    return directory


@pytest.fixture(scope="session")
def synthetic_raw_sha256(synthetic_source) -> dict[str, str]:
    """File stem -> sha256 of the synthetic files' decompressed bytes (as in the catalog)."""
    return {path.name.removesuffix(".gz"): hashlib.sha256(read_bytes(path)).hexdigest()
            for path in synthetic_source.iterdir()}


@pytest.fixture(autouse=True)
def synthetic_mnist_digests(request, monkeypatch):
    """Tests that use the synthetic files as MNIST put their digests in the catalog (get-dataset
    refuses any other bytes); every other test sees the real digests."""
    if "synthetic_source" in request.fixturenames:
        digests = request.getfixturevalue("synthetic_raw_sha256")
        monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], raw_sha256=digests))


def tiny_raw(tmp_path: Path, source: Path, **sections) -> dict:
    """A small, fast experiment (2000 training images, LeNet-300-100) as a raw TOML dict."""
    raw = {
        "name": "tiny",
        "seed": 0,
        "device": "cpu",
        "results_root": str(tmp_path / "results"),
        "data": {"dataset": "mnist", "source": str(source), "root": str(tmp_path / "dataset"),
                 "train_subset": 2000, "test_subset": 500, "batch_size": 100, "test_batch_size": 250},
        "model": {"arch": "lenet300_100"},
        "train": {"epochs": 2, "lr": 0.05},
        "prune": {"sparsity": 0.9, "iterations": 2, "finetune": {"epochs": 1, "lr": 0.01}},
        "test": {"latency_batch_sizes": [1, 64], "latency_repeats": 2, "latency_warmup": 1},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return raw


@pytest.fixture
def tiny_config(tmp_path, synthetic_source):
    """Write a tiny config TOML and return (path, raw dict writer)."""

    def make(**sections) -> Path:
        raw = tiny_raw(tmp_path, synthetic_source, **sections)
        path = tmp_path / "tiny.toml"
        path.write_text(to_toml(raw))
        return path

    return make


def to_toml(raw: dict, prefix: str = "") -> str:
    """A minimal TOML writer for the flat configs the tests use."""
    import json

    scalars, tables = [], []
    for key, value in raw.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            scalars.append(f"{key} = {json.dumps(value)}")
    text = "\n".join(scalars) + "\n"
    for key, value in tables:
        name = f"{prefix}{key}"
        text += f"\n[{name}]\n" + to_toml(value, prefix=f"{name}.")
    return text


def experiment(path: Path, *overrides: str) -> config.Experiment:
    return config.load(path, list(overrides))


# A [sweep] table for the sweep tests (test_shard.py, test_sweep_jobs.py), appended to a tiny config.
SWEEP = """
[sweep]
kind = "at_init"
stages = ["prune", "test"]
variants = [
{variants}
]

[sweep.grid]
seed = [0]
"""
# What differs between two runs of the same cell: timings, when and by which command it ran,
# the digests that cover those, and where the cell's files are.
SWEEP_VOLATILE = {"latency", "made_by", "digest", "inputs", "results"}
