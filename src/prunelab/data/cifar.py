"""CIFAR-10 / CIFAR-100: fetch the python-pickle archive, extract it safely, read it into memory.

The archive (cifar-10-python.tar.gz, as the Toronto mirror serves it) is downloaded
and md5-checked, or copied from `data.source` (a directory holding that archive or
its unpacked directory). Extraction checks every member first and refuses the
whole archive if any would land outside the target directory (absolute paths,
`..`, links, devices). The batches are unpickled with an unpickler that only
builds numpy arrays, so a crafted batch file cannot run code. Each batch's
`data` is (N, 3072) uint8, one 32x32 plane per channel (R, G, B), so it reshapes
directly to (N, 3, 32, 32).
"""

from __future__ import annotations

import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import torch

from .. import paths, provenance
from ..atomic import atomic_path
from ..errors import UserError
from ..log import console
from . import manifest
from .catalog import DatasetSpec
from .download import download, sha256

# The only globals a CIFAR batch pickle refers to (numpy array reconstruction; Python 2
# byte strings go through _codecs.encode when re-pickled by Python 3).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        return super().find_class(module, name)


def _batch_files(spec: DatasetSpec) -> list[str]:
    return [name for names in spec.batches.values() for name in names]


def read_batch(path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one pickled batch file."""
    try:
        raw = _ArrayUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="bytes").load()
    except FileNotFoundError:
        raise UserError(f"{path}: batch file missing") from None
    except Exception as error:  # pickle raises many types for corrupt or hostile files
        raise UserError(f"{path}: not a CIFAR python batch ({str(error)[:120]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: not a CIFAR python batch (no dictionary)")
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in raw.items()}
    for key in ("data", spec.label_key):
        if key not in batch:
            raise UserError(f"{path}: batch has no {key!r} entry")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[spec.label_key], dtype=np.int64)
    channels, height, width = spec.image_shape
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != channels * height * width:
        raise UserError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 (N, {channels * height * width})")
    if labels.shape != (data.shape[0],):
        raise UserError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise UserError(f"{path}: label out of range 0..{spec.num_classes - 1}")
    return data.reshape(-1, channels, height, width), labels


def read_split(directory: Path, spec: DatasetSpec, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [read_batch(directory / name, spec) for name in spec.batches[split]]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    if len(labels) != spec.sizes[split]:
        raise UserError(f"{directory}: {split} split has {len(labels)} images, expected {spec.sizes[split]}")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def read_splits(exp, spec: DatasetSpec) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """split -> (uint8 images (N, 3, 32, 32), int64 labels) from dataset/<name>/<archive_dir>/."""
    directory = paths.dataset_dir(exp) / spec.archive_dir
    try:
        return {split: read_split(directory, spec, split) for split in spec.batches}
    except UserError as error:
        raise UserError(f"{exp.path}: data.dataset: {error}; {provenance.run_hint(exp, 'get_dataset', '--force')}") from None


def check_members(archive: Path, tar: tarfile.TarFile, target: Path) -> None:
    """Refuse the whole archive if any member is not a plain file/directory inside `target`."""
    root = target.resolve()
    for member in tar.getmembers():
        destination = (root / member.name).resolve()
        inside = destination == root or root in destination.parents
        if not inside or Path(member.name).is_absolute():
            raise UserError(f"{archive}: member {member.name!r} would be written outside {target}; refusing to extract")
        if not (member.isfile() or member.isdir()):
            raise UserError(f"{archive}: member {member.name!r} is a link or device; refusing to extract")


def extract(archive: Path, target: Path, spec: DatasetSpec) -> Path:
    """Unpack `archive` into target/<archive_dir> (replacing it) after checking every member."""
    staging = target / f".extract-{spec.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                check_members(archive, tar, staging)
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: re-checks every member
                    tar.extractall(staging, filter="data")
                else:  # pragma: no cover - older Pythons; check_members has vetted every member
                    tar.extractall(staging)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise UserError(f"{archive}: not a readable tar archive ({error})") from None
        unpacked = staging / spec.archive_dir
        if not unpacked.is_dir():
            raise UserError(f"{archive}: has no {spec.archive_dir}/ directory")
        final = target / spec.archive_dir
        shutil.rmtree(final, ignore_errors=True)
        unpacked.rename(final)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _origin(exp, spec: DatasetSpec) -> tuple[str, Path] | None:
    """("archive", file) or ("directory", unpacked dir) from data.source or a system copy; None = download."""
    candidates = [Path(exp.data.source)] if exp.data.source is not None else [Path(d) for d in spec.system_dirs]
    if exp.data.source is not None and not candidates[0].is_dir():
        raise UserError(f"{exp.path}: data.source: directory {candidates[0]} does not exist")
    for directory in candidates:
        if (directory / spec.archive).is_file():
            return "archive", directory / spec.archive
        unpacked = directory / spec.archive_dir
        if all((unpacked / name).is_file() for name in _batch_files(spec)):
            return "directory", unpacked
    if exp.data.source is not None:
        raise UserError(f"{exp.path}: data.source: {candidates[0]} has neither {spec.archive} nor {spec.archive_dir}/")
    return None


def get_cifar(exp, spec: DatasetSpec, force: bool = False) -> Path:
    """Make dataset/<name>/ hold the verified, unpacked batches and a manifest; idempotent."""
    dest = paths.dataset_dir(exp)
    if not force and manifest.is_current(exp, {f"{spec.archive_dir}/{name}" for name in _batch_files(spec)}):
        console.print(f"[green]{dest}[/] is up to date (checksums match {paths.dataset_manifest(exp).name})")
        return dest
    paths.dataset_manifest(exp).unlink(missing_ok=True)  # no manifest until the new copy is verified
    dest.mkdir(parents=True, exist_ok=True)
    origin = _origin(exp, spec)
    try:
        _install(dest, spec, origin)
    except UserError as error:  # say which config and key the bad bytes came from
        key = "data.source" if exp.data.source is not None else "data.dataset"
        raise UserError(f"{exp.path}: {key}: {error}") from None
    manifest.write(exp, spec.name, str(origin[1]) if origin is not None else "download",
                   {f"{spec.archive_dir}/{name}": sha256(dest / spec.archive_dir / name) for name in _batch_files(spec)})
    console.print(f"[green]{dest}[/]: {spec.name} verified ({', '.join(f'{k} {v}' for k, v in spec.sizes.items())} images)")
    return dest


def _install(dest: Path, spec: DatasetSpec, origin: tuple[str, Path] | None) -> None:
    """Download or copy, extract, and validate every split into dest/<archive_dir>/."""
    if origin is None:
        archive = dest / spec.archive
        download(spec, spec.archive, archive)  # md5 checked against spec.md5 before it is kept
        extract(archive, dest, spec)
    elif origin[0] == "archive":
        extract(origin[1], dest, spec)
    else:
        final = dest / spec.archive_dir
        for name in _batch_files(spec):
            with atomic_path(final / name) as tmp:
                shutil.copyfile(origin[1] / name, tmp)
    for split in spec.batches:
        read_split(dest / spec.archive_dir, spec, split)  # shapes, counts and labels, before the manifest
