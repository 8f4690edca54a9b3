"""CIFAR-10/100: synthetic archives in the published format, safe extraction, restricted unpickling."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab import config, paths
from prunelab.data import DATASETS, download
from prunelab.data.loader import load_splits, make_loaders
from prunelab.errors import UserError
from prunelab.stages import get_dataset

SIZES = {"train": 50, "test": 20}  # the real archives hold 50,000 / 10,000 images


def _batch(count: int, seed: int, label_key: str, classes: int) -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
    labels = rng.integers(0, classes, count)
    # Python 2's cPickle wrote byte-string keys; the real files load with encoding="bytes" like this.
    return {b"batch_label": b"synthetic", b"data": data, label_key.encode(): labels.tolist(),
            b"filenames": [b"x.png"] * count}, data, labels


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def build_archive(directory: Path, spec, extra: tuple[str, bytes] | None = None) -> tuple[Path, dict]:
    """A .tar.gz laid out like the Toronto archive (a pickled dict per batch); returns expected arrays."""
    per_file = {split: SIZES[split] // len(files) for split, files in spec.batches.items()}
    expected = {}
    archive = directory / spec.archive
    with tarfile.open(archive, "w:gz") as tar:
        for split, files in spec.batches.items():
            parts = []
            for i, name in enumerate(files):
                batch, data, labels = _batch(per_file[split], hash((split, i)) % 1000, spec.label_key, spec.num_classes)
                _add(tar, f"{spec.archive_dir}/{name}", pickle.dumps(batch, protocol=2))
                parts.append((data, labels))
            expected[split] = (np.concatenate([d for d, _ in parts]), np.concatenate([l for _, l in parts]))
        _add(tar, f"{spec.archive_dir}/batches.meta", pickle.dumps({b"label_names": []}, protocol=2))
        if extra is not None:
            _add(tar, *extra)
    return archive, expected


@pytest.fixture
def small_specs(monkeypatch):
    """The CIFAR specs with small split sizes, so synthetic archives stay tiny."""
    for name in ("cifar10", "cifar100"):
        monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], sizes=dict(SIZES)))
    return DATASETS


def _experiment(tmp_path: Path, dataset: str, source: Path | None, **data) -> config.Experiment:
    section = {"dataset": dataset, "root": str(tmp_path / "dataset"), "batch_size": 8, "test_batch_size": 10, **data}
    if source is not None:
        section["source"] = str(source)
    return config.parse({"name": "c", "results_root": str(tmp_path / "results"), "data": section,
                         "model": {"arch": "lenet5"}}, str(tmp_path / "c.toml"))


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_archive_is_extracted_verified_and_read_as_uint8(tmp_path, small_specs, dataset, capsys):
    spec = small_specs[dataset]
    source = tmp_path / "source"
    source.mkdir()
    _, expected = build_archive(source, spec)
    exp = _experiment(tmp_path, dataset, source, augment=["crop", "flip"], crop_padding=4)
    get_dataset(exp)
    manifest = json.loads(paths.dataset_manifest(exp).read_text())
    assert set(manifest["sha256"]) == {f"{spec.archive_dir}/{n}" for names in spec.batches.values() for n in names}
    splits = load_splits(exp)
    for split, images, labels in (("train", splits.train_images, splits.train_labels),
                                  ("test", splits.test_images, splits.test_labels)):
        assert images.dtype == torch.uint8 and images.shape == (SIZES[split], 3, 32, 32)
        assert labels.dtype == torch.int64
        data, want = expected[split]
        # one 32x32 plane per channel: pixel (c, y, x) is column c*1024 + y*32 + x
        assert torch.equal(images, torch.from_numpy(data.reshape(-1, 3, 32, 32)))
        assert images[3, 1, 2, 5] == data[3, 1024 + 2 * 32 + 5]
        assert labels.tolist() == want.tolist()
    train, _ = make_loaders(exp, splits, torch.device("cpu"))
    batch, _ = next(iter(train))
    assert batch.shape == (8, 3, 32, 32) and batch.dtype == torch.float32
    capsys.readouterr()
    get_dataset(exp)  # idempotent
    assert "is up to date" in capsys.readouterr().out


def test_member_leaving_the_target_is_refused(tmp_path, small_specs):
    spec = small_specs["cifar10"]
    source = tmp_path / "source"
    source.mkdir()
    build_archive(source, spec, extra=("../evil", b"owned"))
    exp = _experiment(tmp_path, "cifar10", source)
    with pytest.raises(UserError, match=r"'\.\./evil' would be written outside"):
        get_dataset(exp)
    dest = paths.dataset_dir(exp)
    assert not (dest.parent / "evil").exists() and not (dest / "evil").exists()
    assert not paths.dataset_manifest(exp).exists() and not (dest / spec.archive_dir).exists()


def test_batch_with_a_foreign_global_is_refused(tmp_path, small_specs):
    spec = small_specs["cifar10"]
    source = tmp_path / "source" / spec.archive_dir
    source.mkdir(parents=True)
    build_archive(tmp_path, spec)  # a complete set, then one batch replaced by a hostile pickle
    with tarfile.open(tmp_path / spec.archive) as tar:
        tar.extractall(tmp_path / "source", filter="data")
    (source / "data_batch_2").write_bytes(pickle.dumps({b"data": print}, protocol=2))  # builtins.print
    exp = _experiment(tmp_path, "cifar10", source.parent)
    with pytest.raises(UserError, match="data_batch_2: not a CIFAR python batch .*refusing global (__builtin__|builtins).print"):
        get_dataset(exp)
    assert not paths.dataset_manifest(exp).exists()


def test_download_checks_the_md5(tmp_path, small_specs, monkeypatch):
    spec = small_specs["cifar10"]
    archive, _ = build_archive(tmp_path, spec)
    payload = archive.read_bytes()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    served = []
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: served.append(url) or Response(payload))
    exp = _experiment(tmp_path / "wrong", "cifar10", None)
    with pytest.raises(UserError, match="could not download cifar-10-python.tar.gz .*checksum mismatch"):
        get_dataset(exp)
    assert served == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert not (paths.dataset_dir(exp) / spec.archive).exists()
    md5 = hashlib.md5(payload).hexdigest()
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(spec, md5={spec.archive: md5}))
    exp = _experiment(tmp_path / "right", "cifar10", None)
    get_dataset(exp)
    assert load_splits(exp).train_images.shape == (SIZES["train"], 3, 32, 32)


def test_wrong_split_size_names_the_directory(tmp_path, small_specs, monkeypatch):
    spec = small_specs["cifar100"]
    source = tmp_path / "source"
    source.mkdir()
    build_archive(source, spec)
    monkeypatch.setitem(DATASETS, "cifar100", dataclasses.replace(spec, sizes={"train": 60, "test": 20}))
    exp = _experiment(tmp_path, "cifar100", source)
    with pytest.raises(UserError, match="train split has 50 images, expected 60"):
        get_dataset(exp)
