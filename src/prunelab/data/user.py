"""A user's own data set (dataset = "folder" / "arrays", config/data.py) in prunelab's format.

get-dataset reads data.source (user_sources.py), computes the per-channel mean and std of the
training split and stores the four arrays as .npy files (images uint8 (N, C, H, W), labels int64)
under data.root/<stored_name>/, with a manifest of their sha256 digests and the metadata (class
names, image shape, number of classes, image counts, statistics). Every later stage reads the spec
from the manifest (stored_spec, through spec.spec_for) and the arrays through load_splits, checked
against the manifest; the stage hashes take the manifest's identity (catalog.stored_identity).
"""

from __future__ import annotations

import hashlib
import io
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from rich.markup import escape

from .. import paths, provenance
from ..atomic import atomic_path, load_json
from ..config.sections import Experiment
from ..errors import UserError
from ..log import console
from . import manifest
from .catalog import USER_KINDS, DatasetSpec
from .user_sources import SPLITS, UserSet, bad_files, read_arrays, read_folder

FILES = {split: (f"{split}-images.npy", f"{split}-labels.npy") for split in SPLITS}
_CHUNK = 4096  # images summed at a time: bounds the int64 temporaries (8 bytes per pixel)


def statistics(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and population std of uint8 (N, C, H, W) images on [0, 1] pixels (x / 255),
    from exact integer sums of the pixels and their squares (a float sum over millions of pixels
    would drift)."""
    channels = images.shape[1]
    total, squares = np.zeros(channels, dtype=np.int64), np.zeros(channels, dtype=np.int64)
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].astype(np.int64)
        total += chunk.sum(axis=(0, 2, 3))
        squares += (chunk * chunk).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]  # pixels per channel
    mean = total / count
    variance = np.maximum(squares / count - mean * mean, 0.0)
    return [float(m / 255) for m in mean], [float(np.sqrt(v) / 255) for v in variance]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _read_source(exp: Experiment) -> UserSet:
    """data.source's set, checked; bad files are named one per line."""
    source = Path(exp.data.source)
    kind = exp.data.dataset
    if not (source.is_dir() if kind == "folder" else source.is_file()):
        raise UserError(f"{exp.path}: data.source: {source} not found ({kind}: {USER_KINDS[kind]})")
    read = read_folder if kind == "folder" else read_arrays
    user_set, problems = read(source)
    if problems:
        raise bad_files(f"{exp.path}: data.source", problems)
    return user_set


def _metadata(exp: Experiment, user_set: UserSet) -> dict:
    """What the manifest records beside the digests (JSON types only: it is compared with a stored copy)."""
    train_images = user_set.splits["train"][0]
    mean, std = statistics(train_images)
    constant = [channel for channel, value in enumerate(std) if value == 0]
    if constant:
        raise UserError(f"{exp.path}: data.source: channel {constant[0]} of every training image has one value "
                        "(std 0): nothing to learn from, and it cannot be normalized")
    return {
        "kind": exp.data.dataset, "classes": list(user_set.classes), "num_classes": len(user_set.classes),
        "image_shape": list(train_images.shape[1:]),  # (channels, height, width)
        "sizes": {split: len(labels) for split, (_, labels) in user_set.splits.items()},
        "mean": mean, "std": std,  # per channel, on [0, 1] pixels, of the training split
    }


def _is_current(exp: Experiment, digests: dict[str, str], meta: dict) -> bool:
    if not manifest.is_current(exp, set(digests)):
        return False
    record = load_json(paths.dataset_manifest(exp))
    return record.get("sha256") == digests and record.get("meta") == meta


def get_user_dataset(exp: Experiment, force: bool = False) -> Path:
    """Read and check data.source, then store it with its manifest; skipped while the stored copy
    holds the same arrays and metadata. All or nothing: the manifest goes first and is written only
    once every file is in place."""
    user_set = _read_source(exp)
    meta = _metadata(exp, user_set)
    blobs = {name: _npy(array) for split, names in FILES.items() for name, array in zip(names, user_set.splits[split])}
    digests = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    dest = paths.dataset_dir(exp)
    if not force and _is_current(exp, digests, meta):
        console.print(f"[green]{escape(str(dest))}[/] is up to date (checksums match {paths.dataset_manifest(exp).name})")
        return dest
    paths.dataset_manifest(exp).unlink(missing_ok=True)  # no manifest until the new copy is complete
    with ExitStack() as stack:  # every file renamed into place only once all are written
        for name, blob in blobs.items():
            stack.enter_context(atomic_path(dest / name)).write_bytes(blob)
    manifest.write(exp, exp.data.stored_name, exp.data.source, digests, meta=meta)
    sizes = ", ".join(f"{split} {count}" for split, count in meta["sizes"].items())
    console.print(f"[green]{escape(str(dest))}[/]: {exp.data.dataset} from {escape(exp.data.source)}: "
                  f"{meta['num_classes']} classes, images {'x'.join(map(str, meta['image_shape']))} ({sizes})")
    return dest


def stored_spec(exp: Experiment) -> DatasetSpec:
    """The stored set's spec, from its manifest (its integrity digest checked; the arrays are checked
    against it when load_splits reads them)."""
    path = paths.dataset_manifest(exp)
    if not path.is_file():
        raise UserError(f"{exp.path}: data set {exp.data.stored_name} ({exp.data.dataset} from {exp.data.source}) "
                        f"not found in {path.parent}; {provenance.run_hint(exp, 'get_dataset')}")
    try:
        meta = load_json(path)["meta"]
        return DatasetSpec(
            name=exp.data.stored_name, files={}, sizes=dict(meta["sizes"]), image_shape=tuple(meta["image_shape"]),
            num_classes=meta["num_classes"], mean=tuple(meta["mean"]), std=tuple(meta["std"]),
            user_kind=meta["kind"], classes=tuple(meta["classes"]),
        )
    except (UserError, KeyError, TypeError) as error:
        reason = error if isinstance(error, UserError) else f"{path}: not a user data set's manifest"
        raise UserError(f"{reason}; {provenance.run_hint(exp, 'get_dataset', '--force')}") from None


def read_splits(exp: Experiment, spec: DatasetSpec) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """split -> (uint8 images (N, C, H, W), int64 labels) of a stored set whose files the caller has
    checked against the manifest; shapes checked against the spec all the same."""
    arrays = {}
    for split, (images_name, labels_name) in FILES.items():
        images, labels = (np.load(paths.dataset_dir(exp) / name, allow_pickle=False) for name in (images_name, labels_name))
        count = spec.sizes[split]
        if images.dtype != np.uint8 or images.shape != (count, *spec.image_shape) or labels.shape != (count,):
            raise UserError(f"{paths.dataset_dir(exp) / images_name}: {images.dtype} {images.shape} does not match "
                            f"{paths.dataset_manifest(exp).name}; {provenance.run_hint(exp, 'get_dataset', '--force')}")
        arrays[split] = (torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))
    return arrays
