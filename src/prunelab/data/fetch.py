"""get-dataset: copy (from `data.source` or a system package) or download, verify, record."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import paths
from ..atomic import atomic_path
from ..config.sections import Experiment
from ..errors import UserError
from ..log import console
from . import idx, manifest
from .catalog import DATASETS, DatasetSpec
from .cifar import get_cifar
from .download import download, sha256

def validate_split(spec: DatasetSpec, split: str, images_path: Path, labels_path: Path):
    """Parse one split's two files; a wrong header, length or label is a UserError."""
    count = spec.sizes[split]
    images = idx.parse(images_path, idx.read_bytes(images_path), count, spec.image_shape[1:])
    labels = idx.parse(labels_path, idx.read_bytes(labels_path), count, ())
    if labels.max() >= spec.num_classes:
        raise UserError(f"{labels_path}: label {int(labels.max())} out of range 0..{spec.num_classes - 1}")
    return images, labels


def _origin_dir(exp: Experiment, spec: DatasetSpec) -> Path | None:
    """Where to copy from: the config's data.source, else a complete system copy, else None."""
    stems = [stem for pair in spec.files.values() for stem in pair]
    if exp.data.source is not None:
        source = Path(exp.data.source)
        if not source.is_dir():
            raise UserError(f"{exp.path}: data.source: directory {source} does not exist")
        missing = [stem for stem in stems if idx.find(source, stem) is None]
        if missing:
            raise UserError(f"{exp.path}: data.source: {source} lacks {missing[0]}[.gz]")
        return source
    for candidate in map(Path, spec.system_dirs):
        if all(idx.find(candidate, stem) is not None for stem in stems):
            return candidate
    return None


def get_dataset(exp: Experiment, force: bool = False) -> Path:
    """Make dataset/<name>/ hold the verified files and a manifest; idempotent."""
    spec = DATASETS[exp.data.dataset]
    if spec.archive is not None:  # CIFAR: a tarball of pickled batches
        return get_cifar(exp, spec, force=force)
    dest = paths.dataset_dir(exp)
    if not force and manifest.is_current(exp, {stem for pair in spec.files.values() for stem in pair}):
        console.print(f"[green]{dest}[/] is up to date (checksums match {paths.dataset_manifest(exp).name})")
        return dest
    origin = _origin_dir(exp, spec)
    dest.mkdir(parents=True, exist_ok=True)
    stored: dict[str, Path] = {}
    for split, (images_stem, labels_stem) in spec.files.items():
        for stem in (images_stem, labels_stem):
            if origin is not None:
                source_file = idx.find(origin, stem)
                target = dest / source_file.name
                with atomic_path(target) as tmp:
                    shutil.copyfile(source_file, tmp)
            else:
                target = dest / f"{stem}.gz"
                download(spec, target.name, target, exp.path)
            stored[stem] = target
        validate_split(spec, split, stored[images_stem], stored[labels_stem])
    # Remove other variants (raw vs .gz) of the same files left by an earlier run.
    for stem, kept in stored.items():
        for variant in (dest / stem, dest / f"{stem}.gz"):
            if variant != kept and variant.exists():
                variant.unlink()
    manifest.write(exp, spec.name, str(origin) if origin is not None else "download",
                   {path.name: sha256(path) for path in stored.values()})
    where = f"copied from {origin}" if origin is not None else "downloaded"
    console.print(f"[green]{dest}[/]: {spec.name} {where}, verified ({', '.join(f'{k} {v}' for k, v in spec.sizes.items())} images)")
    return dest
