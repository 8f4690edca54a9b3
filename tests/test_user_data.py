"""A user's own data set: dataset = "folder" (PNG/JPEG files) and "arrays" (.npz), written here,
stored by get-dataset with its statistics and manifest, and run end to end; bad files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import experiment, tiny_raw, to_toml
from prunelab import paths
from prunelab.cli import run
from prunelab.data.loader import load_splits, make_loaders
from prunelab.data.spec import spec_for
from prunelab.data.user_sources import MAX_SHOWN

CLASSES = ("circle", "square", "triangle")  # sorted: labels 0, 1, 2
SIDE = 12  # pixels


def images_of(label: int, count: int, seed: int, channels: int = 0) -> np.ndarray:
    """uint8 (count, SIDE, SIDE[, channels]): noise plus a bright 4x4 block where the class says."""
    rng = np.random.default_rng(seed)
    shape = (count, SIDE, SIDE) + ((channels,) if channels else ())
    images = rng.integers(0, 80, shape, dtype=np.uint8)
    images[:, 1 + 3 * label : 5 + 3 * label, 2:6] = 255
    return images


def write_folder(root: Path, train: int = 10, test: int = 5) -> dict[str, np.ndarray]:
    """root/<split>/<class>/<k>.png, grayscale; returns split -> all its images (for the statistics)."""
    written = {}
    for split, count, seed in (("train", train, 1), ("test", test, 2)):
        parts = []
        for label, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            images = images_of(label, count, seed + 10 * label)
            for k, image in enumerate(images):
                Image.fromarray(image, "L").save(root / split / name / f"{k:03d}.png")
            parts.append(images)
        written[split] = np.concatenate(parts)
    return written


def arrays(train: int = 30, test: int = 15) -> dict[str, np.ndarray]:
    """An RGB set as the .npz holds it: uint8 N x H x W x 3, labels 0..2 in turn."""
    out = {}
    for split, count, seed in (("train", train, 3), ("test", test, 4)):
        labels = np.arange(count) % 3
        images = np.concatenate([images_of(int(label), 1, seed + k, channels=3) for k, label in enumerate(labels)])
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels.astype(np.int64)
    return out


def write_config(tmp_path: Path, dataset: str, source: Path, name: str = "mine") -> Path:
    raw = tiny_raw(tmp_path, source, name=name, data={
        "dataset": dataset, "train_subset": 0, "test_subset": 0, "batch_size": 10, "test_batch_size": 15})
    raw["train"]["epochs"] = 1
    raw["prune"].update(iterations=1)
    path = tmp_path / f"{name}.toml"
    path.write_text(to_toml(raw))
    return path


def numpy_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel mean and population std on [0, 1] of N x H x W [x C] uint8 images."""
    pixels = images.reshape(-1, 1 if images.ndim == 3 else images.shape[-1]).astype(np.float64) / 255
    return pixels.mean(axis=0), pixels.std(axis=0)


