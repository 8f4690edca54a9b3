"""Reading a user's own data set from data.source, checked before anything is stored.

"folder": <source>/<split>/<class>/<image>, splits train and test, PNG or JPEG files read with Pillow
(grayscale "L" stays 1 channel, "RGB" is 3; every image the same size and mode). The class folders
of train/, sorted by name, give the label indices; each split is stored class by class in turn
(image k of every class, then image k + 1), so the first N images (data.train_subset) cover the
classes evenly. "arrays": an .npz of train_images, train_labels, test_images, test_labels (uint8
N x H x W [x C], integer labels) and optionally class_names (strings, label order); without it the
classes are 0..max training label.

Every problem is collected, one line per bad file or array (bad_files), so one run names them all.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.npyio import NpzFile
from PIL import Image

from ..errors import UserError

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("PNG", "JPEG")  # what Pillow must find inside, whatever the suffix says
MODES = {"L": 1, "RGB": 3}  # Pillow mode -> channels
ARRAY_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
NAMES_KEY = "class_names"
MAX_SHOWN = 20  # bad files named one per line; the rest are counted in a last line


@dataclass
class UserSet:
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (uint8 (N, C, H, W), int64 (N,))
    classes: tuple[str, ...]  # label order


def bad_files(where: str, problems: list[str]) -> UserError:
    """One UserError naming every problem on a line of its own, each starting with `where` (the
    config and key), the first MAX_SHOWN of them and then how many more."""
    lines = [f"{where}: {problem}" for problem in problems[:MAX_SHOWN]]
    if len(problems) > MAX_SHOWN:
        lines.append(f"{where}: and {len(problems) - MAX_SHOWN} more bad files")
    return UserError("\n".join(lines))


def _visible(directory: Path) -> list[Path]:
    """The entries of `directory` by name, without hidden ones (.DS_Store, editor files)."""
    return sorted(entry for entry in directory.iterdir() if not entry.name.startswith("."))


def _open(path: Path) -> tuple[np.ndarray | None, str | None]:
    """(H x W [x 3] uint8 pixels, None), or (None, why the file is refused)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.format not in FORMATS:
                return None, f"a {image.format} image, not PNG or JPEG"
            if image.mode not in MODES:
                return None, f"mode {image.mode}; only L (grayscale) and RGB images are read: convert it"
            return np.asarray(image, dtype=np.uint8), None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return None, f"unreadable image ({str(error)[:100] or type(error).__name__})"


def _class_files(root: Path, classes: list[str], problems: list[str]) -> dict[str, dict[int, list[Path]]]:
    """split -> label -> image files, sorted; misplaced entries go to `problems`."""
    found: dict[str, dict[int, list[Path]]] = {}
    for split in SPLITS:
        found[split] = {label: [] for label in range(len(classes))}
        for entry in _visible(root / split):
            if not entry.is_dir():
                problems.append(f"{entry}: not inside a class folder of {split}/")
            elif entry.name not in classes:
                problems.append(f"{entry}: class {entry.name!r} has no folder in train/ (no training image)")
            else:
                for path in _visible(entry):
                    if path.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES:
                        problems.append(f"{path}: not a {', '.join(IMAGE_SUFFIXES)} file")
                    else:
                        found[split][classes.index(entry.name)].append(path)
    for label, name in enumerate(classes):
        if not found["train"][label]:
            problems.append(f"{root / 'train' / name}: no images (every class needs a training image)")
    return found


def read_folder(root: Path) -> tuple[UserSet | None, list[str]]:
    """The folder's set, or None and every problem found."""
    problems = [f"{root / split}: missing (a folder of class folders)" for split in SPLITS
                if not (root / split).is_dir()]
    if problems:
        return None, problems
    classes = [entry.name for entry in _visible(root / "train") if entry.is_dir()]
    if not classes:
        return None, [f"{root / 'train'}: no class folders"]
    files = _class_files(root, classes, problems)
    pixels: dict[Path, np.ndarray] = {}
    for path in (path for split in SPLITS for paths in files[split].values() for path in paths):
        array, problem = _open(path)
        if problem is not None:
            problems.append(f"{path}: {problem}")
        else:
            pixels[path] = array
    if not any(files["test"].values()):
        problems.append(f"{root / 'test'}: no images")
    if pixels:  # the usual size and mode (the most common; ties: the first file's) is the data set's
        shapes = Counter(array.shape for array in pixels.values())
        usual = max(shapes, key=lambda shape: shapes[shape])
        for path, array in pixels.items():
            if array.shape != usual:
                problems.append(f"{path}: {_describe(array.shape)}, but the data set's images are {_describe(usual)}")
    if problems:
        return None, problems
    splits = {}
    for split in SPLITS:
        by_class = files[split]
        # class by class in turn: image k of every class, then image k + 1
        order = sorted((k, label) for label, paths in by_class.items() for k in range(len(paths)))
        images = np.stack([pixels[by_class[label][k]] for k, label in order])
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        splits[split] = (np.ascontiguousarray(images), np.array([label for _, label in order], dtype=np.int64))
    return UserSet(splits, tuple(classes)), []


