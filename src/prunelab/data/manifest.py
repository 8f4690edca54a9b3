"""dataset/<name>/manifest.json: the sha256 of every file get-dataset stored, the data.source it
was made for, where the bytes came from, and for a user's own set its metadata (data/user.py).
get-dataset skips work while it is current; every stage that reads the data checks the files
against it."""

from __future__ import annotations

from .. import paths, provenance
from ..atomic import load_json, write_json
from ..config.sections import Experiment
from ..errors import UserError
from .download import sha256


def write(exp: Experiment, dataset: str, origin: str, digests: dict[str, str], meta: dict | None = None) -> None:
    """`meta`: a user's set's class names, shape and statistics (data/user.py)."""
    write_json(paths.dataset_manifest(exp), {
        "dataset": dataset, "origin": origin, "sha256": digests,
        "source": exp.data.source,  # the data.source it was made for (freshness)
        **({"meta": meta} if meta is not None else {}),
    })


def is_current(exp: Experiment, expected_files: set[str]) -> bool:
    """True if the manifest is intact, made for the configured data.source, lists exactly
    `expected_files` (names without a ".gz": IDX files are kept raw or compressed) and every
    one still has its recorded sha256."""
    manifest_path = paths.dataset_manifest(exp)
    if not manifest_path.is_file():
        return False
    try:
        manifest = load_json(manifest_path)
    except UserError:  # damaged or from an older prunelab: get the data again
        return False
    digests = manifest.get("sha256", {})
    if manifest.get("source") != exp.data.source or {name.removesuffix(".gz") for name in digests} != expected_files:
        return False
    directory = paths.dataset_dir(exp)
    return all((directory / name).is_file() and sha256(directory / name) == digest for name, digest in digests.items())


def verify(exp: Experiment) -> None:
    """Refuse data files that are missing or no longer have the sha256 get-dataset recorded
    (about 0.1 s per 50 MB), with the command that gets them again."""
    manifest_path = paths.dataset_manifest(exp)
    remake = provenance.run_hint(exp, "get_dataset", "--force")
    try:
        recorded = load_json(manifest_path).get("sha256", {})
    except UserError as error:
        raise UserError(f"{error}; remake it: {remake}") from None
    for name, digest in recorded.items():
        path = paths.dataset_dir(exp) / name
        if not path.is_file() or sha256(path) != digest:
            raise UserError(f"{path}: missing or damaged (sha256 differs from {manifest_path.name}); {remake}")