def error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_a_folder_of_pngs_runs_end_to_end(tmp_path, capsys):
    written = write_folder(tmp_path / "shapes")
    path = write_config(tmp_path, "folder", tmp_path / "shapes")
    assert run("reproduce", [str(path)]) == 0
    exp = experiment(path)
    assert (paths.run_dir(exp) / "report.md").is_file() and (paths.run_dir(exp) / "metrics.json").is_file()
    spec = spec_for(exp)
    assert (spec.image_shape, spec.num_classes, spec.classes) == ((1, SIDE, SIDE), 3, CLASSES)
    assert spec.sizes == {"train": 30, "test": 15}
    mean, std = numpy_statistics(written["train"])
    np.testing.assert_allclose(spec.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(spec.std, std, rtol=1e-12)
    splits = load_splits(exp)
    assert splits.train_labels[:6].tolist() == [0, 1, 2, 0, 1, 2]  # class by class in turn
    assert sorted(splits.train_images.flatten().tolist()) == sorted(written["train"].flatten().tolist())
    train, _ = make_loaders(exp, splits, "cpu")
    assert train.mean == spec.mean and train.std == spec.std
    capsys.readouterr()
    assert run("reproduce", [str(path)]) == 0  # everything current: nothing redone
    assert "up to date" in capsys.readouterr().out


def test_an_npz_of_rgb_arrays_runs_end_to_end(tmp_path):
    data = arrays()
    np.savez(tmp_path / "shapes.npz", **data, class_names=np.array(CLASSES))
    path = write_config(tmp_path, "arrays", tmp_path / "shapes.npz")
    assert run("reproduce", [str(path)]) == 0
    exp = experiment(path)
    spec = spec_for(exp)
    assert (spec.image_shape, spec.num_classes, spec.classes) == ((3, SIDE, SIDE), 3, CLASSES)
    mean, std = numpy_statistics(data["train_images"])
    np.testing.assert_allclose(spec.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(spec.std, std, rtol=1e-12)
    splits = load_splits(exp)
    assert np.array_equal(splits.test_images.numpy(), data["test_images"].transpose(0, 3, 1, 2))
    assert np.array_equal(splits.test_labels.numpy(), data["test_labels"])


def test_rgb_jpegs_are_read_as_three_channels(tmp_path):
    root = tmp_path / "photos"
    for split, count in (("train", 2), ("test", 1)):
        for label, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for k, image in enumerate(images_of(label, count, 7, channels=3)):
                Image.fromarray(image, "RGB").save(root / split / name / f"{k}.JPG", quality=95)
    path = write_config(tmp_path, "folder", root)
    assert run("get_dataset", [str(path)]) == 0
    exp = experiment(path)
    assert spec_for(exp).image_shape == (3, SIDE, SIDE) and spec_for(exp).sizes == {"train": 6, "test": 3}
    assert load_splits(exp).train_images.shape == (6, 3, SIDE, SIDE)


def test_the_stored_set_is_checked_on_every_read(tmp_path, capsys):
    np.savez(tmp_path / "shapes.npz", **arrays())
    path = write_config(tmp_path, "arrays", tmp_path / "shapes.npz")
    assert run("get_dataset", [str(path)]) == 0
    stored = paths.dataset_dir(experiment(path)) / "train-images.npy"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF  # a changed pixel: still a loadable array
    stored.write_bytes(bytes(data))
    capsys.readouterr()
    assert run("train", [str(path)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "train-images.npy: missing or damaged" in lines[0] and "get" in lines[0]


def test_before_get_dataset_every_stage_names_it(tmp_path, capsys):
    np.savez(tmp_path / "shapes.npz", **arrays())
    path = write_config(tmp_path, "arrays", tmp_path / "shapes.npz")
    assert run("train", [str(path)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "not found" in lines[0] and "get" in lines[0] and "dataset" in lines[0]


def test_changed_data_make_the_dense_model_stale_and_a_moved_source_does_not(tmp_path):
    data = arrays()
    np.savez(tmp_path / "shapes.npz", **data)
    path = write_config(tmp_path, "arrays", tmp_path / "shapes.npz")
    assert run("get_dataset", [str(path)]) == 0
    before = experiment(path).stage_hash("train")
    (tmp_path / "elsewhere").mkdir()
    np.savez(tmp_path / "elsewhere" / "shapes.npz", **data)  # the same arrays, another source
    moved = experiment(path, f"data.source={tmp_path / 'elsewhere' / 'shapes.npz'}")
    assert moved.data.stored_name != experiment(path).data.stored_name  # same base name, no collision
    assert run("get_dataset", [str(path), "--set", f"data.source={tmp_path / 'elsewhere' / 'shapes.npz'}"]) == 0
    assert moved.stage_hash("train") == before
    data["train_images"][0, 0, 0, 0] ^= 1
    np.savez(tmp_path / "shapes.npz", **data)
    assert run("get_dataset", [str(path)]) == 0
    assert experiment(path).stage_hash("train") != before


def test_a_user_set_needs_a_source(tmp_path, capsys):
    raw = tiny_raw(tmp_path, tmp_path, data={"dataset": "folder"})
    del raw["data"]["source"]
    path = tmp_path / "x.toml"
    path.write_text(to_toml(raw))
    assert run("get_dataset", [str(path)]) == 2
    assert error_lines(capsys) == [f'error: {path}: data.source: dataset = "folder" needs data.source, a directory '
                                   "of <split>/<class>/<image> PNG or JPEG files (splits train and test)"]


def test_bad_files_in_a_folder_are_each_named_and_nothing_is_stored(tmp_path, capsys):
    root = tmp_path / "shapes"
    write_folder(root, train=2, test=1)
    Image.fromarray(images_of(0, 1, 5)[0][:, :10], "L").save(root / "train" / "circle" / "narrow.png")
    Image.fromarray(images_of(0, 1, 5, channels=3)[0], "RGB").save(root / "test" / "square" / "colour.png")
    (root / "train" / "square" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "train" / "empty").mkdir()  # a class with no training image
    (root / "test" / "hexagon").mkdir()  # a class that train/ does not have
    (root / "train" / "notes.txt").write_text("")
    path = write_config(tmp_path, "folder", root)
    assert run("get_dataset", [str(path)]) == 2
    lines = error_lines(capsys)
    where = f"{path}: data.source: "
    assert all(line.removeprefix("error: ").startswith(where) for line in lines)
    found = [line.split(where, 1)[1] for line in lines]
    expected = {
        "narrow.png": "10x12 L, but the data set's images are 12x12 L",
        "colour.png": "12x12 RGB, but the data set's images are 12x12 L",
        "broken.png": "unreadable image",
        "empty": "no images (every class needs a training image)",
        "hexagon": "class 'hexagon' has no folder in train/",
        "notes.txt": "not inside a class folder",
    }
    assert len(found) == len(expected)
    for name, problem in expected.items():
        assert any(line.startswith(str(root)) and name in line and problem in line for line in found), name
    assert not paths.dataset_dir(experiment(path)).exists()


def test_more_bad_files_than_shown_are_counted(tmp_path, capsys):
    root = tmp_path / "shapes"
    write_folder(root, train=1, test=1)
    for k in range(MAX_SHOWN + 3):
        (root / "train" / "circle" / f"bad{k:02d}.jpg").write_bytes(b"not a jpeg")
    path = write_config(tmp_path, "folder", root)
    assert run("get_dataset", [str(path)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == MAX_SHOWN + 1 and lines[-1].endswith("and 3 more bad files")


@pytest.mark.parametrize("change, key, problem", [
    (lambda d: d.update(test_images=d["test_images"][:, :10]), "test_images", "images are 10x12x3 (H x W [x C]), train_images' are 12x12x3"),
    (lambda d: d.update(train_images=d["train_images"].astype(np.float32)), "train_images", "float32"),
    (lambda d: d["test_labels"].__setitem__(4, 3), "test_labels", "label 3 at index 4 out of range 0..2"),
    (lambda d: d["train_labels"].__setitem__(d["train_labels"] == 1, 0), "train_labels",
     "class 1 ('square') has no training image"),
    (lambda d: d.update(train_labels=d["train_labels"][:-1]), "train_labels", "expected 30 integer labels"),
    (lambda d: d.pop("test_labels"), "no test_labels array", ""),
])
def test_bad_arrays_are_named(tmp_path, capsys, change, key, problem):
    data = arrays()
    change(data)
    np.savez(tmp_path / "shapes.npz", **data, class_names=np.array(CLASSES))
    path = write_config(tmp_path, "arrays", tmp_path / "shapes.npz")
    assert run("get_dataset", [str(path)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: data.source: {tmp_path / 'shapes.npz'}: {key}")
    assert problem in lines[0]


def test_a_file_that_is_not_an_npz_is_one_line(tmp_path, capsys):
    (tmp_path / "shapes.npz").write_bytes(b"PK not a zip")
    path = write_config(tmp_path, "arrays", tmp_path / "shapes.npz")
    assert run("get_dataset", [str(path)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "not a readable .npz file" in lines[0]


def test_non_square_images_need_a_network_of_ones_own(tmp_path, capsys):
    """The registered models are sized by one image_size: 12x16 images stop in one line naming model.arch."""
    data = {key: np.pad(value, ((0, 0), (0, 0), (2, 2), (0, 0))) if key.endswith("images") else value
            for key, value in arrays().items()}
    np.savez(tmp_path / "wide.npz", **data)
    path = write_config(tmp_path, "arrays", tmp_path / "wide.npz", name="wide")
    assert run("get_dataset", [str(path)]) == 0
    capsys.readouterr()
    assert run("train", [str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.arch: lenet300_100 takes square images" in err[0] and "12x16" in err[0]