def _describe(shape: tuple[int, ...]) -> str:
    """'12x12 L' or '12x12 RGB' for an image array's shape (H, W) or (H, W, 3)."""
    return f"{shape[1]}x{shape[0]} {'L' if len(shape) == 2 else 'RGB'}"


def _load_npz(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The .npz's arrays (never unpickled), and what is wrong with the file or its keys."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        return {}, [f"{path}: not a readable .npz file ({str(error)[:100]})"]
    if not isinstance(loaded, NpzFile):
        return {}, [f"{path}: one array, not an .npz archive of {', '.join(ARRAY_KEYS)}"]
    arrays, problems = {}, []
    with loaded:
        for key in loaded.files:
            if key not in (*ARRAY_KEYS, NAMES_KEY):
                problems.append(f"{path}: unknown array {key!r} (expected {', '.join(ARRAY_KEYS)}, optionally {NAMES_KEY})")
                continue
            try:
                arrays[key] = loaded[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # e.g. an object array
                problems.append(f"{path}: {key}: unreadable ({str(error)[:100]})")
        problems += [f"{path}: no {key} array" for key in ARRAY_KEYS if key not in loaded.files]
    return arrays, problems


def _check_split(path: Path, arrays: dict[str, np.ndarray], split: str) -> list[str]:
    """Shapes and dtypes of one split's images and labels."""
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    problems = []
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or 0 in images.shape:
        problems.append(f"{path}: {split}_images: {images.dtype} {images.shape}, expected uint8 N x H x W [x C], N > 0")
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1 or len(labels) != len(images):
        problems.append(f"{path}: {split}_labels: {labels.dtype} {labels.shape}, expected {len(images)} integer labels")
    return problems


def read_arrays(path: Path) -> tuple[UserSet | None, list[str]]:
    """The .npz's set, or None and every problem found."""
    arrays, problems = _load_npz(path)
    if problems:
        return None, problems
    problems = [problem for split in SPLITS for problem in _check_split(path, arrays, split)]
    names = arrays.get(NAMES_KEY)
    if names is not None and (names.dtype.kind != "U" or names.ndim != 1 or len(set(names)) != len(names) or not len(names)):
        problems.append(f"{path}: {NAMES_KEY}: {names.dtype} {names.shape}, expected distinct strings, one per class")
    if problems:
        return None, problems
    train_shape, test_shape = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train_shape != test_shape:
        problems.append(f"{path}: test_images: images are {'x'.join(map(str, test_shape))} (H x W [x C]), "
                        f"train_images' are {'x'.join(map(str, train_shape))}")
    count = len(names) if names is not None else max(1, int(arrays["train_labels"].max()) + 1)
    for split in SPLITS:
        labels = arrays[f"{split}_labels"]
        wrong = np.flatnonzero((labels < 0) | (labels >= count))
        if len(wrong):
            problems.append(f"{path}: {split}_labels: label {int(labels[wrong[0]])} at index {int(wrong[0])} out of "
                            f"range 0..{count - 1} ({len(wrong)} labels out of range)")
    seen = np.bincount(arrays["train_labels"][(arrays["train_labels"] >= 0) & (arrays["train_labels"] < count)],
                       minlength=count)
    classes = tuple(str(name) for name in names) if names is not None else tuple(map(str, range(count)))
    problems += [f"{path}: train_labels: class {label} ({classes[label]!r}) has no training image"
                 for label in np.flatnonzero(seen == 0)]
    if problems:
        return None, problems
    splits = {}
    for split in SPLITS:
        images = arrays[f"{split}_images"]
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        splits[split] = (np.ascontiguousarray(images), arrays[f"{split}_labels"].astype(np.int64))
    return UserSet(splits, classes), []
